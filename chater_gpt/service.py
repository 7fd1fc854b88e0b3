"""The service: builds every part from Settings, runs it, shuts it down cleanly.

`Service` receives its parts (`ServiceParts`), so tests can swap any of them;
`build_parts` turns configuration into concrete adapters (the backend stack through
`chater_gpt.wiring`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from chater_gpt.backends.base import LLMBackend
from chater_gpt.config import BackendKind, Settings
from chater_gpt.context.builder import ContextBuilder
from chater_gpt.context.server_tokens import (
    KoboldCppTokenizer,
    LlamaCppTokenizer,
    ServerTokenCounters,
)
from chater_gpt.context.tokens import BpeTokenCounters, TokenCounters
from chater_gpt.contracts import RequestDefaults
from chater_gpt.decoder import RequestDecoder
from chater_gpt.domain import BreakerState
from chater_gpt.images import ImageLimits
from chater_gpt.kafka.consumer import KafkaIngress
from chater_gpt.kafka.pipeline import PauseGate, Pipeline, PipelineConfig, RouteEndpoint
from chater_gpt.kafka.producer import KafkaReplyProducer
from chater_gpt.observability.health import HealthServer
from chater_gpt.observability.metrics import Metrics
from chater_gpt.observability.probes import Heartbeat, RedisCheck, ServiceHealth
from chater_gpt.processing.build import ProcessingConfig, ProcessingStores, build_processor
from chater_gpt.resilience.admission import AdmissionControl, build_admission
from chater_gpt.resilience.guards import GuardHooks
from chater_gpt.resilience.prober import BreakerProber
from chater_gpt.storage.stores import HistoryConfig, StorageConfig, Stores, open_stores
from chater_gpt.wiring import build_backend_stack

log = logging.getLogger(__name__)


@dataclass
class ServiceParts:
    """Everything the service runs on; `aclose` releases them in reverse order."""

    backend: LLMBackend
    stores: Stores
    builder: ContextBuilder
    metrics: Metrics
    admission: AdmissionControl | None = None
    breaker_states: Callable[[], Mapping[str, BreakerState]] = dict
    redact: Callable[[str], str] = str
    closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
    # Loops that run beside the pipeline until shutdown (e.g. the breaker prober).
    background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)

    async def aclose(self) -> None:
        for close in reversed(self.closers):
            with contextlib.suppress(Exception):
                await close()


def request_defaults(settings: Settings) -> RequestDefaults:
    return RequestDefaults(
        model=settings.model,
        vision_model=settings.vision_model,
        allowed_models=settings.models_allowed,
        max_tokens=settings.max_tokens,
        max_tokens_cap=settings.max_tokens_cap,
        temperature=settings.temperature,
        max_payload_bytes=settings.max_payload_bytes,
        max_message_chars=settings.max_message_chars,
        images=ImageLimits(
            max_images=settings.max_images,
            max_image_bytes=settings.max_image_bytes,
            max_image_pixels=settings.max_image_pixels,
        ),
        placeholder_identities=settings.placeholders,
    )


def route_endpoints(settings: Settings) -> list[RouteEndpoint]:
    defaults = request_defaults(settings)
    return [
        RouteEndpoint(route.name, RequestDecoder(defaults, route), route.reply_topic)
        for route in settings.routes
    ]


def storage_config(settings: Settings) -> StorageConfig:
    """What the stores need of the settings (REDIS_*, the TTLs, the history bounds)."""
    return StorageConfig(
        redis_url=settings.redis_url.get_secret_value() if settings.redis_url else None,
        key_prefix=settings.redis_key_prefix,
        max_connections=settings.redis_max_connections,
        outcome_ttl_seconds=settings.outcome_ttl_seconds,
        history=HistoryConfig(
            max_turns=settings.max_history,
            ttl_seconds=settings.context_ttl_seconds,
            max_conversations=settings.history_max_conversations,
        ),
        cache_ttl_seconds=(
            settings.response_cache_ttl_seconds if settings.response_cache_enabled else None
        ),
    )


def build_parts(settings: Settings, *, redact: Callable[[str], str] = str) -> ServiceParts:
    """Concrete adapters for the configuration: Redis when REDIS_URL is set, else in-memory."""
    stores = open_stores(storage_config(settings))
    counters = token_counters(settings)
    if isinstance(counters, BpeTokenCounters):
        # Load the encodings' tables now (~0.3 s each), not on the first request.
        for model in (settings.model, settings.vision_model):
            counters.for_model(model)
    metrics = Metrics()
    hooks = GuardHooks(
        on_retry=metrics.retry_hook,
        on_breaker_state=metrics.set_breaker_state,
        on_rate_wait=metrics.rate_limit_waited,
    )
    stack = build_backend_stack(settings, stores, hooks=hooks)
    parts = ServiceParts(
        backend=stack.backend,
        stores=stores,
        builder=ContextBuilder(context_window=settings.context_window, counters=counters),
        metrics=metrics,
        admission=build_admission(settings, stores),
        breaker_states=stack.breaker_states,
        redact=redact,
    )
    parts.closers.append(stack.aclose)
    prober = BreakerProber(
        stack.breakers, stack.guarded, interval=probe_interval(settings.breaker_reset_seconds)
    )
    parts.background.append(prober.run)
    if isinstance(counters, ServerTokenCounters):
        parts.closers.append(counters.aclose)
    parts.closers.append(stores.aclose)
    return parts


def probe_interval(breaker_reset_seconds: float) -> float:
    """How often the prober looks at the breakers: a few times per reset period, so an
    idle breaker is probed soon after it may be; never busier than 5 per second."""
    return min(max(breaker_reset_seconds / 4, 0.2), 5.0)


def token_counters(settings: Settings) -> TokenCounters:
    """The OpenAI encodings, or the local server's own tokenizer (TOKENIZER)."""
    choice = settings.tokenizer
    if choice == "auto":
        choice = "koboldcpp" if settings.llm_backend is BackendKind.KOBOLDCPP else "encoding"
    if choice == "koboldcpp" and settings.koboldcpp_api_url:
        return ServerTokenCounters(KoboldCppTokenizer(settings.koboldcpp_api_url))
    if choice == "llamacpp":
        root = settings.openai_base_url.rstrip("/").removesuffix("/v1")
        return ServerTokenCounters(LlamaCppTokenizer(root))
    return BpeTokenCounters()


