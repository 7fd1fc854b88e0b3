"""Admission: the checks the processor makes before calling the backend for a request.

In order: the tenant's policy (model, max_tokens cap), the per-user and per-tenant
request rates (refused: `RateLimited`), then one atomic reservation of the
request's worst case (prompt tokens + max_tokens, and with `Prices` what they would
cost on the dearest model that may answer: the call's model or a fallback) on the
global, user and tenant daily budgets, tokens and money (refused: `BudgetExhausted`,
or `GlobalBudgetExhausted` when the service-wide budget is the one spent: that request
should wait, not be answered). The returned `Admission` is settled with the real
usage and cost after the call, or released when the call failed.

Used by the processing stage `processing/admitted.py`:

    admission = await admit(key=..., user_email=..., app_code=..., model=...,
                            max_tokens=..., prompt_tokens=built.prompt_tokens,
                            call_model=call.model)
    try:
        result = await backend.complete(call)
    except BaseException:
        await admission.release()
        raise
    await admission.settle(result)  # its model's price, its usage
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from chater_gpt.domain import ChatResult
from chater_gpt.errors import InvalidRequest, ModelNotAllowed, RateLimited
from chater_gpt.observability.logging import warn_degraded
from chater_gpt.resilience.budget import (
    DailyBudget,
    Reservation,
    global_scope,
    nanos_to_usd,
    tenant_scope,
    user_scope,
)
from chater_gpt.resilience.policy import PolicyBook, TenantPolicy
from chater_gpt.resilience.prices import Prices, worst_case_cost_usd
from chater_gpt.resilience.rate_limit import RateLimiter
from chater_gpt.storage.keys import tenant_scope_name, user_scope_name
from chater_gpt.storage.rates import Rate

log = logging.getLogger(__name__)

MINUTE = 60.0  # the per-user and per-tenant limits are requests per minute


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    daily_token_limit: int
    user_requests_per_minute: int | None = None
    user_daily_token_limit: int | None = None
    # Money (USD per UTC day); None: counted (with prices), never refused.
    daily_cost_limit_usd: float | None = None
    user_daily_cost_limit_usd: float | None = None
    # FALLBACK_MODELS: they may answer a request too, so they price its worst case.
    fallback_models: tuple[str, ...] = ()


class Admission:
    """One admitted request's budget reservation; settle or release it exactly once."""

    def __init__(
        self, budget: DailyBudget, reservation: Reservation, prices: Prices | None = None
    ) -> None:
        self._budget = budget
        self._reservation: Reservation | None = reservation
        self._prices = prices

    @property
    def reserved_tokens(self) -> int:
        return self._reservation.tokens if self._reservation is not None else 0

    @property
    def reserved_cost_usd(self) -> float | None:
        """The worst-case cost reserved; None without prices (or once settled)."""
        nanos = self._reservation.cost_nanos if self._reservation is not None else None
        return None if nanos is None else nanos_to_usd(nanos)

    async def settle(self, result: ChatResult) -> None:
        """Settle to the tokens `result` used and their cost on the model that answered."""
        reservation, self._reservation = self._reservation, None
        if reservation is None:
            return
        try:
            cost = None
            if self._prices is not None:
                cost = self._prices.cost_usd(
                    result.model, result.prompt_tokens, result.completion_tokens
                )
            await self._budget.settle(reservation, result.total_tokens, cost)
        except Exception as exc:  # the answer is already there; accounting must not lose it
            warn_degraded(log, "could not settle the daily budget", exc)

    async def release(self) -> None:
        reservation, self._reservation = self._reservation, None
        if reservation is None:
            return
        try:
            await self._budget.release(reservation)
        except Exception as exc:
            warn_degraded(log, "could not release the daily budget reservation", exc)


