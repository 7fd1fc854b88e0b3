"""The probe logic without a server: readiness rules, the cached Redis ping, and
the service adapter's Kafka check."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from chater_gpt.domain import BreakerState, PauseReason
from chater_gpt.observability.health import READINESS_CHECKS, CheckResult, readiness, rss_bytes
from chater_gpt.observability.probes import Heartbeat, RedisCheck, ServiceHealth
from tests.support.fakes import FakeClock

OK = CheckResult(True, "fine")
OPEN = BreakerState.OPEN


def ready(**overrides: object) -> dict[str, CheckResult]:
    args: dict[str, object] = {
        "heartbeat_age": 1.0,
        "stale_after": 30.0,
        "kafka": OK,
        "redis": OK,
        "breakers": {"openai": BreakerState.CLOSED},
        "draining": False,
        "pause_reasons": frozenset(),
    }
    args.update(overrides)
    return readiness(**args)  # type: ignore[arg-type]


def failing(checks: dict[str, CheckResult]) -> set[str]:
    return {name for name, check in checks.items() if not check.ok}


def test_all_checks_pass_in_a_healthy_service() -> None:
    checks = ready()
    assert tuple(checks) == READINESS_CHECKS
    assert failing(checks) == set()


def test_each_failure_is_named() -> None:
    assert failing(ready(breakers={"openai": OPEN, "kobold": BreakerState.CLOSED})) == {"breaker"}
    assert "openai" in ready(breakers={"openai": OPEN})["breaker"].detail
    assert failing(ready(breakers={"openai": BreakerState.HALF_OPEN})) == set()
    assert failing(ready(draining=True)) == {"draining"}
    assert failing(ready(pause_reasons=frozenset({PauseReason.BUDGET}))) == {"budget"}
    # Backpressure is normal work, not unreadiness.
    assert failing(ready(pause_reasons=frozenset({PauseReason.CAPACITY}))) == set()
    assert failing(ready(heartbeat_age=31.0)) == {"heartbeat"}
    assert failing(ready(redis=CheckResult(False, "down"), kafka=CheckResult(False, "x"))) == {
        "redis",
        "kafka",
    }


async def test_redis_check_caches_its_result_and_pings_once_for_concurrent_probes() -> None:
    clock = FakeClock(1000.0)
    pings = 0
    up = True

    async def ping() -> bool:
        nonlocal pings
        pings += 1
        await asyncio.sleep(0)
        if not up:
            raise ConnectionError("Error 111 connecting to redis://:hunter2@10.0.0.1:6379")
        return True

    check = RedisCheck(ping, ttl=1.5, clock=clock)
    results = await asyncio.gather(*(check() for _ in range(10)))
    assert all(r.ok for r in results)
    assert pings == 1

    up = False
    clock.now += 1.0
    assert (await check()).ok  # still the cached answer
    clock.now += 1.0
    result = await check()
    assert not result.ok
    assert pings == 2
    assert "hunter2" not in result.detail
    assert "ConnectionError" in result.detail


async def test_redis_check_times_out_a_hanging_ping() -> None:
    never = asyncio.Event()

    async def hang() -> None:
        await never.wait()

    result = await RedisCheck(hang, timeout=0.05)()
    assert not result.ok
    assert "0.05" in result.detail


async def test_redis_not_configured_is_ok() -> None:
    result = await RedisCheck(None)()
    assert result.ok
    assert result.detail == "not configured"


def test_heartbeat_age_grows_until_the_next_beat() -> None:
    clock = FakeClock(1000.0)
    heartbeat = Heartbeat(clock)
    clock.now += 12
    assert heartbeat.age() == 12
    heartbeat.beat()
    assert heartbeat.age() == 0


@dataclass
class FakeTracker:
    unfinished: int = 0


@dataclass
class FakePipeline:
    pause_reasons: frozenset[PauseReason] = frozenset()
    tracker: FakeTracker = field(default_factory=FakeTracker)


@dataclass
class FakeIngress:
    last_poll: float
    assignment: frozenset[tuple[str, int]] = frozenset()
    paused: bool = False
    broker_error: str | None = None


@dataclass
class FakeService:
    pipeline: FakePipeline | None = None
    ingress: FakeIngress | None = None


def adapter(service: FakeService, clock: FakeClock) -> ServiceHealth:
    return ServiceHealth(
        service,
        heartbeat=Heartbeat(clock),
        redis=RedisCheck(None),
        draining=lambda: False,
        poll_stale_after=30,
        join_grace=60,
        clock=clock,
    )


def test_kafka_check_follows_the_consumer() -> None:
    clock = FakeClock(1000.0)
    service = FakeService()
    health = adapter(service, clock)
    assert not health.kafka_check().ok  # not started yet

    service.ingress = FakeIngress(last_poll=clock.now)
    check = health.kafka_check()
    assert not check.ok
    assert "waiting" in check.detail

    service.ingress.broker_error = "127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed"
    assert "broker error" in health.kafka_check().detail

    service.ingress.assignment = frozenset({("gpt-send", 0), ("gpt-send", 1)})
    check = health.kafka_check()
    assert check.ok
    assert "2 partition" in check.detail

    clock.now += 31  # the consumer thread stopped polling
    check = health.kafka_check()
    assert not check.ok
    assert "not polled" in check.detail


def test_an_idle_member_without_partitions_is_ready_after_the_join_grace() -> None:
    clock = FakeClock(1000.0)
    service = FakeService(ingress=FakeIngress(last_poll=clock.now))
    health = adapter(service, clock)
    clock.now += 61
    service.ingress = FakeIngress(last_poll=clock.now)
    assert health.kafka_check().ok


def test_unfinished_pauses_and_paused_partitions_come_from_the_pipeline_and_consumer() -> None:
    clock = FakeClock(1000.0)
    service = FakeService()
    health = adapter(service, clock)
    assert (health.unfinished(), health.pause_reasons(), health.paused_partitions()) == (
        0,
        frozenset(),
        0,
    )
    service.pipeline = FakePipeline(frozenset({PauseReason.BREAKER}), FakeTracker(5))
    service.ingress = FakeIngress(
        last_poll=clock.now, assignment=frozenset({("t", 0), ("t", 1), ("t", 2)}), paused=True
    )
    assert health.unfinished() == 5
    assert health.pause_reasons() == {PauseReason.BREAKER}
    assert health.paused_partitions() == 3


def test_rss_is_a_plausible_size() -> None:
    assert 1 << 20 < rss_bytes() < 1 << 36
