from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chater_gpt.errors import BudgetExhausted
from chater_gpt.resilience.budget import (
    DailyBudget,
    GlobalBudgetExhausted,
    Spend,
    global_scope,
    nanos_to_usd,
    seconds_until_utc_midnight,
    tenant_scope,
    usd_to_nanos,
    user_scope,
)
from chater_gpt.storage.budgets import InMemoryBudgetStore
from tests.support.fakes import FakeClock

ELEVEN_PM = datetime(2026, 3, 1, 23, 0, tzinfo=UTC).timestamp()


def budget(clock: FakeClock) -> DailyBudget:
    return DailyBudget(InMemoryBudgetStore(), clock=clock)


def test_seconds_until_utc_midnight() -> None:
    assert seconds_until_utc_midnight(ELEVEN_PM) == 3600


async def test_settle_replaces_the_estimate_by_the_real_usage() -> None:
    clock = FakeClock(ELEVEN_PM)
    tokens = budget(clock)
    scope = global_scope(1000)
    reservation = await tokens.reserve([scope], 600)
    assert await tokens.used(scope) == 600
    await tokens.settle(reservation, 150)
    assert await tokens.used(scope) == 150
    second = await tokens.reserve([scope], 500)
    await tokens.release(second)
    assert await tokens.used(scope) == 150


async def test_a_reservation_over_the_limit_is_refused_until_midnight() -> None:
    clock = FakeClock(ELEVEN_PM)
    tokens = budget(clock)
    await tokens.reserve([global_scope(1000)], 900)
    with pytest.raises(GlobalBudgetExhausted) as caught:
        await tokens.reserve([global_scope(1000)], 101)
    assert caught.value.retry_after == 3600
    assert await tokens.global_exhausted(1000) is None  # 900 < 1000: small requests still fit
    await tokens.reserve([global_scope(1000)], 100)
    assert await tokens.global_exhausted(1000) == 3600


async def test_scopes_are_charged_all_or_nothing() -> None:
    clock = FakeClock(ELEVEN_PM)
    tokens = budget(clock)
    scopes = [global_scope(10_000), user_scope("Ada@Example.com", 100), tenant_scope("shop", None)]
    await tokens.reserve(scopes, 80)
    with pytest.raises(BudgetExhausted) as caught:
        await tokens.reserve(scopes, 30)
    assert not isinstance(caught.value, GlobalBudgetExhausted)
    assert "user" in caught.value.message
    assert await tokens.used(scopes[0]) == 80  # the global scope was not charged
    assert await tokens.used(scopes[2]) == 80


async def test_usage_per_user_and_day() -> None:
    clock = FakeClock(ELEVEN_PM)
    tokens = budget(clock)
    reservation = await tokens.reserve(
        [global_scope(10**6), user_scope("ada@example.com", None)], 50
    )
    clock.advance(7200)  # settled after midnight: still counted on the day it was made
    await tokens.settle(reservation, 42)
    assert await tokens.usage("ADA@example.com ", "2026-03-01") == 42
    assert await tokens.usage("ada@example.com") == 0  # the new day
    assert await tokens.usage("bob@example.com", "2026-03-01") == 0


def test_money_is_counted_in_whole_nano_usd_rounded_up_without_float_noise() -> None:
    assert usd_to_nanos(0.00015) == 150_000  # 0.00015 * 1e9 is 150000.00000000003
    assert usd_to_nanos(1000 * 0.15 / 1_000_000) == 150_000
    assert usd_to_nanos(0.0000000001) == 1  # a tenth of a nano-USD: never under-counted
    assert usd_to_nanos(-1.0) == 0
    assert usd_to_nanos(25.0) == 25_000_000_000
    assert nanos_to_usd(150_000) == 0.00015


async def test_the_money_reservation_is_settled_to_the_real_cost_or_released() -> None:
    money = budget(FakeClock(ELEVEN_PM))
    scopes = [global_scope(10**6, 1.0), user_scope("ada@example.com", None, 0.01)]
    reservation = await money.reserve(scopes, 1100, 0.00066)
    assert reservation.cost_nanos == 660_000
    assert await money.spent(scopes[1].name) == Spend(1100, 0.00066)
    await money.settle(reservation, 30, 0.0000123)
    assert await money.spent(scopes[0].name) == Spend(30, 0.0000123)
    second = await money.reserve(scopes, 500, 0.005)
    await money.release(second)
    assert await money.spent(scopes[1].name) == Spend(30, 0.0000123)
    third = await money.reserve(scopes, 10, 0.001)
    await money.settle(third, 10)  # no real cost known: the reserved cost stays charged
    assert (await money.spent(scopes[1].name)).cost_usd == 0.0010123


async def test_without_a_cost_nothing_is_metered_in_money() -> None:
    money = budget(FakeClock(ELEVEN_PM))
    scope = global_scope(1000, 0.000001)  # a money limit, but no prices
    reservation = await money.reserve([scope], 100)
    assert reservation.cost_nanos is None
    await money.settle(reservation, 50, 5.0)
    assert await money.spent(scope.name) == Spend(50, 0.0)


async def test_a_spent_user_or_tenant_money_budget_is_answered_until_midnight() -> None:
    clock = FakeClock(ELEVEN_PM)
    money = budget(clock)
    user = user_scope("ada@example.com", None, 0.01)
    tenant = tenant_scope("shop", 10**6, 0.02)
    await money.reserve([global_scope(10**6), user], 100, 0.009)
    with pytest.raises(BudgetExhausted) as caught:
        await money.reserve([global_scope(10**6), user, tenant], 100, 0.0011)
    assert not isinstance(caught.value, GlobalBudgetExhausted)
    assert caught.value.message == "the user daily money budget is spent"
    assert caught.value.retry_after == 3600
    assert await money.spent(tenant.name) == Spend(0, 0.0)  # all or nothing
    await money.reserve([global_scope(10**6), tenant], 100, 0.02)
    with pytest.raises(BudgetExhausted) as caught:
        await money.reserve([global_scope(10**6), tenant], 1, 0.000000001)
    assert caught.value.message == "the tenant daily money budget is spent"
    clock.advance(3600)  # a new UTC day, new counters
    await money.reserve([global_scope(10**6), user, tenant], 100, 0.01)


async def test_a_spent_global_money_budget_is_the_pause_and_checked_first() -> None:
    clock = FakeClock(ELEVEN_PM)
    money = budget(clock)
    spent_user = user_scope("ada@example.com", 10, 0.04)
    await money.reserve([global_scope(10**6, 0.05), spent_user], 10, 0.04)
    assert await money.global_exhausted(10**6, 0.05) is None
    with pytest.raises(GlobalBudgetExhausted) as caught:
        # both the global money budget and the user's are without room: the pause wins
        await money.reserve([global_scope(10**6, 0.05), spent_user], 10, 0.02)
    assert caught.value.message == "the daily money budget is spent"
    assert caught.value.retry_after == 3600
    await money.reserve([global_scope(10**6, 0.05)], 10, 0.01)
    assert await money.global_exhausted(10**6, 0.05) == 3600
    assert await money.global_exhausted(10**6) is None  # no money limit: tokens only
