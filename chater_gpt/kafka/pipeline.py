"""The loop-side half of consumption: consumed messages → ordered jobs → replies → commits.

It tracks every consumed offset, decodes each message, queues it on its
conversation, has the processor answer it, publishes the reply, and marks the
offset finished only when the broker acknowledged that reply. Commits carry only
contiguous finished offsets. At most `max_in_flight` messages are processed at once
(a slot is held from the processor's start to its reply); up to `max_queued` more may
wait for a slot. Capacity (those limits plus named pause reasons) tells the consumer
thread how much more to take.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from confluent_kafka import KafkaError

from chater_gpt.contracts import ChatRequest, Job, RejectedRequest
from chater_gpt.decoder import RequestDecoder
from chater_gpt.domain import PauseReason
from chater_gpt.kafka.dispatcher import KeyedDispatcher
from chater_gpt.kafka.headers import RawHeaders, job_id, propagated_headers, reply_address
from chater_gpt.kafka.offsets import OffsetTracker, TopicPartition
from chater_gpt.kafka.producer import ReplySink
from chater_gpt.storage.keys import dedupe_id

log = logging.getLogger(__name__)

Positions = list[tuple[TopicPartition, int]]


class KafkaMessage(Protocol):
    """The parts of `confluent_kafka.Message` the pipeline reads (a stand-in for tests)."""

    def topic(self) -> str | None: ...

    def partition(self) -> int | None: ...

    def offset(self) -> int | None: ...

    def key(self) -> bytes | None: ...

    def value(self) -> bytes | None: ...

    def headers(self) -> RawHeaders | None: ...

    def timestamp(self) -> tuple[int, int]: ...


class JobProcessor(Protocol):
    """Answers one job with the reply bytes to publish (never raises but on cancel)."""

    async def process(self, job: Job) -> bytes: ...


class PipelineObserver(Protocol):
    def consumed(self, count: int) -> None: ...

    def rejected_without_key(self) -> None: ...

    def replied(self, *, kafka_timestamp_ms: int | None, seconds_in_service: float) -> None: ...

    def delivery_failed(self) -> None: ...


class NullPipelineObserver:
    def consumed(self, count: int) -> None:
        pass

    def rejected_without_key(self) -> None:
        pass

    def replied(self, *, kafka_timestamp_ms: int | None, seconds_in_service: float) -> None:
        pass

    def delivery_failed(self) -> None:
        pass


class PauseGate:
    """Named reasons to stop taking work (breaker open, budget spent); any one pauses.

    `pause`/`resume` take a `PauseReason` (a str; an unknown name raises ValueError)."""

    def __init__(self, on_change: Callable[[frozenset[PauseReason]], None] | None = None) -> None:
        self._reasons: frozenset[PauseReason] = frozenset()
        self._on_change = on_change

    @property
    def reasons(self) -> frozenset[PauseReason]:
        return self._reasons

    def pause(self, cause: PauseReason) -> None:
        if cause not in self._reasons:
            log.warning("pausing consumption: %s", cause)
            self._set(self._reasons | {cause})

    def resume(self, cause: PauseReason) -> None:
        if cause in self._reasons:
            log.info("resuming consumption: %s cleared", cause)
            self._set(self._reasons - {cause})

    def _set(self, reasons: frozenset[PauseReason]) -> None:
        self._reasons = reasons
        if self._on_change is not None:
            self._on_change(reasons)


@dataclass(frozen=True, slots=True)
class RouteEndpoint:
    """What the pipeline needs of a route: how to read its requests, where to reply."""

    name: str
    decoder: RequestDecoder
    reply_topic: str


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """How much work the pipeline takes on, and how long a revocation waits for it."""

    max_in_flight: int  # processed at once
    revoke_grace_seconds: float  # started work of revoked partitions may finish meanwhile
    max_queued: int = 0  # more that may wait for a processing slot
    # Topics a request may name as its reply address (`reply-to`); empty: none may.
    reply_to_prefix: str = ""


@dataclass(slots=True)
class InFlight:
    tp: TopicPartition
    reply_topic: str
    epoch: int
    offset: int
    key: str
    job: Job
    headers: list[tuple[str, bytes]]
    kafka_timestamp_ms: int | None
    attempts: int = 0
    # Answered on a gateway's reply topic: a failed delivery there is not retried for
    # ever (the gateway, and its caller, are gone; the outcome is recorded for a replay).
    reply_to: bool = False


class Pipeline:
    def __init__(
        self,
        *,
        routes: Sequence[RouteEndpoint],
        processor: JobProcessor,
        sink: ReplySink,
        config: PipelineConfig,
        gate: PauseGate,
        observer: PipelineObserver | None = None,
        on_assigned: Callable[[list[TopicPartition]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # By request topic: each topic is read by exactly one route.
        self._routes = {route.decoder.route.request_topic: route for route in routes}
        self._processor = processor
        self._sink = sink
        self._max_unfinished = config.max_in_flight + config.max_queued
        self._slots = asyncio.Semaphore(config.max_in_flight)
        self._revoke_grace = config.revoke_grace_seconds
        self._reply_to_prefix = config.reply_to_prefix
        self._gate = gate
        self._on_assigned = on_assigned
        self._observer = observer or NullPipelineObserver()
        self._clock = clock
        self.tracker = OffsetTracker()
        self._dispatcher: KeyedDispatcher[InFlight] = KeyedDispatcher(self._handle)
        self._running: Counter[TopicPartition] = Counter()
        self._revoking: set[TopicPartition] = set()
        self._progress = asyncio.Event()

    # --- capacity ---------------------------------------------------------------------

    def capacity(self) -> int:
        """How many more messages to take: unfinished ones (processing, waiting for a
        slot, or replied but not yet acknowledged) stay within in-flight + queued."""
        if self._gate.reasons:
            return 0
        return self._max_unfinished - self.tracker.unfinished

    @property
    def pause_reasons(self) -> frozenset[PauseReason]:
        """Why consumption is paused now (empty when it is not)."""
        if self.tracker.unfinished >= self._max_unfinished:
            return self._gate.reasons | {PauseReason.CAPACITY}
        return self._gate.reasons

    # --- IngressHandler -------------------------------------------------------------

    async def accept(self, messages: Sequence[KafkaMessage]) -> None:
        self._observer.consumed(len(messages))
        now = self._clock()
        for message in messages:
            self._accept_one(message, now)

    def _accept_one(self, message: KafkaMessage, now: float) -> None:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        assert topic is not None
        assert partition is not None
        assert offset is not None
        tp = (topic, partition)
        epoch = self.tracker.track(tp, offset)
        if epoch is None:
            return  # from a partition revoked meanwhile: its new owner replays it
        route = self._routes[topic]
        raw = message.value()
        request = route.decoder.decode(message.key(), raw)
        if isinstance(request, RejectedRequest) and request.key is None:
            log.warning(
                "dropping a message without a usable key at %s[%d]@%d: %s",
                topic,
                partition,
                offset,
                request.error.message,
            )
            self._observer.rejected_without_key()
            self._finish(tp, offset, epoch)
            return
        key = request.key
        assert key is not None
        headers = propagated_headers(message.headers())
        correlation = next((v.decode("utf-8", "replace") for _, v in headers), key)
        address = reply_address(message.headers(), self._reply_to_prefix)
        job = Job(
            request=request,
            dedupe_id=dedupe_id(
                key=key,
                request_id=request.request_id if isinstance(request, ChatRequest) else None,
                topic=topic,
                partition=partition,
                offset=offset,
                value=raw or b"",
            ),
            received_at=now,
            correlation_id=correlation,
            route=route.name,
            reply_to=address,
            headers=tuple(headers),
            job_id=job_id(message.headers()),
        )
        ts_type, ts = message.timestamp()
        timestamp = ts if ts_type != 0 else None
        item = InFlight(
            tp,
            address or route.reply_topic,
            epoch,
            offset,
            key,
            job,
            headers,
            timestamp,
            reply_to=address is not None,
        )
        self._dispatcher.submit(request.ordering_key, item)

    async def assigned(self, partitions: list[TopicPartition]) -> None:
        self._revoking.difference_update(partitions)
        self.tracker.assign(partitions)
        if self._on_assigned is not None:
            self._on_assigned(partitions)

    async def revoked(self, partitions: list[TopicPartition]) -> Positions:
        """Let started work of these partitions finish (within the grace); return commits."""
        self._revoking.update(partitions)
        await self._wait_for(
            lambda: not any(self._running[tp] for tp in partitions), self._revoke_grace
        )
        positions = [(tp, pos) for tp, pos in self.tracker.to_commit(partitions)]
        self.tracker.revoke(partitions)
        for tp in partitions:
            self._running.pop(tp, None)
        return positions

    async def lost(self, partitions: list[TopicPartition]) -> None:
        self._revoking.update(partitions)
        self.tracker.revoke(partitions)
        for tp in partitions:
            self._running.pop(tp, None)

    # --- commits and shutdown -----------------------------------------------------

    def take_commits(self) -> Positions:
        positions = self.tracker.to_commit()
        self.tracker.mark_committed(positions)
        return positions

    async def drain(self, timeout: float) -> bool:
        """Wait until every consumed message is finished; False when time ran out."""
        deadline = self._clock() + timeout
        if not await self._dispatcher.wait_idle(timeout):
            return False
        return await self._wait_for(
            lambda: self.tracker.unfinished == 0, max(0.0, deadline - self._clock())
        )

    async def _wait_for(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait (on progress events, not a sleep loop) until condition holds or time is up."""
        deadline = self._clock() + timeout
        while True:
            self._progress.clear()
            if condition():
                return True
            remaining = deadline - self._clock()
            if remaining <= 0:
                return False
            try:
                async with asyncio.timeout(remaining):
                    await self._progress.wait()
            except TimeoutError:
                return condition()

    async def abandon(self) -> None:
        await self._dispatcher.cancel_all()

    # --- one message ----------------------------------------------------------------

    async def _handle(self, item: InFlight) -> None:
        async with self._slots:  # at most max_in_flight processed at once
            # Checked once the slot is ours: the partition may have moved while it waited.
            if item.tp in self._revoking or not self.tracker.owns(item.tp, item.epoch):
                return  # abandoned: the partition's owner replays it
            self._running[item.tp] += 1
            try:
                reply = await self._processor.process(item.job)
            except BaseException:
                self._release(item)
                raise
        self._send(item, reply)

    def _send(self, item: InFlight, reply: bytes) -> None:
        def delivered(err: KafkaError | None) -> None:
            if err is None:
                self._observer.replied(
                    kafka_timestamp_ms=item.kafka_timestamp_ms,
                    seconds_in_service=self._clock() - item.job.received_at,
                )
                self._finish(item.tp, item.offset, item.epoch)
                self._release(item)
                return
            # librdkafka already retried for message.timeout.ms; keep the offset
            # uncommitted and try again, so the reply is never silently lost.
            item.attempts += 1
            self._observer.delivery_failed()
            log.error("reply delivery failed (attempt %d): %s", item.attempts, err.str())
            if item.reply_to:
                log.warning("giving up a reply to a gateway address: %s", item.reply_topic)
                self._finish(item.tp, item.offset, item.epoch)
                self._release(item)
                return
            if not self.tracker.owns(item.tp, item.epoch):
                self._release(item)
                return  # no longer ours: the partition's owner replays (and answers) it
            loop = asyncio.get_running_loop()
            loop.call_later(min(30.0, 0.5 * 2**item.attempts), self._send, item, reply)

        self._sink.send(item.reply_topic, item.key, reply, item.headers, delivered)

    def _finish(self, tp: TopicPartition, offset: int, epoch: int) -> None:
        self.tracker.finish(tp, offset, epoch)
        self._progress.set()

    def _release(self, item: InFlight) -> None:
        # Work of an earlier assignment no longer counts towards this one's drain.
        if self.tracker.owns(item.tp, item.epoch) and self._running[item.tp] > 0:
            self._running[item.tp] -= 1
        self._progress.set()
