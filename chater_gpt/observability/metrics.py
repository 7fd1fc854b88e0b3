"""Prometheus metrics of chater-gpt, in a registry owned by one `Metrics` object.

`Metrics` implements `ProcessorObserver` and `PipelineObserver` structurally, so
the service hands the same object to both. It owns its `CollectorRegistry` (never
the global default), so tests and several services in one process do not clash.
Hot-path methods look label children up in plain dicts (bounded label values:
models from the allowed list, codes from a closed enum, backends and stores from
the code); gauges that describe state (in-flight, pauses, breakers) are set when
`/metrics` is scraped. Consumer lag comes from librdkafka's statistics callback.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from chater_gpt.domain import BreakerState, PauseReason
from chater_gpt.errors import ErrorCode
from chater_gpt.observability.kafka_stats import lag_from_stats

PREFIX = "chater_gpt_"

# LLM calls: tens of milliseconds (cache, tiny local models) up to two minutes.
LLM_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120)
# End to end also counts the wait in Kafka (paused partitions, a backlog).
END_TO_END_BUCKETS = (*LLM_LATENCY_BUCKETS, 300, 600)

BREAKER_STATE_VALUES = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}

# Beyond this many distinct values of a free label (model, backend, store), new
# values are counted under "other": a misbehaving backend cannot explode the series.
MAX_LABEL_VALUES = 50
OTHER = "other"

METRIC_DOCS: list[tuple[str, str]] = [
    (
        "chater_gpt_requests_total",
        "Requests answered, by outcome, error code, model, backend and route.",
    ),
    ("chater_gpt_error_replies_total", "Error replies published, by error code."),
    ("chater_gpt_replayed_total", "Replayed requests answered from their recorded outcome."),
    ("chater_gpt_prompt_tokens_total", "Prompt tokens used, by model."),
    ("chater_gpt_completion_tokens_total", "Completion tokens used, by model."),
    ("chater_gpt_cost_usd_total", "USD spent at list prices, by model and provider."),
    ("chater_gpt_backend_latency_seconds", "Duration of successful LLM backend calls."),
    (
        "chater_gpt_end_to_end_latency_seconds",
        "From the request's Kafka timestamp to its reply being acknowledged by the broker.",
    ),
    (
        "chater_gpt_processing_seconds",
        "From consuming a request to its reply being acknowledged by the broker.",
    ),
    ("chater_gpt_messages_consumed_total", "Messages taken from the request topic."),
    ("chater_gpt_rejected_without_key_total", "Messages dropped because no key could be found."),
    ("chater_gpt_replies_total", "Replies (answers and error replies) acknowledged by the broker."),
    ("chater_gpt_reply_delivery_failures_total", "Reply deliveries that failed and are retried."),
    (
        "chater_gpt_unfinished_requests",
        "Requests consumed and not yet answered (reply acknowledged).",
    ),
    (
        "chater_gpt_in_flight_requests",
        "Deprecated: the same value as chater_gpt_unfinished_requests.",
    ),
    ("chater_gpt_paused_partitions", "Partitions paused, by reason (capacity, breaker, budget)."),
    ("chater_gpt_consumer_lag", "Messages behind the partition end, per topic and partition."),
    ("chater_gpt_breaker_state", "Circuit breaker per backend: 0 closed, 1 half-open, 2 open."),
    ("chater_gpt_retries_total", "LLM call retries, by backend."),
    ("chater_gpt_rate_limit_waits_total", "Times a request waited for the rate limiter, by scope."),
    ("chater_gpt_rate_limit_wait_seconds_total", "Seconds spent waiting for the rate limiter."),
    ("chater_gpt_cache_hits_total", "Answers served from the response cache."),
    ("chater_gpt_cache_misses_total", "Response cache lookups that found nothing."),
    ("chater_gpt_store_errors_total", "Redis/store operations that failed, by store."),
    ("chater_gpt_json_repairs_total", "JSON answers that failed their check and were re-asked."),
    (
        "chater_gpt_jobs_finished_total",
        "Jobs of the job API finished by the core, by status: completed, error, expired.",
    ),
]


class _Bounded:
    """Maps free label values to themselves, or to "other" once too many were seen."""

    def __init__(self, limit: int = MAX_LABEL_VALUES) -> None:
        self._seen: set[str] = set()
        self._limit = limit

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) >= self._limit:
            return OTHER
        self._seen.add(value)
        return value


class Metrics:
    """Every chater-gpt metric, in its own registry; safe to call from any thread."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._scrape_hooks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._model = _Bounded()
        self._backend = _Bounded()
        self._name = _Bounded()  # stores and rate-limit scopes
        self._children: dict[tuple[Any, ...], Any] = {}
        self._lag_series: set[tuple[str, int]] = set()
        self._pause_reasons: set[PauseReason] = set(PauseReason)
        self._breakers: set[str] = set()
        self._define()
        self._prebind()

    def _define(self) -> None:
        r = self.registry
        self._requests = Counter(
            "chater_gpt_requests",
            "Requests by outcome",
            ["outcome", "code", "model", "backend", "route"],
            registry=r,
        )
        self._json_repairs = Counter(
            "chater_gpt_json_repairs", "JSON answer repairs", ["route"], registry=r
        )
        self._error_replies = Counter(
            "chater_gpt_error_replies", "Error replies", ["code"], registry=r
        )
        self._replayed = Counter("chater_gpt_replayed", "Replayed requests", registry=r)
        self._prompt_tokens = Counter(
            "chater_gpt_prompt_tokens", "Prompt tokens", ["model"], registry=r
        )
        self._completion_tokens = Counter(
            "chater_gpt_completion_tokens", "Completion tokens", ["model"], registry=r
        )
        self._cost = Counter(
            "chater_gpt_cost_usd", "USD at list prices", ["model", "provider"], registry=r
        )
        self._backend_latency = Histogram(
            "chater_gpt_backend_latency_seconds",
            "Backend call latency",
            ["backend"],
            buckets=LLM_LATENCY_BUCKETS,
            registry=r,
        )
        self._end_to_end = Histogram(
            "chater_gpt_end_to_end_latency_seconds",
            "Kafka timestamp to reply acknowledged",
            buckets=END_TO_END_BUCKETS,
            registry=r,
        )
        self._processing = Histogram(
            "chater_gpt_processing_seconds",
            "Consumed to reply acknowledged",
            buckets=END_TO_END_BUCKETS,
            registry=r,
        )
        self._consumed = Counter("chater_gpt_messages_consumed", "Messages consumed", registry=r)
        self._rejected_without_key = Counter(
            "chater_gpt_rejected_without_key", "Messages dropped without a key", registry=r
        )
        self._replies = Counter("chater_gpt_replies", "Replies acknowledged", registry=r)
        self._delivery_failures = Counter(
            "chater_gpt_reply_delivery_failures", "Reply delivery failures", registry=r
        )
        self._unfinished = Gauge(
            "chater_gpt_unfinished_requests",
            "Requests consumed, reply not acknowledged",
            registry=r,
        )
        # The old name, kept for existing dashboards; it counted the same, but "in flight"
        # is MAX_IN_FLIGHT's word for requests being processed.
        self._in_flight_deprecated = Gauge(
            "chater_gpt_in_flight_requests",
            "Deprecated: chater_gpt_unfinished_requests",
            registry=r,
        )
        self._paused = Gauge(
            "chater_gpt_paused_partitions", "Paused partitions", ["reason"], registry=r
        )
        self._lag = Gauge(
            "chater_gpt_consumer_lag", "Consumer lag", ["topic", "partition"], registry=r
        )
        self._breaker = Gauge("chater_gpt_breaker_state", "Breaker state", ["backend"], registry=r)
        self._retries = Counter("chater_gpt_retries", "Retries", ["backend"], registry=r)
        self._rate_waits = Counter(
            "chater_gpt_rate_limit_waits", "Rate-limit waits", ["scope"], registry=r
        )
        self._rate_wait_seconds = Counter(
            "chater_gpt_rate_limit_wait_seconds", "Rate-limit wait seconds", ["scope"], registry=r
        )
        self._cache_hits = Counter("chater_gpt_cache_hits", "Cache hits", registry=r)
        self._cache_misses = Counter("chater_gpt_cache_misses", "Cache misses", registry=r)
        self._store_errors = Counter(
            "chater_gpt_store_errors", "Store errors", ["store"], registry=r
        )
        self._jobs_finished = Counter(
            "chater_gpt_jobs_finished", "Jobs finished", ["status"], registry=r
        )

    def _prebind(self) -> None:
        # Known, bounded label values exist (at 0) from the start: dashboards and
        # rate() see every series, and the hot path finds them in a dict.
        for code in ErrorCode:
            self._children[("error_reply", code.value)] = self._error_replies.labels(code.value)
        for reason in PauseReason:
            self._paused.labels(reason).set(0)
        for store in ("history", "outcomes"):
            self._children[("store", store)] = self._store_errors.labels(store)
        for status in ("completed", "error", "expired"):
            self._children[("job", status)] = self._jobs_finished.labels(status)

    def _child(self, family: Any, key: tuple[Any, ...], *labels: str) -> Any:
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(*labels)
        return child

    # --- ProcessorObserver ----------------------------------------------------------

    def request_done(
        self, *, outcome: str, code: str, model: str, backend: str, route: str
    ) -> None:
        model, backend = self._model(model), self._backend(backend)
        key = ("request", outcome, code, model, backend, route)
        self._child(self._requests, key, outcome, code, model, backend, route).inc()
        if outcome == "error":
            self._child(self._error_replies, ("error_reply", code), code).inc()

    def json_repaired(self, *, route: str) -> None:
        self._child(self._json_repairs, ("json_repair", route), route).inc()

    def tokens(self, *, model: str, prompt: int, completion: int) -> None:
        model = self._model(model)
        self._child(self._prompt_tokens, ("prompt", model), model).inc(max(prompt, 0))
        self._child(self._completion_tokens, ("completion", model), model).inc(max(completion, 0))

    def cost(self, *, model: str, provider: str, usd: float) -> None:
        model, provider = self._model(model), self._backend(provider)
        self._child(self._cost, ("cost", model, provider), model, provider).inc(max(usd, 0.0))

    def backend_latency(self, *, backend: str, seconds: float) -> None:
        backend = self._backend(backend)
        self._child(self._backend_latency, ("latency", backend), backend).observe(seconds)

    def replayed(self) -> None:
        self._replayed.inc()

    def store_error(self, *, store: str) -> None:
        store = self._name(store)
        self._child(self._store_errors, ("store", store), store).inc()

    # --- JobObserver ------------------------------------------------------------------

    def job_finished(self, *, status: str) -> None:
        self._child(self._jobs_finished, ("job", status), status).inc()

    # --- PipelineObserver -----------------------------------------------------------

    def consumed(self, count: int) -> None:
        self._consumed.inc(count)

    def rejected_without_key(self) -> None:
        self._rejected_without_key.inc()

    def replied(self, *, kafka_timestamp_ms: int | None, seconds_in_service: float) -> None:
        self._replies.inc()
        self._processing.observe(seconds_in_service)
        if kafka_timestamp_ms is not None and kafka_timestamp_ms > 0:
            # Producer clocks may run ahead of ours; a negative age is clock skew, not speed.
            self._end_to_end.observe(max(0.0, time.time() - kafka_timestamp_ms / 1000))

    def delivery_failed(self) -> None:
        self._delivery_failures.inc()

    # --- resilience layer -----------------------------------------------------------

    def retried(self, *, backend: str) -> None:
        backend = self._backend(backend)
        self._child(self._retries, ("retry", backend), backend).inc()

    def retry_hook(self, backend: str, attempt: int, exc: BaseException) -> None:
        """`resilience.guards.RetryHook`: pass it as `GuardHooks(on_retry=...)`."""
        self.retried(backend=backend)

    def rate_limit_waited(self, seconds: float, *, scope: str = "global") -> None:
        scope = self._name(scope)
        self._child(self._rate_waits, ("rate_waits", scope), scope).inc()
        self._child(self._rate_wait_seconds, ("rate_secs", scope), scope).inc(max(seconds, 0.0))

    def cache_hit(self) -> None:
        self._cache_hits.inc()

    def cache_miss(self) -> None:
        self._cache_misses.inc()

    # --- state gauges (set at scrape time, or whenever the state changes) -----------

    def set_unfinished(self, count: int) -> None:
        self._unfinished.set(count)
        self._in_flight_deprecated.set(count)

    def set_paused(self, reasons: Iterable[PauseReason], partitions: int) -> None:
        """Every paused partition counts once under each reason that holds it paused."""
        active = set(reasons)
        with self._lock:
            self._pause_reasons |= active
            known = list(self._pause_reasons)
        for reason in known:
            self._paused.labels(reason).set(partitions if reason in active else 0)

    def set_breaker_states(self, states: Mapping[str, BreakerState]) -> None:
        for backend, state in states.items():
            self.set_breaker_state(backend, state)

    def set_breaker_state(self, backend: str, state: BreakerState) -> None:
        value = BREAKER_STATE_VALUES.get(state)
        if value is not None:
            self._breaker.labels(self._backend(backend)).set(value)

    def observe_stats(self, stats_json: str) -> None:
        """librdkafka `stats_cb`: replace the lag series with the partitions reported now."""
        try:
            lags = lag_from_stats(stats_json)
        except (ValueError, TypeError, AttributeError):
            return  # a malformed document must not break the consumer thread
        with self._lock:
            for topic, partition in self._lag_series - lags.keys():
                self._lag.remove(topic, str(partition))
            for (topic, partition), lag in lags.items():
                self._lag.labels(topic, str(partition)).set(lag)
            self._lag_series = set(lags)

    # --- exposition -----------------------------------------------------------------

    def add_scrape_hook(self, hook: Callable[[], None]) -> None:
        """Run `hook` before each exposition (to sample state into the gauges)."""
        self._scrape_hooks.append(hook)

    def exposition(self) -> bytes:
        """The registry in Prometheus text format, after the scrape hooks ran."""
        for hook in self._scrape_hooks:
            hook()
        return generate_latest(self.registry)


def metrics_markdown() -> str:
    """The README's metrics table, one row per metric in METRIC_DOCS."""
    rows = [f"| `{name}` | {description} |" for name, description in METRIC_DOCS]
    return "\n".join(["| metric | meaning |", "| --- | --- |", *rows]) + "\n"
