"""The Kafka consumer, owned by one thread; everything else happens on the event loop.

The thread polls in short slices so the group never sees a stalled member, takes
only as many messages as the service has room for, pauses every partition while
it has none (the messages wait in Kafka), and hands each batch to the loop,
waiting until the loop has tracked it. Rebalance callbacks run in this thread
too: on revocation it asks the loop to drain the revoked partitions' work, then
commits what is finished before the partitions move. Commits requested by the
loop are applied here, so only this thread ever touches the Consumer.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from chater_gpt.kafka.offsets import TopicPartition as TP

log = logging.getLogger(__name__)

Positions = list[tuple[TP, int]]


class IngressHandler(Protocol):
    """The loop-side half of consumption (the service's pipeline)."""

    def capacity(self) -> int:
        """How many more messages may be taken now; 0 pauses every partition."""
        ...

    async def accept(self, messages: list[Message]) -> None: ...

    async def assigned(self, partitions: list[TP]) -> None: ...

    async def revoked(self, partitions: list[TP]) -> Positions:
        """Drain the partitions' work (bounded by a grace period); return what to commit."""
        ...

    async def lost(self, partitions: list[TP]) -> None: ...


class KafkaIngress:
    def __init__(
        self,
        config: dict[str, Any],
        topics: Sequence[str],
        handler: IngressHandler,
        loop: asyncio.AbstractEventLoop,
        *,
        max_batch: int = 500,
        poll_timeout: float = 0.1,
        callback_timeout: float = 60.0,
    ) -> None:
        self._config = {
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            **config,
        }
        self._topics = list(topics)
        self._handler = handler
        self._loop = loop
        self._max_batch = max_batch
        self._poll_timeout = poll_timeout
        self._callback_timeout = callback_timeout
        self._commits: queue.SimpleQueue[Positions] = queue.SimpleQueue()
        self._stop_fetching = threading.Event()
        self._stop = threading.Event()
        self._done: asyncio.Future[None] = loop.create_future()
        self._assigned: set[TP] = set()
        self._paused = False
        # False after an assignment: librdkafka keeps a partition paused across a loss and
        # re-assignment, so the next poll applies pause or resume whatever it remembers.
        self._pause_applied = True
        self.last_poll = time.monotonic()
        self.broker_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="kafka-consumer", daemon=True)

    # --- called from the event loop -----------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def commit(self, positions: Positions) -> None:
        """Ask the consumer thread to commit these positions (asynchronously)."""
        if positions:
            self._commits.put(positions)

    def stop_fetching(self) -> None:
        """Pause everything and take no more messages (drain phase of a shutdown)."""
        self._stop_fetching.set()

    def stop(self) -> None:
        """Commit what was requested, leave the group and end the thread."""
        self._stop_fetching.set()
        self._stop.set()

    async def wait_stopped(self) -> None:
        await self._done

    @property
    def assignment(self) -> frozenset[TP]:
        return frozenset(self._assigned)

    @property
    def paused(self) -> bool:
        return self._paused

    # --- the consumer thread ------------------------------------------------------

    def _run(self) -> None:
        error: BaseException | None = None
        consumer = Consumer({**self._config, "error_cb": self._on_error})
        try:
            consumer.subscribe(
                self._topics,
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            while not self._stop.is_set():
                self._poll_once(consumer)
            self._apply_commits(consumer, asynchronous=False)
        except BaseException as exc:  # surfaced to the loop, which shuts down
            error = exc
            log.exception("the Kafka consumer failed")
        finally:
            try:
                consumer.close()  # leaves the group (runs on_revoke first)
            except Exception:
                log.exception("closing the Kafka consumer failed")
            self._loop.call_soon_threadsafe(self._finish, error)

    def _finish(self, error: BaseException | None) -> None:
        if self._done.done():
            return
        if error is None:
            self._done.set_result(None)
        else:
            self._done.set_exception(error)

    def _poll_once(self, consumer: Consumer) -> None:
        self._apply_commits(consumer, asynchronous=True)
        capacity = 0 if self._stop_fetching.is_set() else self._handler.capacity()
        self._set_paused(consumer, capacity <= 0)
        # Wait for the first message only, then take whatever else is already fetched:
        # `consume(n, timeout)` would hold a lone message until n arrived or time ran out.
        first = consumer.poll(self._poll_timeout)
        batch = [] if first is None else [first]
        room = min(capacity, self._max_batch) - 1
        if first is not None and room > 0:
            batch.extend(consumer.consume(num_messages=room, timeout=0))
        self.last_poll = time.monotonic()
        messages = []
        for message in batch:
            err = message.error()
            if err is None:
                messages.append(message)
            elif err.fatal():
                raise KafkaException(err)
            else:
                log.warning("Kafka consumer error: %s", err.str())
        if messages:
            self.broker_error = None
            self._call_loop(self._handler.accept(messages))

    def _set_paused(self, consumer: Consumer, pause: bool) -> None:
        if (pause == self._paused and self._pause_applied) or not self._assigned:
            return
        partitions = [TopicPartition(t, p) for t, p in self._assigned]
        if pause:
            consumer.pause(partitions)
        else:
            consumer.resume(partitions)
            _restart_fetch(consumer, partitions)
        self._paused = pause
        self._pause_applied = True

    def _apply_commits(self, consumer: Consumer, *, asynchronous: bool) -> None:
        latest: dict[TP, int] = {}
        while True:
            try:
                positions = self._commits.get_nowait()
            except queue.Empty:
                break
            for tp, offset in positions:
                if tp in self._assigned and offset > latest.get(tp, -1):
                    latest[tp] = offset
        if latest:
            self._commit(consumer, latest, asynchronous=asynchronous)

    def _commit(self, consumer: Consumer, positions: dict[TP, int], *, asynchronous: bool) -> None:
        offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
        try:
            if asynchronous:
                consumer.commit(offsets=offsets, asynchronous=True)
            else:
                consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # Not fatal: the offsets stay uncommitted and are replayed (then deduplicated).
            log.warning("offset commit failed: %s", exc)

    def _call_loop(self, coroutine: Awaitable[Any]) -> Any:
        future = asyncio.run_coroutine_threadsafe(_await(coroutine), self._loop)
        return future.result(timeout=self._callback_timeout)

    # --- rebalance callbacks (consumer thread, inside consume/close) ----------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tps = [(p.topic, p.partition) for p in partitions]
        log.info("partitions assigned: %s", _describe(tps))
        self.broker_error = None  # back in the group: whatever was wrong has passed
        self._assigned.update(tps)
        self._pause_applied = False
        self._call_loop(self._handler.assigned(tps))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tps = [(p.topic, p.partition) for p in partitions]
        log.info("partitions revoked: %s", _describe(tps))
        self._apply_commits(consumer, asynchronous=False)
        try:
            positions: Positions = self._call_loop(self._handler.revoked(tps))
        except Exception:
            log.exception("draining revoked partitions failed")
            positions = []
        final = {tp: offset for tp, offset in positions if tp in self._assigned}
        if final:
            self._commit(consumer, final, asynchronous=False)
        self._assigned.difference_update(tps)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tps = [(p.topic, p.partition) for p in partitions]
        log.warning("partitions lost: %s", _describe(tps))
        # librdkafka reports a stalled broker only this way (no error callback): keep it
        # visible to readiness until the group assigns partitions again.
        self.broker_error = "partitions lost: the group session timed out"
        self._assigned.difference_update(tps)
        self._call_loop(self._handler.lost(tps))

    def _on_error(self, err: KafkaError) -> None:
        # Transport-level trouble (broker down, auth failures): librdkafka retries by itself.
        self.broker_error = err.str()
        log.warning("Kafka client error: %s", err.str())


def _restart_fetch(consumer: Consumer, partitions: list[TopicPartition]) -> None:
    """Fetch resumed partitions now. librdkafka otherwise starts only at its broker
    thread's next wake-up, ~0.5-1 s later (measured here: 950 ms), a second without
    work after every pause. A seek to the current position (the next offset to read)
    wakes it and changes nothing else; partitions without a position yet are left be."""
    try:
        for position in consumer.position(partitions):
            if position.offset >= 0:
                consumer.seek(position)
    except KafkaException as exc:  # e.g. a partition revoked meanwhile
        log.debug("could not restart the fetch after a resume: %s", exc)


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _describe(partitions: list[TP]) -> str:
    return ", ".join(f"{t}[{p}]" for t, p in partitions) or "none"
