"""Budget counters in memory: all-or-nothing reservations, expiry as in Redis, a bound."""

from __future__ import annotations

from chater_gpt.storage.budgets import COUNTER_TTL_SECONDS, InMemoryBudgetStore
from tests.support.fakes import FakeClock

DAY = "2026-03-01"


async def test_a_reservation_charges_every_scope_or_none() -> None:
    store = InMemoryBudgetStore()
    assert (
        await store.reserve(DAY, [("global", 100), ("user:a", 50), ("tenant:t", None)], 40) is None
    )
    assert await store.reserve(DAY, [("global", 100), ("user:a", 50)], 20) == 1
    assert await store.used(DAY, "global") == 40
    assert await store.used(DAY, "tenant:t") == 40
    await store.adjust(DAY, ["global", "user:a"], -15)
    assert (await store.used(DAY, "global"), await store.used(DAY, "user:a")) == (25, 25)
    assert await store.used("2026-03-02", "global") == 0  # counters are per day


async def test_counters_expire_two_days_after_their_last_reservation() -> None:
    clock = FakeClock(0.0)
    store = InMemoryBudgetStore(clock=clock)
    await store.reserve(DAY, [("global", None)], 10)
    clock.advance(COUNTER_TTL_SECONDS - 1)
    assert await store.used(DAY, "global") == 10
    clock.advance(1)
    assert await store.used(DAY, "global") == 0


async def test_at_most_max_counters_are_kept_the_busiest_stay() -> None:
    store = InMemoryBudgetStore(max_counters=3)
    for user in ("a", "b", "c", "d"):
        await store.reserve(DAY, [("global", None), (f"user:{user}", None)], 1)
    assert await store.used(DAY, "global") == 4  # used by every request: never dropped
    assert await store.used(DAY, "user:a") == 0
    assert await store.used(DAY, "user:d") == 1
