from __future__ import annotations

import pytest

from chater_gpt.resilience.rate_limit import Pacer, RateLimiter
from chater_gpt.storage.rates import InMemoryRateStore, Rate
from tests.support.fakes import FakeClock, RecordingSleep


async def test_pacer_spaces_requests_at_the_rate() -> None:
    clock = FakeClock(0.0)
    store = InMemoryRateStore(clock)
    sleep = RecordingSleep()  # does not advance the clock: all four arrive at once
    pacer = Pacer(store, Rate(120), sleep=sleep)
    for _ in range(4):
        await pacer.wait_turn()
    assert sleep.delays == [0.5, 1.0, 1.5]


async def test_pacer_never_exceeds_the_rate_in_any_window() -> None:
    clock = FakeClock(0.0)
    pacer = Pacer(InMemoryRateStore(clock), Rate(60, 60.0), sleep=RecordingSleep(clock))
    granted = []
    for _ in range(100):
        await pacer.wait_turn()
        granted.append(clock.now)
    for start in granted:
        in_window = [t for t in granted if start <= t < start + 60.0]
        assert len(in_window) <= 60


async def test_refusing_limit_allows_a_burst_then_answers_retry_after() -> None:
    clock = FakeClock(0.0)
    limiter = RateLimiter(InMemoryRateStore(clock))
    rate = Rate(3, 60.0, burst=3)
    assert [await limiter.try_acquire("user:a", rate) for _ in range(3)] == [None] * 3
    retry_after = await limiter.try_acquire("user:a", rate)
    assert retry_after == pytest.approx(20.0)
    assert await limiter.try_acquire("user:b", rate) is None  # scopes are independent
    clock.advance(20.0)
    assert await limiter.try_acquire("user:a", rate) is None
    assert await limiter.try_acquire("user:a", rate) == pytest.approx(20.0)
