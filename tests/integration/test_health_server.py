"""The health server over real HTTP on 127.0.0.1: probes follow the service's state,
/metrics serves the Prometheus text format, and the Redis check pings a real Redis."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from chater_gpt.domain import BreakerState, PauseReason
from chater_gpt.observability.health import ROUTES, CheckResult, HealthServer, HealthSource
from chater_gpt.observability.metrics import Metrics
from chater_gpt.observability.probes import RedisCheck

pytestmark = pytest.mark.integration


ASSIGNED = CheckResult(True, "3 partition(s) assigned")


@dataclass
class FakeSource:
    """A service whose state the test flips."""

    heartbeat: float = 0.5
    kafka: CheckResult = ASSIGNED
    redis_up: bool = True
    breakers: dict[str, BreakerState] = field(
        default_factory=lambda: {"openai": BreakerState.CLOSED}
    )
    is_draining: bool = False
    reasons: frozenset[PauseReason] = frozenset()
    in_flight_count: int = 0
    paused: int = 0
    redis: RedisCheck | None = None  # a real check instead of `redis_up`

    def heartbeat_age(self) -> float:
        return self.heartbeat

    def kafka_check(self) -> CheckResult:
        return self.kafka

    async def redis_check(self) -> CheckResult:
        if self.redis is not None:
            return await self.redis()
        return CheckResult(True, "PING answered") if self.redis_up else CheckResult(False, "down")

    def breaker_states(self) -> Mapping[str, BreakerState]:
        return self.breakers

    def draining(self) -> bool:
        return self.is_draining

    def in_flight(self) -> int:
        return self.in_flight_count

    def pause_reasons(self) -> frozenset[PauseReason]:
        return self.reasons

    def paused_partitions(self) -> int:
        return self.paused


@dataclass
class Served:
    source: FakeSource
    metrics: Metrics
    base: str
    http: aiohttp.ClientSession

    async def get(self, path: str) -> tuple[int, str]:
        async with self.http.get(self.base + path) as response:
            return response.status, await response.text()

    async def get_json(self, path: str) -> tuple[int, dict[str, Any]]:
        async with self.http.get(self.base + path) as response:
            assert response.content_type == "application/json"
            return response.status, await response.json()


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    source = FakeSource()
    _: HealthSource = source  # the fake must satisfy the Protocol the service implements
    metrics = Metrics()
    server = HealthServer(source, metrics, host="127.0.0.1", port=0, stale_after=10)
    port = await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            yield Served(source, metrics, f"http://127.0.0.1:{port}", http)
    finally:
        await server.stop()


async def test_every_route_is_served(served: Served) -> None:
    for path in ROUTES:
        status, _ = await served.get(path)
        assert status == 200, path


async def test_livez_fails_while_the_heartbeat_is_stale(served: Served) -> None:
    status, body = await served.get_json("/livez")
    assert (status, body["status"]) == (200, "ok")

    served.source.heartbeat = 11.0
    status, body = await served.get_json("/livez")
    assert (status, body["status"]) == (503, "wedged")
    assert "no heartbeat" in str(body["detail"])

    served.source.heartbeat = 0.1
    assert (await served.get("/livez"))[0] == 200


@pytest.mark.parametrize(
    ("breakage", "check"),
    [
        ({"redis_up": False}, "redis"),
        ({"breakers": {"openai": BreakerState.OPEN, "koboldcpp": BreakerState.CLOSED}}, "breaker"),
        ({"is_draining": True}, "draining"),
        ({"reasons": frozenset({PauseReason.BUDGET})}, "budget"),
        ({"kafka": CheckResult(False, "consumer has not polled for 45 s")}, "kafka"),
    ],
)
async def test_readyz_names_the_failing_check_and_recovers(
    served: Served, breakage: dict[str, object], check: str
) -> None:
    assert (await served.get_json("/readyz")) == (200, {"status": "ready"})
    healthy = {name: getattr(served.source, name) for name in breakage}

    for name, broken in breakage.items():
        setattr(served.source, name, broken)
    status, body = await served.get_json("/readyz")
    assert status == 503
    assert body["status"] == "not ready"
    assert set(body["failing"]) == {check}

    for name, value in healthy.items():
        setattr(served.source, name, value)
    assert (await served.get_json("/readyz")) == (200, {"status": "ready"})


async def test_readyz_lists_every_failing_check_at_once(served: Served) -> None:
    served.source.redis_up = False
    served.source.is_draining = True
    status, body = await served.get_json("/readyz")
    assert status == 503
    assert set(body["failing"]) == {"redis", "draining"}


async def test_healthz_reports_every_check_work_and_memory(served: Served) -> None:
    served.source.in_flight_count = 12
    served.source.reasons = frozenset({PauseReason.CAPACITY})
    served.source.paused = 3
    served.source.breakers = {"openai": BreakerState.HALF_OPEN}
    status, body = await served.get_json("/healthz")

    assert status == 200
    assert body["status"] == "ok"
    checks = body["checks"]
    assert isinstance(checks, dict)
    assert set(checks) == {"heartbeat", "kafka", "redis", "breaker", "draining", "budget"}
    assert all(c["ok"] for c in checks.values())
    assert body["in_flight"] == 12
    assert body["pause_reasons"] == ["capacity"]
    assert body["paused_partitions"] == 3
    assert body["breakers"] == {"openai": "half_open"}
    memory = body["memory"]
    assert isinstance(memory, dict)
    assert memory["rss_bytes"] > 1 << 20

    served.source.redis_up = False
    status, body = await served.get_json("/healthz")
    assert status == 200  # diagnostic view: readable while failing
    assert body["status"] == "degraded"
    assert body["checks"]["redis"] == {"ok": False, "detail": "down"}


async def test_metrics_serves_the_text_format_with_sampled_state(served: Served) -> None:
    served.metrics.request_done(
        outcome="ok", code="", model="gpt-4o-mini", backend="openai", route="chat"
    )
    served.metrics.tokens(model="gpt-4o-mini", prompt=50, completion=100)
    served.source.in_flight_count = 4
    served.source.reasons = frozenset({PauseReason.BREAKER})
    served.source.paused = 2
    served.source.breakers = {"openai": BreakerState.OPEN}

    async with served.http.get(served.base + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    ok = (
        ("backend", "openai"),
        ("code", ""),
        ("model", "gpt-4o-mini"),
        ("outcome", "ok"),
        ("route", "chat"),
    )
    assert samples[("chater_gpt_requests_total", ok)] == 1
    assert samples[("chater_gpt_completion_tokens_total", (("model", "gpt-4o-mini"),))] == 100
    assert samples[("chater_gpt_in_flight_requests", ())] == 4
    assert samples[("chater_gpt_paused_partitions", (("reason", "breaker"),))] == 2
    assert samples[("chater_gpt_paused_partitions", (("reason", "capacity"),))] == 0
    assert samples[("chater_gpt_breaker_state", (("backend", "openai"),))] == 2


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket closes


async def test_readyz_pings_a_real_redis_and_fails_when_it_is_unreachable(
    served: Served, redis_url: str
) -> None:
    live = Redis.from_url(redis_url)
    dead = Redis(host="127.0.0.1", port=_closed_port(), socket_connect_timeout=0.5)
    try:
        served.source.redis = RedisCheck(live.ping, timeout=2.0, ttl=0)
        assert (await served.get_json("/readyz")) == (200, {"status": "ready"})

        # The client's own retries may outlast the probe's timeout: either way, not ready.
        served.source.redis = RedisCheck(dead.ping, timeout=1.0, ttl=0)
        status, body = await served.get_json("/readyz")
        assert status == 503
        assert set(body["failing"]) == {"redis"}

        served.source.redis = RedisCheck(live.ping, timeout=2.0, ttl=0)
        assert (await served.get_json("/readyz")) == (200, {"status": "ready"})
    finally:
        await live.aclose()
        await dead.aclose()


async def test_start_reports_the_bound_port_and_stop_closes_it() -> None:
    server = HealthServer(FakeSource(), Metrics(), host="127.0.0.1", port=0)
    port = await server.start()
    assert port > 0
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/livez") as r:
        assert r.status == 200
    await server.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as http:
            await http.get(f"http://127.0.0.1:{port}/livez")
