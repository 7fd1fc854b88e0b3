"""Health probes and the metrics endpoint, served by aiohttp on METRICS_PORT.

- `/livez`: 200 while the service loop's heartbeat is recent, else 503.
- `/readyz`: 200 when every readiness check passes (Kafka, Redis, breakers, not
  draining, budget not spent, heartbeat), else 503 naming each failing check.
- `/healthz`: JSON with every check, in-flight work, pauses, breakers and memory.
- `/metrics`: Prometheus text format.

The server reads the service through the small `HealthSource` Protocol; probes
never call the LLM, and the Redis ping is cached briefly behind a lock so a
storm of probes costs one ping (`probes.RedisCheck`). `probes.ServiceHealth` adapts the
running service.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from chater_gpt.domain import BreakerState, PauseReason
from chater_gpt.observability.metrics import Metrics

ROUTES = ("/livez", "/readyz", "/healthz", "/metrics")

# Readiness checks, in the order they are reported.
READINESS_CHECKS = ("heartbeat", "kafka", "redis", "breaker", "draining", "budget")


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail}


class HealthSource(Protocol):
    """What the probes read; every method is cheap (no LLM, no unbounded I/O)."""

    def heartbeat_age(self) -> float:
        """Seconds since the service loop last beat."""
        ...

    def kafka_check(self) -> CheckResult: ...

    async def redis_check(self) -> CheckResult:
        """Ok when Redis answers a ping, or is not configured."""
        ...

    def breaker_states(self) -> Mapping[str, BreakerState]:
        """Backend name → its breaker's state."""
        ...

    def draining(self) -> bool: ...

    def in_flight(self) -> int: ...

    def pause_reasons(self) -> frozenset[PauseReason]: ...

    def paused_partitions(self) -> int: ...


def readiness(
    *,
    heartbeat_age: float,
    stale_after: float,
    kafka: CheckResult,
    redis: CheckResult,
    breakers: Mapping[str, BreakerState],
    draining: bool,
    pause_reasons: frozenset[PauseReason],
) -> dict[str, CheckResult]:
    """Every readiness check by name (see READINESS_CHECKS)."""
    open_breakers = sorted(name for name, state in breakers.items() if state == BreakerState.OPEN)
    return {
        "heartbeat": _heartbeat_check(heartbeat_age, stale_after),
        "kafka": kafka,
        "redis": redis,
        "breaker": (
            CheckResult(False, "open: " + ", ".join(open_breakers))
            if open_breakers
            else CheckResult(True, "no breaker open")
        ),
        "draining": (
            CheckResult(False, "shutting down") if draining else CheckResult(True, "running")
        ),
        "budget": (
            CheckResult(False, "daily token budget spent; consumption paused")
            if PauseReason.BUDGET in pause_reasons
            else CheckResult(True, "within budget")
        ),
    }


def _heartbeat_check(age: float, stale_after: float) -> CheckResult:
    if age < stale_after:
        return CheckResult(True, f"last beat {age:.1f} s ago")
    return CheckResult(False, f"no heartbeat for {age:.1f} s (limit {stale_after:g} s)")


def rss_bytes() -> int:
    """Resident memory of this process (the peak where /proc is unavailable)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --- the HTTP server ----------------------------------------------------------------


def _identity(text: str) -> str:
    return text


def _json(body: Mapping[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


class HealthServer:
    def __init__(
        self,
        source: HealthSource,
        metrics: Metrics,
        *,
        host: str = "0.0.0.0",
        port: int = 8000,
        stale_after: float = 30.0,
        redact: Callable[[str], str] = _identity,
    ) -> None:
        self._source = source
        self._metrics = metrics
        self._host = host
        self._port = port
        self._stale_after = stale_after
        self._redact = redact
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        handlers: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] = {
            "/livez": self._livez,
            "/readyz": self._readyz,
            "/healthz": self._healthz,
            "/metrics": self._metrics_text,
        }
        app = web.Application()
        for path in ROUTES:
            app.router.add_get(path, handlers[path])
        return app

    async def start(self) -> int:
        """Serve; returns the bound port (an ephemeral one when `port` is 0)."""
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        port: int = runner.addresses[0][1]
        return port

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # --- handlers -------------------------------------------------------------------

    async def _livez(self, _: web.Request) -> web.Response:
        check = _heartbeat_check(self._source.heartbeat_age(), self._stale_after)
        body = {"status": "ok" if check.ok else "wedged", **check.as_json()}
        return _json(body, 200 if check.ok else 503)

    async def _readyz(self, _: web.Request) -> web.Response:
        checks = await self._checks()
        failing = {name: self._redact(c.detail) for name, c in checks.items() if not c.ok}
        if failing:
            return _json({"status": "not ready", "failing": failing}, 503)
        return _json({"status": "ready"})

    async def _healthz(self, _: web.Request) -> web.Response:
        # Always 200: a diagnostic view that must be readable while the service is failing.
        checks = await self._checks()
        source = self._source
        return _json(
            {
                "status": "ok" if all(c.ok for c in checks.values()) else "degraded",
                "checks": {
                    name: {"ok": c.ok, "detail": self._redact(c.detail)}
                    for name, c in checks.items()
                },
                "in_flight": source.in_flight(),
                "pause_reasons": sorted(source.pause_reasons()),
                "paused_partitions": source.paused_partitions(),
                "breakers": dict(source.breaker_states()),
                "memory": {"rss_bytes": rss_bytes()},
            }
        )

    async def _metrics_text(self, _: web.Request) -> web.Response:
        source = self._source
        self._metrics.set_in_flight(source.in_flight())
        self._metrics.set_paused(source.pause_reasons(), source.paused_partitions())
        self._metrics.set_breaker_states(source.breaker_states())
        return web.Response(
            body=self._metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _checks(self) -> dict[str, CheckResult]:
        source = self._source
        return readiness(
            heartbeat_age=source.heartbeat_age(),
            stale_after=self._stale_after,
            kafka=source.kafka_check(),
            redis=await source.redis_check(),
            breakers=source.breaker_states(),
            draining=source.draining(),
            pause_reasons=source.pause_reasons(),
        )
