from __future__ import annotations

import pytest

from chater_gpt.resilience.rate_limit import MemoryRateStore, Pacer, Rate, RateLimiter, gcra_step
from tests.support.fakes import FakeClock, RecordingSleep


def test_rate_arithmetic() -> None:
    rate = Rate(60, 60.0, burst=3)
    assert rate.interval == 1.0
    assert rate.tolerance == 2.0
    with pytest.raises(ValueError):
        Rate(0)


def test_gcra_reserve_hands_out_consecutive_slots() -> None:
    rate = Rate(60)  # one per second, no burst
    tat, wait = gcra_step(0.0, 100.0, rate, reserve=True)
    assert (tat, wait) == (101.0, 0.0)
    tat, wait = gcra_step(tat, 100.0, rate, reserve=True)
    assert (tat, wait) == (102.0, 1.0)


def test_gcra_refusal_does_not_consume() -> None:
    rate = Rate(60)
    tat, wait = gcra_step(101.0, 100.0, rate, reserve=False)
    assert (tat, wait) == (101.0, 1.0)


async def test_pacer_spaces_requests_at_the_rate() -> None:
    clock = FakeClock(0.0)
    store = MemoryRateStore(clock)
    sleep = RecordingSleep()  # does not advance the clock: all four arrive at once
    pacer = Pacer(store, Rate(120), sleep=sleep)
    for _ in range(4):
        await pacer.wait_turn()
    assert sleep.delays == [0.5, 1.0, 1.5]


async def test_pacer_never_exceeds_the_rate_in_any_window() -> None:
    clock = FakeClock(0.0)
    pacer = Pacer(MemoryRateStore(clock), Rate(60, 60.0), sleep=RecordingSleep(clock))
    granted = []
    for _ in range(100):
        await pacer.wait_turn()
        granted.append(clock.now)
    for start in granted:
        in_window = [t for t in granted if start <= t < start + 60.0]
        assert len(in_window) <= 60


async def test_refusing_limit_allows_a_burst_then_answers_retry_after() -> None:
    clock = FakeClock(0.0)
    limiter = RateLimiter(MemoryRateStore(clock))
    rate = Rate(3, 60.0, burst=3)
    assert [await limiter.try_acquire("user:a", rate) for _ in range(3)] == [None] * 3
    retry_after = await limiter.try_acquire("user:a", rate)
    assert retry_after == pytest.approx(20.0)
    assert await limiter.try_acquire("user:b", rate) is None  # scopes are independent
    clock.advance(20.0)
    assert await limiter.try_acquire("user:a", rate) is None
    assert await limiter.try_acquire("user:a", rate) == pytest.approx(20.0)
