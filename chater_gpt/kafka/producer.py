"""The reply producer: an idempotent confluent-kafka Producer behind an async API.

librdkafka reports deliveries from `poll()`; a small thread polls and hands each
batch of reports to the event loop in one `call_soon_threadsafe`, so the loop
never blocks on the producer and pays one wake-up per batch, not per message.
A fatal producer error (the idempotent producer can no longer guarantee order)
is handed to `on_fatal`: every later send would fail, so the service stops and
its unacknowledged requests are replayed by the next start.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Producer

log = logging.getLogger(__name__)

# Called on the event loop with None on success, or the delivery error.
DeliveryCallback = Callable[[KafkaError | None], None]
Headers = Sequence[tuple[str, bytes]]


class ReplySink(Protocol):
    """Where replies go. The Kafka producer in production; a list in unit tests."""

    def send(
        self, topic: str, key: str, value: bytes, headers: Headers, on_delivery: DeliveryCallback
    ) -> None: ...


class KafkaReplyProducer:
    def __init__(
        self,
        config: dict[str, Any],
        loop: asyncio.AbstractEventLoop,
        on_fatal: Callable[[str], None] | None = None,
    ) -> None:
        conf = {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 1,
            "compression.type": "lz4",
            **config,
            "error_cb": self._on_error,
        }
        self._loop = loop
        self._on_fatal = on_fatal
        self.fatal_error: str | None = None
        self._producer = Producer(conf)
        self._reports: list[tuple[DeliveryCallback, KafkaError | None]] = []
        self._reports_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._poll_forever, name="kafka-producer", daemon=True
        )
        self._thread.start()

    def send(
        self, topic: str, key: str, value: bytes, headers: Headers, on_delivery: DeliveryCallback
    ) -> None:
        def report(err: KafkaError | None, _msg: object) -> None:
            with self._reports_lock:
                self._reports.append((on_delivery, err))

        while True:
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key.encode("utf-8"),
                    headers=list(headers),
                    on_delivery=report,
                )
                return
            except BufferError:
                # Local queue full: let librdkafka drain a little, then try again.
                self._producer.poll(0.05)
            except KafkaException as exc:
                # Refused outright (fatal state, oversized reply): report it like a
                # failed delivery, so the caller's retry-or-keep-uncommitted path runs.
                error: KafkaError = exc.args[0]
                self._loop.call_soon(on_delivery, error)
                return

    def _on_error(self, err: KafkaError) -> None:
        # Called from poll(), in the polling thread. Transient trouble (a broker down)
        # is retried by librdkafka itself; only a fatal error needs the service.
        if not err.fatal():
            log.warning("Kafka producer error: %s", err.str())
            return
        log.error("fatal Kafka producer error: %s", err.str())
        if self.fatal_error is None:
            self.fatal_error = err.str()
            if self._on_fatal is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._on_fatal, f"reply producer: {err.str()}")

    def _poll_forever(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)
            self._hand_over_reports()

    def _hand_over_reports(self) -> None:
        with self._reports_lock:
            reports, self._reports = self._reports, []
        if reports and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(_run_reports, reports)

    def flush(self, timeout: float) -> int:
        """Wait for outstanding deliveries; returns how many are still undelivered."""
        remaining: int = self._producer.flush(timeout)
        self._hand_over_reports()
        return remaining

    def close(self, timeout: float) -> int:
        remaining = self.flush(timeout)
        self._stop.set()
        self._thread.join(timeout=2)
        # Destroy the client now, not when it is garbage collected: a client left alive
        # after the broker went away logs connection FAILs (the demo, tests).
        self._producer.close()
        return remaining


def _run_reports(reports: list[tuple[DeliveryCallback, KafkaError | None]]) -> None:
    for callback, err in reports:
        try:
            callback(err)
        except Exception:
            log.exception("delivery callback failed")
