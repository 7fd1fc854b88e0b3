from __future__ import annotations

import pytest

from chater_gpt.errors import BudgetExhausted, InvalidRequest, ModelNotAllowed, RateLimited
from chater_gpt.resilience.admission import AdmissionControl, AdmissionLimits
from chater_gpt.resilience.budget import GlobalBudgetExhausted, TokenBudget
from chater_gpt.resilience.policy import parse_policy
from chater_gpt.resilience.rate_limit import RateLimiter
from chater_gpt.storage.budgets import InMemoryBudgetStore
from chater_gpt.storage.rates import InMemoryRateStore
from tests.support.fakes import FakeClock

POLICY = parse_policy(
    '{"tenants": {"shop": {"allowed_models": ["gpt-4o-mini"], "max_tokens": 100,'
    ' "requests_per_minute": 2, "daily_token_limit": 1000}}}',
    yaml=False,
)


def control(clock: FakeClock, **limits: int) -> AdmissionControl:
    return AdmissionControl(
        limiter=RateLimiter(InMemoryRateStore(clock)),
        budget=TokenBudget(InMemoryBudgetStore(), clock=clock),
        limits=AdmissionLimits(**{"daily_token_limit": 10_000, **limits}),
        policy=POLICY,
    )


async def admit(ctl: AdmissionControl, **overrides: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = {
        "key": "k",
        "user_email": "ada@example.com",
        "app_code": None,
        "model": "gpt-4o-mini",
        "max_tokens": 100,
        "prompt_tokens": 50,
    }
    args.update(overrides)
    return await ctl.admit(**args)  # type: ignore[arg-type]


async def test_tenant_policy_is_enforced() -> None:
    ctl = control(FakeClock())
    with pytest.raises(ModelNotAllowed):
        await admit(ctl, app_code="shop", model="gpt-4o")
    with pytest.raises(InvalidRequest):
        await admit(ctl, app_code="shop", max_tokens=101)
    with pytest.raises(InvalidRequest):
        await admit(ctl, app_code="unknown")
    await admit(ctl, app_code=None, model="gpt-4o")  # no app_code: no tenant policy


async def test_tenant_and_user_rates_refuse_with_retry_after() -> None:
    clock = FakeClock()
    ctl = control(clock, user_requests_per_minute=3)
    await admit(ctl, app_code="shop", user_email="a@x")
    await admit(ctl, app_code="shop", user_email="b@x")
    with pytest.raises(RateLimited) as caught:
        await admit(ctl, app_code="shop", user_email="c@x")
    assert caught.value.retry_after == pytest.approx(30)
    for _ in range(3):
        await admit(ctl, user_email="d@x")
    with pytest.raises(RateLimited):
        await admit(ctl, user_email="d@x")


async def test_budget_is_reserved_then_settled_with_real_usage() -> None:
    clock = FakeClock()
    ctl = control(clock, user_daily_token_limit=400)
    admission = await admit(ctl, max_tokens=100, prompt_tokens=50)
    assert admission.reserved_tokens == 150
    assert await ctl.budget.usage("ada@example.com") == 150
    await admission.settle(60)
    await admission.settle(60)  # only once
    assert await ctl.budget.usage("ada@example.com") == 60
    failed = await admit(ctl)
    await failed.release()
    assert await ctl.budget.usage("ada@example.com") == 60
    await admit(ctl, max_tokens=290)
    with pytest.raises(BudgetExhausted) as caught:
        await admit(ctl, max_tokens=10)
    assert not isinstance(caught.value, GlobalBudgetExhausted)


async def test_global_budget_exhaustion_is_a_pause_not_a_reply() -> None:
    ctl = control(FakeClock(), daily_token_limit=300)
    await admit(ctl, max_tokens=250, prompt_tokens=50)
    assert await ctl.global_budget_pause() is not None
    with pytest.raises(GlobalBudgetExhausted):
        await admit(ctl)
