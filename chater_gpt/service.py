"""The service: runs its parts, drains and shuts down cleanly.

`Service` receives a frozen `ServiceConfig` and its `ServiceParts`, never `Settings`:
`chater_gpt.wiring` is the one place that turns configuration into parts. Here the
loop-bound Kafka adapters (the consumer thread, the reply producer) and the health
server are started from the config, the parts run, and everything stops in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from chater_gpt.domain import BreakerState
from chater_gpt.kafka.consumer import KafkaIngress
from chater_gpt.kafka.pipeline import (
    JobProcessor,
    PauseGate,
    Pipeline,
    PipelineConfig,
    RouteEndpoint,
)
from chater_gpt.kafka.producer import KafkaReplyProducer
from chater_gpt.kafka.streams import KafkaStreams
from chater_gpt.observability.health import HealthServer
from chater_gpt.observability.metrics import Metrics
from chater_gpt.observability.probes import Heartbeat, RedisCheck, ServiceHealth
from chater_gpt.storage.stores import Stores

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """What the service itself needs of the configuration."""

    consumer: Mapping[str, Any]  # librdkafka consumer properties, group and timing included
    producer: Mapping[str, Any]  # librdkafka producer properties
    pipeline: PipelineConfig
    shutdown_grace_seconds: float
    commit_interval_seconds: float
    join_grace_seconds: float
    metrics_port: int


@dataclass
class Lifecycle:
    """Loops that run beside the pipeline until shutdown (e.g. the breaker prober), and
    what is released after it, in reverse order."""

    background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    async def aclose(self) -> None:
        for close in reversed(self.closers):
            with contextlib.suppress(Exception):
                await close()


@dataclass
class ServiceParts:
    """Everything the service runs on (built by `chater_gpt.wiring.build_parts`)."""

    processor: JobProcessor
    routes: list[RouteEndpoint]
    gate: PauseGate  # the processor pauses consumption through it
    metrics: Metrics
    stores: Stores
    breaker_states: Callable[[], Mapping[str, BreakerState]] = dict
    redact: Callable[[str], str] = str
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    # Publishes streamed answers; needs the producer the service starts.
    streams: KafkaStreams | None = None

    async def aclose(self) -> None:
        await self.lifecycle.aclose()


class Service:
    def __init__(self, config: ServiceConfig, parts: ServiceParts) -> None:
        self._config = config
        self._parts = parts
        self._stop = asyncio.Event()
        self._assigned = asyncio.Event()
        self.pipeline: Pipeline | None = None
        self.ingress: KafkaIngress | None = None
        self.health_port: int | None = None
        self._heartbeat = Heartbeat()
        self._failure: str | None = None

    def request_stop(self) -> None:
        if not self._stop.is_set():
            log.info("stop requested: draining")
            self._stop.set()

    def fail(self, reason: str) -> None:
        """Stop because a part can no longer work; `run` then returns 1 (a restart
        replays whatever was not acknowledged)."""
        log.error("stopping: %s", reason)
        self._failure = self._failure or reason
        self.request_stop()

    async def wait_assigned(self, timeout: float) -> None:
        """Until the consumer owns at least one partition (tests, the demo)."""
        await asyncio.wait_for(self._assigned.wait(), timeout)

    async def run(self, *, install_signal_handlers: bool = True) -> int:
        """Run until a stop is requested (SIGTERM/SIGINT) or the consumer fails."""
        config = self._config
        loop = asyncio.get_running_loop()
        parts = self._parts
        metrics = parts.metrics
        producer = KafkaReplyProducer(dict(config.producer), loop, on_fatal=self.fail)
        if parts.streams is not None:
            parts.streams.attach(producer)
        pipeline = Pipeline(
            routes=parts.routes,
            processor=parts.processor,
            sink=producer,
            config=config.pipeline,
            gate=parts.gate,
            observer=metrics,
            on_assigned=lambda partitions: self._assigned.set() if partitions else None,
        )
        ingress = KafkaIngress(
            # Consumer lag per partition comes from librdkafka's own statistics.
            {**config.consumer, "statistics.interval.ms": 5000, "stats_cb": metrics.observe_stats},
            [route.decoder.route.request_topic for route in parts.routes],
            pipeline,
            loop,
            callback_timeout=config.shutdown_grace_seconds + 30,
        )
        self.pipeline, self.ingress = pipeline, ingress
        health = HealthServer(
            ServiceHealth(
                self,
                heartbeat=self._heartbeat,
                redis=RedisCheck(parts.stores.ping),
                draining=self._stop.is_set,
                breakers=parts.breaker_states,
                join_grace=config.join_grace_seconds,
            ),
            metrics,
            port=config.metrics_port,
            redact=parts.redact,
        )
        self.health_port = await health.start()
        if install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
        ingress.start()
        committer = asyncio.create_task(self._commit_periodically(pipeline, ingress))
        background = [asyncio.create_task(loop_fn()) for loop_fn in parts.lifecycle.background]
        stopped = asyncio.create_task(self._stop.wait())
        consumer_done = asyncio.ensure_future(ingress.wait_stopped())
        try:
            await asyncio.wait({stopped, consumer_done}, return_when=asyncio.FIRST_COMPLETED)
            if consumer_done.done():
                consumer_done.result()  # a consumer failure ends the run with its error
            code = await self._shutdown(pipeline, ingress, producer, consumer_done)
            return 1 if self._failure else code
        finally:
            committer.cancel()
            for task in background:
                task.cancel()
            stopped.cancel()
            if install_signal_handlers:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
            await health.stop()
            await parts.aclose()

    async def _commit_periodically(self, pipeline: Pipeline, ingress: KafkaIngress) -> None:
        """Commit finished offsets; each turn is also the loop's heartbeat (/livez)."""
        while True:
            self._heartbeat.beat()
            await asyncio.sleep(self._config.commit_interval_seconds)
            ingress.commit(pipeline.take_commits())

    async def _shutdown(
        self,
        pipeline: Pipeline,
        ingress: KafkaIngress,
        producer: KafkaReplyProducer,
        consumer_done: asyncio.Future[None],
    ) -> int:
        grace = self._config.shutdown_grace_seconds
        ingress.stop_fetching()
        drained = await pipeline.drain(grace)
        if not drained:
            log.warning("drain grace period over; abandoning unfinished requests (replayed later)")
            await pipeline.abandon()
        undelivered = await asyncio.to_thread(producer.flush, 10.0)
        await _let_callbacks_run()
        ingress.commit(pipeline.take_commits())
        ingress.stop()
        await consumer_done
        await asyncio.to_thread(producer.close, 5.0)
        log.info(
            "stopped: drained=%s undelivered=%d unfinished=%d",
            drained,
            undelivered,
            pipeline.tracker.unfinished,
        )
        return 0


async def _let_callbacks_run() -> None:
    # Delivery reports are scheduled with call_soon_threadsafe; give them a turn.
    for _ in range(3):
        await asyncio.sleep(0)
