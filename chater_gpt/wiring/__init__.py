"""Settings → parts: the only code that reads `Settings` to build the service.

Every part receives a small frozen config of its own (`ServiceConfig`,
`PipelineConfig`, `ProcessingConfig`, `StorageConfig`, `GuardConfig`, ...), never the
whole `Settings`; `build_service` is what `python main.py run` and the demo start.

The backend stack: per configured provider (`configured_providers`: LLM_BACKEND,
FALLBACK_BACKEND, and every provider whose key or URL is set), the raw backend wrapped
in its guards (`resilience.guards.guarded_stack`: retries, breaker, rate-limit wait,
timeout); the model router over them (each call to its model's provider, by the
model catalogue); then the fallback chain: the requested model, FALLBACK_MODELS (each
on its own provider), then FALLBACK_BACKEND.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chater_gpt.backends.router import warn_blind, warn_unrouted
from chater_gpt.catalogue import Provider
from chater_gpt.config import BackendKind, LogFormat, Settings, secret_values
from chater_gpt.context.builder import ContextBuilder
from chater_gpt.context.counters import ModelTokenCounters
from chater_gpt.context.provider_tokens import (
    AnthropicCountTokens,
    GeminiCountTokens,
    ProviderCountClient,
)
from chater_gpt.context.server_tokens import (
    KoboldCppTokenizer,
    LlamaCppTokenizer,
    ServerTokenCounters,
)
from chater_gpt.context.tokens import TokenCounters
from chater_gpt.context.usage import UsageCounter
from chater_gpt.contracts import RequestDefaults
from chater_gpt.decoder import RequestDecoder
from chater_gpt.images import ImageLimits
from chater_gpt.kafka.pipeline import PauseGate, PipelineConfig, RouteEndpoint
from chater_gpt.kafka.streams import KafkaStreams
from chater_gpt.observability.logging import LoggingConfig, Redactor, configure_logging
from chater_gpt.observability.metrics import Metrics
from chater_gpt.observability.sentry import init_sentry
from chater_gpt.processing.build import ProcessingConfig, ProcessingStores, build_processor
from chater_gpt.processing.jobs import JobTracked
from chater_gpt.resilience.admission import AdmissionControl, AdmissionLimits
from chater_gpt.resilience.budget import DailyBudget
from chater_gpt.resilience.guards import GuardHooks
from chater_gpt.resilience.policy import load_policy
from chater_gpt.resilience.prices import Prices
from chater_gpt.resilience.prober import BreakerProber
from chater_gpt.resilience.rate_limit import RateLimiter
from chater_gpt.routes import RouteShape
from chater_gpt.service import Lifecycle, Service, ServiceConfig, ServiceParts
from chater_gpt.storage.jobs import JobConfig, JobStore
from chater_gpt.storage.stores import HistoryConfig, StorageConfig, Stores, open_stores
from chater_gpt.wiring.backends import build_backend_stack, default_backend_models

# --- requests and routes ----------------------------------------------------------------


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


# --- stores, tokens, admission ----------------------------------------------------------


def job_config(settings: Settings) -> JobConfig:
    """The job API's store: what the gateway (submissions) and the core (outcomes) share."""
    return JobConfig(
        ttl_seconds=settings.gateway_job_ttl_seconds,
        max_wait_seconds=settings.gateway_job_max_wait_seconds,
        capacity=settings.gateway_job_queue_capacity,
    )


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


def provider_count_endpoints(settings: Settings) -> dict[str, ProviderCountClient]:
    """The token-count endpoints of the providers with a key (PROVIDER_TOKEN_COUNTS)."""
    if not settings.provider_token_counts:
        return {}
    endpoints: dict[str, ProviderCountClient] = {}
    if settings.anthropic_api_key and settings.anthropic_api_key.get_secret_value():
        endpoints["anthropic"] = AnthropicCountTokens(
            settings.anthropic_base_url,
            settings.anthropic_api_key.get_secret_value(),
            api_version=settings.anthropic_api_version,
        )
    if settings.gemini_api_key and settings.gemini_api_key.get_secret_value():
        endpoints["gemini"] = GeminiCountTokens(
            settings.gemini_base_url,
            settings.gemini_api_key.get_secret_value(),
            api_version=settings.gemini_api_version,
        )
    return endpoints


def token_counters(settings: Settings) -> TokenCounters:
    """Per model: OpenAI's encodings, the Claude/Gemini estimate or their endpoints
    (counters.py); or the local server's own tokenizer (TOKENIZER)."""
    choice = settings.tokenizer
    if choice == "auto":
        choice = "koboldcpp" if settings.llm_backend is BackendKind.KOBOLDCPP else "encoding"
    if choice == "koboldcpp" and settings.koboldcpp_api_url:
        return ServerTokenCounters(KoboldCppTokenizer(settings.koboldcpp_api_url))
    if choice == "llamacpp":
        root = settings.openai_base_url.rstrip("/").removesuffix("/v1")
        return ServerTokenCounters(LlamaCppTokenizer(root))
    return ModelTokenCounters(
        provider_of=settings.catalogue.provider_of, endpoints=provider_count_endpoints(settings)
    )


def build_prices(settings: Settings) -> Prices:
    """The prices of the money budgets (DAILY_COST_LIMIT_USD, ...): the model catalogue's
    (the shipped table and MODEL_CATALOGUE_FILE)."""
    return settings.catalogue


