"""Budget counters in memory: all-or-nothing reservations over both meters, expiry as in
Redis, a bound."""

from __future__ import annotations

from chater_gpt.storage.budgets import (
    COUNTER_TTL_SECONDS,
    Charge,
    Counter,
    InMemoryBudgetStore,
    Meter,
)
from tests.support.fakes import FakeClock

DAY = "2026-03-01"
GLOBAL, USER, TENANT = Counter("global"), Counter("user:a"), Counter("tenant:t")
GLOBAL_USD, USER_USD = Counter("global", Meter.COST), Counter("user:a", Meter.COST)


async def test_a_reservation_charges_every_scope_or_none() -> None:
    store = InMemoryBudgetStore()
    charges = [Charge(GLOBAL, 40, 100), Charge(USER, 40, 50), Charge(TENANT, 40)]
    assert await store.reserve(DAY, charges) is None
    assert await store.reserve(DAY, [Charge(GLOBAL, 20, 100), Charge(USER, 20, 50)]) == 1
    assert await store.used(DAY, GLOBAL) == 40
    assert await store.used(DAY, TENANT) == 40
    await store.adjust(DAY, [(GLOBAL, -15), (USER, -15)])
    assert (await store.used(DAY, GLOBAL), await store.used(DAY, USER)) == (25, 25)
    assert await store.used("2026-03-02", GLOBAL) == 0  # counters are per day


async def test_the_money_meter_is_a_counter_of_its_own_in_the_same_reservation() -> None:
    store = InMemoryBudgetStore()
    first = [Charge(GLOBAL, 10, 100), Charge(USER_USD, 600, 1000)]
    assert await store.reserve(DAY, first) is None
    # tokens have room, money does not: nothing is charged, the money charge is named
    assert await store.reserve(DAY, [Charge(GLOBAL, 10, 100), Charge(USER_USD, 401, 1000)]) == 1
    assert await store.used(DAY, GLOBAL) == 10
    assert await store.used(DAY, USER_USD) == 600
    assert await store.used(DAY, USER) == 0  # tokens and money never share a counter
    assert await store.reserve(DAY, [Charge(USER_USD, 400, 1000)]) is None  # exactly full
    await store.adjust(DAY, [(GLOBAL_USD, 7), (USER_USD, -1000)])
    assert (await store.used(DAY, GLOBAL_USD), await store.used(DAY, USER_USD)) == (7, 0)


async def test_counters_expire_two_days_after_their_last_reservation() -> None:
    clock = FakeClock(0.0)
    store = InMemoryBudgetStore(clock=clock)
    await store.reserve(DAY, [Charge(GLOBAL, 10)])
    clock.advance(COUNTER_TTL_SECONDS - 1)
    assert await store.used(DAY, GLOBAL) == 10
    clock.advance(1)
    assert await store.used(DAY, GLOBAL) == 0


async def test_at_most_max_counters_are_kept_the_busiest_stay() -> None:
    store = InMemoryBudgetStore(max_counters=3)
    for user in ("a", "b", "c", "d"):
        await store.reserve(DAY, [Charge(GLOBAL, 1), Charge(Counter(f"user:{user}"), 1)])
    assert await store.used(DAY, GLOBAL) == 4  # used by every request: never dropped
    assert await store.used(DAY, USER) == 0
    assert await store.used(DAY, Counter("user:d")) == 1