class Service:
    def __init__(self, settings: Settings, parts: ServiceParts) -> None:
        self._settings = settings
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
        settings = self._settings
        loop = asyncio.get_running_loop()
        parts = self._parts
        metrics = parts.metrics
        producer = KafkaReplyProducer(
            settings.kafka_producer_properties(), loop, on_fatal=self.fail
        )
        gate = PauseGate()
        processor = build_processor(
            ProcessingConfig(
                system_prompt=settings.system_prompt,
                seed=settings.seed,
                context_fallbacks=settings.context_fallback_models,
                json_repair_attempts=settings.json_repair_attempts,
            ),
            ProcessingStores(
                history=parts.stores.history,
                outcomes=parts.stores.outcomes,
                cache=parts.stores.cache,
            ),
            backend=parts.backend,
            builder=parts.builder,
            pauser=gate,
            admission=parts.admission,
            observer=metrics,
        )
        routes = route_endpoints(settings)
        pipeline = Pipeline(
            routes=routes,
            processor=processor,
            sink=producer,
            config=PipelineConfig(
                max_in_flight=settings.max_in_flight,
                revoke_grace_seconds=settings.shutdown_grace_seconds,
                max_queued=settings.max_queued,
            ),
            gate=gate,
            observer=metrics,
            on_assigned=lambda partitions: self._assigned.set() if partitions else None,
        )
        ingress = KafkaIngress(
            {
                **settings.kafka_consumer_properties(),
                "group.id": settings.consumer_group,
                "session.timeout.ms": settings.kafka_session_timeout_ms,
                "heartbeat.interval.ms": settings.kafka_heartbeat_interval_ms,
                "max.poll.interval.ms": settings.kafka_max_poll_interval_ms,
                # Consumer lag per partition comes from librdkafka's own statistics.
                "statistics.interval.ms": 5000,
                "stats_cb": metrics.observe_stats,
            },
            [route.decoder.route.request_topic for route in routes],
            pipeline,
            loop,
            callback_timeout=settings.shutdown_grace_seconds + 30,
        )
        self.pipeline, self.ingress = pipeline, ingress
        health = HealthServer(
            ServiceHealth(
                self,
                heartbeat=self._heartbeat,
                redis=RedisCheck(parts.stores.ping),
                draining=self._stop.is_set,
                breakers=parts.breaker_states,
                join_grace=settings.kafka_join_grace_seconds,
            ),
            metrics,
            port=settings.metrics_port,
            redact=parts.redact,
        )
        self.health_port = await health.start()
        if install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
        ingress.start()
        committer = asyncio.create_task(self._commit_periodically(pipeline, ingress))
        background = [asyncio.create_task(loop_fn()) for loop_fn in parts.background]
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
            await asyncio.sleep(self._settings.commit_interval_seconds)
            ingress.commit(pipeline.take_commits())

    async def _shutdown(
        self,
        pipeline: Pipeline,
        ingress: KafkaIngress,
        producer: KafkaReplyProducer,
        consumer_done: asyncio.Future[None],
    ) -> int:
        grace = self._settings.shutdown_grace_seconds
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