def build_admission(settings: Settings, stores: Stores) -> AdmissionControl:
    """Admission over the process's rate windows and budget counters (`open_stores`)."""
    policy = load_policy(settings.tenant_policy_file) if settings.tenant_policy_file else None
    return AdmissionControl(
        limiter=RateLimiter(stores.rates),
        budget=DailyBudget(stores.budgets),
        limits=AdmissionLimits(
            daily_token_limit=settings.daily_token_limit,
            user_requests_per_minute=settings.user_requests_per_minute,
            user_daily_token_limit=settings.user_daily_token_limit,
            daily_cost_limit_usd=settings.daily_cost_limit_usd,
            user_daily_cost_limit_usd=settings.user_daily_cost_limit_usd,
            fallback_models=tuple(settings.fallback_models),
        ),
        policy=policy,
        prices=build_prices(settings),
    )


def probe_interval(breaker_reset_seconds: float) -> float:
    """How often the prober looks at the breakers: a few times per reset period, so an
    idle breaker is probed soon after it may be; never busier than 5 per second."""
    return min(max(breaker_reset_seconds / 4, 0.2), 5.0)


# --- the service ------------------------------------------------------------------------


def logging_config(settings: Settings) -> LoggingConfig:
    return LoggingConfig(
        level=settings.log_level,
        json=settings.log_format is LogFormat.JSON,
        secrets=tuple(secret_values(settings)),
    )


def start_observability(settings: Settings) -> Redactor:
    """Logging (with every configured secret redacted) and, when SENTRY_DSN is set, Sentry."""
    redactor = configure_logging(logging_config(settings))
    init_sentry(settings.sentry_dsn.get_secret_value() if settings.sentry_dsn else None, redactor)
    return redactor


def processing_config(settings: Settings) -> ProcessingConfig:
    return ProcessingConfig(
        system_prompt=settings.system_prompt,
        seed=settings.seed,
        context_fallbacks=settings.context_fallback_models,
        json_repair_attempts=settings.json_repair_attempts,
    )


def service_config(settings: Settings) -> ServiceConfig:
    consumer: dict[str, Any] = {
        **settings.kafka_consumer_properties(),
        "group.id": settings.consumer_group,
        "session.timeout.ms": settings.kafka_session_timeout_ms,
        "heartbeat.interval.ms": settings.kafka_heartbeat_interval_ms,
        "max.poll.interval.ms": settings.kafka_max_poll_interval_ms,
    }
    return ServiceConfig(
        consumer=consumer,
        producer=settings.kafka_producer_properties(),
        pipeline=PipelineConfig(
            max_in_flight=settings.max_in_flight,
            revoke_grace_seconds=settings.shutdown_grace_seconds,
            max_queued=settings.max_queued,
            reply_to_prefix=settings.gateway_reply_topic_prefix,
        ),
        shutdown_grace_seconds=settings.shutdown_grace_seconds,
        commit_interval_seconds=settings.commit_interval_seconds,
        join_grace_seconds=settings.kafka_join_grace_seconds,
        metrics_port=settings.metrics_port,
    )


PHOTO = RouteShape.PHOTO


def build_parts(
    settings: Settings, *, redact: Callable[[str], str] = str, jobs: JobStore | None = None
) -> ServiceParts:
    """Concrete adapters for the configuration: Redis when REDIS_URL is set, else in-memory.
    `jobs`: a job store shared with a gateway in this process (the demo), else the
    stores' own."""
    lifecycle = Lifecycle()
    stores = open_stores(storage_config(settings))
    lifecycle.closers.append(stores.aclose)
    counters = token_counters(settings)
    if isinstance(counters, ModelTokenCounters):
        # Load the encodings' tables now (~0.3 s each), not on the first request.
        for model in (settings.model, settings.vision_model):
            counters.for_model(model)
    if isinstance(counters, ServerTokenCounters | ModelTokenCounters):
        lifecycle.closers.append(counters.aclose)
    metrics = Metrics()
    hooks = GuardHooks(
        on_retry=metrics.retry_hook,
        on_breaker_state=metrics.set_breaker_state,
        on_rate_wait=metrics.rate_limit_waited,
    )
    default = Provider(settings.llm_backend.value)
    warn_unrouted(settings.catalogue, default_backend_models(settings), default)
    photo = [r.model or settings.vision_model for r in settings.routes if r.shape is PHOTO]
    warn_blind(settings.catalogue, [settings.vision_model, *photo])
    stack = build_backend_stack(settings, stores, hooks=hooks, count_usage=UsageCounter(counters))
    lifecycle.closers.append(stack.aclose)
    prober = BreakerProber(
        stack.breakers, stack.guarded, interval=probe_interval(settings.breaker_reset_seconds)
    )
    lifecycle.background.append(prober.run)
    gate = PauseGate()
    # The service hands it its producer when it starts (a producer belongs to the loop).
    streams = KafkaStreams(settings.stream_topic)
    dispatch = build_processor(
        processing_config(settings),
        ProcessingStores(history=stores.history, outcomes=stores.outcomes, cache=stores.cache),
        backend=stack.backend,
        builder=ContextBuilder(
            context_window=settings.context_window,
            counters=counters,
            window_of=settings.catalogue.context_window,
        ),
        pauser=gate,
        admission=build_admission(settings, stores),
        observer=metrics,
        streams=streams,
    )
    if jobs is None:
        jobs = stores.jobs(job_config(settings))
    return ServiceParts(
        processor=JobTracked(dispatch, jobs, metrics),
        routes=route_endpoints(settings),
        gate=gate,
        metrics=metrics,
        stores=stores,
        breaker_states=stack.breaker_states,
        redact=redact,
        lifecycle=lifecycle,
        streams=streams,
    )


def build_service(
    settings: Settings, *, redact: Callable[[str], str] = str, jobs: JobStore | None = None
) -> Service:
    return Service(service_config(settings), build_parts(settings, redact=redact, jobs=jobs))