class AdmissionControl:
    def __init__(
        self,
        *,
        limiter: RateLimiter,
        budget: DailyBudget,
        limits: AdmissionLimits,
        policy: PolicyBook | None = None,
        prices: Prices | None = None,
    ) -> None:
        self._limiter = limiter
        self._budget = budget
        self._limits = limits
        self._policy = policy
        self._prices = prices  # None: no money metered, no money budget enforced

    @property
    def budget(self) -> DailyBudget:
        """For usage reports (`budget.spent(scope_name, day)`)."""
        return self._budget

    async def admit(
        self,
        *,
        key: str,
        user_email: str | None,
        app_code: str | None,
        model: str,
        max_tokens: int,
        prompt_tokens: int,
        call_model: str | None = None,
    ) -> Admission:
        """`model` is the requested one (the tenant policy's); `call_model` the one the
        call goes to, when another (a larger-context fallback)."""
        limits = self._limits
        tenant = self._tenant(app_code, model=model, max_tokens=max_tokens)
        await self._check_rates(user_email, app_code, tenant)
        scopes = [global_scope(limits.daily_token_limit, limits.daily_cost_limit_usd)]
        if user_email:
            scopes.append(
                user_scope(
                    user_email, limits.user_daily_token_limit, limits.user_daily_cost_limit_usd
                )
            )
        if app_code and tenant is not None:
            scopes.append(
                tenant_scope(app_code, tenant.daily_token_limit, tenant.daily_cost_limit_usd)
            )
        cost = self._worst_case_cost(call_model or model, prompt_tokens, max_tokens)
        reservation = await self._budget.reserve(scopes, max(prompt_tokens, 0) + max_tokens, cost)
        log.debug(
            "admitted",
            extra={"key": key, "reserved": reservation.tokens, "reserved_usd": cost},
        )
        return Admission(self._budget, reservation, self._prices)

    async def global_budget_pause(self) -> float | None:
        """Seconds until the daily reset while a global budget is spent, else None."""
        return await self._budget.global_exhausted(
            self._limits.daily_token_limit,
            self._limits.daily_cost_limit_usd if self._prices is not None else None,
        )

    def _worst_case_cost(self, model: str, prompt_tokens: int, max_tokens: int) -> float | None:
        if self._prices is None:
            return None
        models: Sequence[str] = (model, *self._limits.fallback_models)
        return worst_case_cost_usd(
            self._prices, models, prompt_tokens=prompt_tokens, max_tokens=max_tokens
        )

    def _tenant(self, app_code: str | None, *, model: str, max_tokens: int) -> TenantPolicy | None:
        if self._policy is None or not app_code:
            return None
        tenant = self._policy.for_app(app_code)
        if tenant is None:
            if self._policy.unknown_app_code == "reject":
                raise InvalidRequest("unknown app_code")
            return None
        if tenant.allowed_models is not None and model not in tenant.allowed_models:
            raise ModelNotAllowed(f"model {model!r} is not allowed for this app_code")
        if tenant.max_tokens is not None and max_tokens > tenant.max_tokens:
            raise InvalidRequest(f"max_tokens is over this app_code's cap of {tenant.max_tokens}")
        return tenant

    async def _check_rates(
        self, user_email: str | None, app_code: str | None, tenant: TenantPolicy | None
    ) -> None:
        checks: list[tuple[str, int, str]] = []
        if user_email and self._limits.user_requests_per_minute:
            checks.append(
                (user_scope_name(user_email), self._limits.user_requests_per_minute, "user")
            )
        if app_code and tenant is not None and tenant.requests_per_minute:
            checks.append((tenant_scope_name(app_code), tenant.requests_per_minute, "app_code"))
        for scope, limit, label in checks:
            rate = Rate(limit, MINUTE, burst=limit)
            wait = await self._limiter.try_acquire(scope, rate)
            if wait is not None:
                raise RateLimited(
                    f"too many requests for this {label} ({limit} per minute)",
                    retry_after=round(wait, 3),
                )


__all__ = [
    "Admission",
    "AdmissionControl",
    "AdmissionLimits",
]
