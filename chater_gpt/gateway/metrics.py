"""The gateway's Prometheus metrics, in a registry of its own."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

GATEWAY_METRIC_DOCS: list[tuple[str, str]] = [
    (
        "chater_gpt_gateway_requests_total",
        "HTTP API requests answered, by route (its path template) and status.",
    ),
    ("chater_gpt_gateway_request_seconds", "From an HTTP API request to its answer, by route."),
    ("chater_gpt_gateway_open_requests", "Requests waiting for their reply."),
    (
        "chater_gpt_gateway_jobs_submitted_total",
        "Job submissions (POST /ai_request), by outcome: accepted, or the error code.",
    ),
    (
        "chater_gpt_gateway_reply_refetches_total",
        "Times the reply reader started afresh after a quiet wait (embedded broker).",
    ),
]
_DOCS = dict(GATEWAY_METRIC_DOCS)
_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)


class GatewayMetrics:
    def __init__(self, refetches: Callable[[], int] = lambda: 0) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        name = "chater_gpt_gateway_"
        self._requests = Counter(
            f"{name}requests",
            _DOCS[f"{name}requests_total"],
            ["route", "status"],
            registry=self.registry,
        )
        self._seconds = Histogram(
            f"{name}request_seconds",
            _DOCS[f"{name}request_seconds"],
            ["route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self._jobs = Counter(
            f"{name}jobs_submitted",
            _DOCS[f"{name}jobs_submitted_total"],
            ["outcome"],
            registry=self.registry,
        )
        self._open = Gauge(
            f"{name}open_requests", _DOCS[f"{name}open_requests"], registry=self.registry
        )
        refetch_counter = Counter(
            f"{name}reply_refetches",
            _DOCS[f"{name}reply_refetches_total"],
            registry=self.registry,
        )
        self._refetch_counter = refetch_counter
        self._refetches = refetches
        self._refetches_counted = 0

    def answered(self, route: str, status: int, seconds: float) -> None:
        """`route`: the matched path template (bounded), never the raw path."""
        self._requests.labels(route, str(status)).inc()
        self._seconds.labels(route).observe(seconds)

    def job_submitted(self, outcome: str) -> None:
        self._jobs.labels(outcome).inc()

    def open_requests(self, count: int) -> None:
        self._open.set(count)

    def render(self) -> bytes:
        # The reader counts in its own thread; the counter catches up when scraped.
        behind = self._refetches() - self._refetches_counted
        if behind > 0:
            self._refetch_counter.inc(behind)
            self._refetches_counted += behind
        return generate_latest(self.registry)
