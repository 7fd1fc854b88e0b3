from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chater_gpt.errors import BudgetExhausted
from chater_gpt.resilience.budget import (
    GlobalBudgetExhausted,
    TokenBudget,
    global_scope,
    seconds_until_utc_midnight,
    tenant_scope,
    user_scope,
)
from chater_gpt.storage.budgets import InMemoryBudgetStore
from tests.support.fakes import FakeClock

ELEVEN_PM = datetime(2026, 3, 1, 23, 0, tzinfo=UTC).timestamp()


def budget(clock: FakeClock) -> TokenBudget:
    return TokenBudget(InMemoryBudgetStore(), clock=clock)


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
