"""A gateway instance's reply reader: its own reply topic, read in a thread, no group.

No consumer group: the topic is this instance's alone, so there is nothing to share and
no join or rebalance to wait for. It starts at the beginning of every partition (the
embedded broker's "latest" offsets are wrong, FIELD-NOTES) and hands each batch of
replies to the event loop in one `call_soon_threadsafe`.

The embedded broker (Tansu 0.6) sometimes does not hand a live reader a message
appended later, while a consumer started afterwards reads it (FIELD-NOTES, "a live
reader can miss a new message"). So while requests wait and nothing arrived for
`refetch_after` seconds, the reader replaces its consumer with a fresh one at the same
positions: whatever the old one missed is read again, nothing is skipped, and a reply
read twice is dropped by the waiter (nobody waits for it any more). On Apache Kafka this
only costs a reconnect now and then; `refetch_after=0` turns it off.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from chater_gpt.contracts import STREAM_HEADER
from chater_gpt.kafka.headers import RawHeaders

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RawReply:
    correlation_id: str | None
    key: bytes | None
    value: bytes | None
    stream: bool = False  # a stream chunk (`contracts.STREAM_HEADER`), not a reply


def _header(headers: RawHeaders | None, wanted: str) -> str | None:
    items = headers.items() if isinstance(headers, dict) else headers or ()
    for name, value in items:
        if name.lower() == wanted and value is not None:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return None


class ReplyReader:
    def __init__(
        self,
        config: Mapping[str, Any],
        topic: str,
        on_replies: Callable[[list[RawReply]], None],
        loop: asyncio.AbstractEventLoop,
        *,
        waiting: Callable[[], bool],
        refetch_after: float,
    ) -> None:
        self._config = {
            **config,
            "group.id": f"unused-{topic}",  # librdkafka wants one; assign() never joins it
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
        self._topic = topic
        self._on_replies = on_replies
        self._loop = loop
        self._waiting = waiting  # read from this thread: a bool from a len(), GIL-safe
        self._refetch_after = refetch_after
        self._positions: dict[int, int] = {}
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.refetches = 0
        self._thread = threading.Thread(target=self._run, name="gateway-replies", daemon=True)

    def start(self, timeout: float = 30.0) -> None:
        """Start reading; returns once the topic's partitions are assigned."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the reply topic {self._topic} could not be read")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and self._thread.is_alive()

    def _fresh_consumer(self) -> Consumer:
        consumer = Consumer(self._config)
        if not self._positions:
            metadata = consumer.list_topics(self._topic, timeout=10).topics[self._topic]
            self._positions = {p: OFFSET_BEGINNING for p in metadata.partitions}
        consumer.assign([TopicPartition(self._topic, p, o) for p, o in self._positions.items()])
        return consumer

    def _run(self) -> None:
        consumer = self._fresh_consumer()
        self._ready.set()
        quiet_since = time.monotonic()
        try:
            while not self._stop.is_set():
                batch = self._read(consumer)
                now = time.monotonic()
                if batch or not self._waiting():
                    quiet_since = now
                elif self._refetch_after and now - quiet_since >= self._refetch_after:
                    consumer.close()
                    consumer = self._fresh_consumer()
                    self.refetches += 1
                    quiet_since = time.monotonic()
        except Exception:
            log.exception("the reply reader failed")
        finally:
            consumer.close()

    def _read(self, consumer: Consumer) -> list[RawReply]:
        # Wait for the first reply only, then take whatever else is already fetched:
        # `consume(500, 0.05)` held a lone reply until 500 arrived or 50 ms passed (a
        # caller waited ~25 ms more on average at 100 req/s; tests/load/bench_gateway.py).
        first = consumer.poll(0.05)
        messages = [] if first is None else [first, *consumer.consume(499, 0)]
        batch = []
        for message in messages:
            if message.error() is not None:
                log.warning("reply topic error: %s", message.error())
                continue
            partition, offset = message.partition(), message.offset()
            if partition is not None and offset is not None:
                self._positions[partition] = offset + 1
            headers = message.headers()
            batch.append(
                RawReply(
                    _header(headers, "correlation-id"),
                    message.key(),
                    message.value(),
                    stream=_header(headers, STREAM_HEADER) is not None,
                )
            )
        if batch and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._on_replies, batch)
        return batch
