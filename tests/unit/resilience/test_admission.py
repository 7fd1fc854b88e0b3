from __future__ import annotations

import pytest

from chater_gpt.domain import ChatResult
from chater_gpt.errors import BudgetExhausted, InvalidRequest, ModelNotAllowed, RateLimited
from chater_gpt.resilience.admission import AdmissionControl, AdmissionLimits
from chater_gpt.resilience.budget import DailyBudget, GlobalBudgetExhausted, Spend
from chater_gpt.resilience.policy import parse_policy
from chater_gpt.resilience.rate_limit import RateLimiter
from chater_gpt.storage.budgets import InMemoryBudgetStore
from chater_gpt.storage.keys import GLOBAL_SCOPE, tenant_scope_name, user_scope_name
from chater_gpt.storage.rates import InMemoryRateStore
from tests.support.fakes import FakeClock

POLICY = parse_policy(
    '{"tenants": {"shop": {"allowed_models": ["gpt-4o-mini"], "max_tokens": 100,'
    ' "requests_per_minute": 2, "daily_token_limit": 1000},'
    ' "docs": {"daily_cost_limit_usd": 0.002}}}',
    yaml=False,
)
ADA = user_scope_name("ada@example.com")


class TablePrices:
    """USD per million tokens, (input, output)."""

    PER_MILLION = {"gpt-4o-mini": (1.0, 4.0), "gpt-4o": (10.0, 40.0), "local": (0.0, 0.0)}

    def cost_usd(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        per_input, per_output = self.PER_MILLION[model]
        return (prompt_tokens * per_input + completion_tokens * per_output) / 1_000_000


def control(
    clock: FakeClock, *, priced: bool = False, **limits: int | float | tuple[str, ...]
) -> AdmissionControl:
    return AdmissionControl(
        limiter=RateLimiter(InMemoryRateStore(clock)),
        budget=DailyBudget(InMemoryBudgetStore(), clock=clock),
        limits=AdmissionLimits(**{"daily_token_limit": 10_000, **limits}),  # type: ignore[arg-type]
        policy=POLICY,
        prices=TablePrices() if priced else None,
    )


def answer(prompt: int, completion: int, model: str = "gpt-4o-mini") -> ChatResult:
    return ChatResult("a", model, prompt, completion, "stop", "openai")


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
    assert admission.reserved_cost_usd is None  # no prices: no money metered
    await admission.settle(answer(40, 20))
    await admission.settle(answer(40, 20))  # only once
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


async def test_the_worst_case_cost_is_reserved_then_settled_to_the_real_cost() -> None:
    ctl = control(FakeClock(), priced=True)
    admission = await admit(ctl, max_tokens=100, prompt_tokens=50)
    # 50 prompt tokens at $1/M + 100 completion tokens at $4/M
    assert admission.reserved_cost_usd == 0.00045
    for scope in (GLOBAL_SCOPE, ADA):
        assert await ctl.budget.spent(scope) == Spend(150, 0.00045)
    await admission.settle(answer(50, 10))
    assert await ctl.budget.spent(ADA) == Spend(60, 0.00009)
    failed = await admit(ctl)
    await failed.release()
    assert await ctl.budget.spent(GLOBAL_SCOPE) == Spend(60, 0.00009)


async def test_the_worst_case_is_priced_on_the_dearest_model_that_may_answer() -> None:
    ctl = control(FakeClock(), priced=True, fallback_models=("local", "gpt-4o"))
    cheap_first = await admit(ctl, model="gpt-4o-mini", max_tokens=100, prompt_tokens=50)
    assert cheap_first.reserved_cost_usd == 0.0045  # gpt-4o, the fallback, could answer
    # settled at the price of the model that did answer
    await cheap_first.settle(answer(50, 100, model="gpt-4o-mini"))
    assert await ctl.budget.spent(ADA) == Spend(150, 0.00045)
    larger = control(FakeClock(), priced=True)
    called = await admit(larger, model="gpt-4o-mini", call_model="gpt-4o", prompt_tokens=50)
    assert called.reserved_cost_usd == 0.0045  # the call goes to the larger-context model


async def test_a_spent_user_money_budget_is_answered_with_retry_after() -> None:
    ctl = control(FakeClock(), priced=True, user_daily_cost_limit_usd=0.001)
    await admit(ctl, max_tokens=100, prompt_tokens=50)  # $0.00045
    await admit(ctl, max_tokens=100, prompt_tokens=50)  # $0.0009
    with pytest.raises(BudgetExhausted) as caught:
        await admit(ctl, max_tokens=100, prompt_tokens=50)
    assert not isinstance(caught.value, GlobalBudgetExhausted)
    assert caught.value.message == "the user daily money budget is spent"
    assert 0 < (caught.value.retry_after or 0) <= 86_400
    assert await ctl.budget.spent(GLOBAL_SCOPE) == Spend(300, 0.0009)  # nothing charged
    await admit(ctl, user_email="bob@example.com", max_tokens=100, prompt_tokens=50)


async def test_a_spent_tenant_money_budget_is_answered_with_retry_after() -> None:
    ctl = control(FakeClock(), priced=True)
    await admit(ctl, app_code="docs", user_email=None, max_tokens=400, prompt_tokens=200)
    assert await ctl.budget.spent(tenant_scope_name("docs")) == Spend(600, 0.0018)
    with pytest.raises(BudgetExhausted) as caught:
        await admit(ctl, app_code="docs", max_tokens=100, prompt_tokens=50)
    assert caught.value.message == "the tenant daily money budget is spent"
    assert caught.value.retry_after is not None
    await admit(ctl, app_code="docs", model="local", max_tokens=100)  # free: still fits


async def test_a_spent_global_money_budget_pauses() -> None:
    ctl = control(FakeClock(), priced=True, daily_cost_limit_usd=0.0009)
    await admit(ctl, max_tokens=100, prompt_tokens=50)
    assert await ctl.global_budget_pause() is None
    await admit(ctl, max_tokens=100, prompt_tokens=50)
    assert await ctl.global_budget_pause() is not None
    with pytest.raises(GlobalBudgetExhausted) as caught:
        await admit(ctl, max_tokens=100, prompt_tokens=50)
    assert caught.value.message == "the daily money budget is spent"
