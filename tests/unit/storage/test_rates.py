"""Rate windows: GCRA arithmetic and the in-memory store (the Redis one is tested
against a real Redis in tests/integration/test_resilience_redis.py)."""

from __future__ import annotations

import pytest

from chater_gpt.storage.rates import InMemoryRateStore, Rate, gcra_step
from tests.support.fakes import FakeClock


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


async def test_a_window_is_forgotten_once_its_time_has_passed() -> None:
    clock = FakeClock(0.0)
    store = InMemoryRateStore(clock)
    rate = Rate(1, 10.0)
    assert await store.step("user:a", rate, reserve=False) is None
    assert await store.step("user:a", rate, reserve=False) == pytest.approx(10.0)
    clock.advance(10.0)
    assert len(store._tats) == 1
    assert await store.step("user:a", rate, reserve=False) is None  # as if never seen
    clock.advance(10.0)
    assert await store.step("user:b", rate, reserve=False) is None
    assert store._tats.get("user:a") is None  # expired: nothing kept for it


async def test_at_most_max_scopes_windows_are_kept() -> None:
    clock = FakeClock(0.0)
    store = InMemoryRateStore(clock, max_scopes=2)
    rate = Rate(1, 60.0)
    for scope in ("a", "b", "c"):
        assert await store.step(scope, rate, reserve=False) is None
    assert len(store._tats) == 2
    assert await store.step("c", rate, reserve=False) == pytest.approx(60.0)
