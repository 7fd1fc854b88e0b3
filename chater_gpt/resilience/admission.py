"""Admission: the checks the processor makes before calling the backend for a request.

In order: the tenant's policy (model, max_tokens cap), the per-user and per-tenant
request rates (refused: `RateLimited`), then one atomic reservation of the
request's worst case (prompt tokens + max_tokens) on the global, user and tenant
daily budgets (refused: `BudgetExhausted`, or `GlobalBudgetExhausted` when the
service-wide budget is the one spent: that request should wait, not be answered).
The returned `Admission` is settled with the real usage after the call, or
released when the call failed.

Used by the processing stage `processing/admitted.py`:

    admission = await admit(key=..., user_email=..., app_code=..., model=...,
                            max_tokens=..., prompt_tokens=built.prompt_tokens)
    try:
        result = await backend.complete(call)
    except BaseException:
        await admission.release()
        raise
    await admission.settle(result.total_tokens)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from chater_gpt.errors import InvalidRequest, ModelNotAllowed, RateLimited
from chater_gpt.observability.logging import warn_degraded
from chater_gpt.resilience.budget import (
    Reservation,
    TokenBudget,
    global_scope,
    tenant_scope,
    user_scope,
)
from chater_gpt.resilience.policy import PolicyBook, TenantPolicy
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


class Admission:
    """One admitted request's budget reservation; settle or release it exactly once."""

    def __init__(self, budget: TokenBudget, reservation: Reservation) -> None:
        self._budget = budget
        self._reservation: Reservation | None = reservation

    @property
    def reserved_tokens(self) -> int:
        return self._reservation.tokens if self._reservation is not None else 0

    async def settle(self, total_tokens: int) -> None:
        reservation, self._reservation = self._reservation, None
        if reservation is None:
            return
        try:
            await self._budget.settle(reservation, total_tokens)
        except Exception as exc:  # the answer is already there; accounting must not lose it
            warn_degraded(log, "could not settle the token budget", exc)

    async def release(self) -> None:
        reservation, self._reservation = self._reservation, None
        if reservation is None:
            return
        try:
            await self._budget.release(reservation)
        except Exception as exc:
            warn_degraded(log, "could not release the token budget reservation", exc)


class AdmissionControl:
    def __init__(
        self,
        *,
        limiter: RateLimiter,
        budget: TokenBudget,
        limits: AdmissionLimits,
        policy: PolicyBook | None = None,
    ) -> None:
        self._limiter = limiter
        self._budget = budget
        self._limits = limits
        self._policy = policy

    @property
    def budget(self) -> TokenBudget:
        """For usage reports (`budget.usage(user_email, day)`)."""
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
    ) -> Admission:
        tenant = self._tenant(app_code, model=model, max_tokens=max_tokens)
        await self._check_rates(user_email, app_code, tenant)
        scopes = [global_scope(self._limits.daily_token_limit)]
        if user_email:
            scopes.append(user_scope(user_email, self._limits.user_daily_token_limit))
        if app_code and tenant is not None:
            scopes.append(tenant_scope(app_code, tenant.daily_token_limit))
        reservation = await self._budget.reserve(scopes, max(prompt_tokens, 0) + max_tokens)
        log.debug("admitted", extra={"key": key, "reserved": reservation.tokens})
        return Admission(self._budget, reservation)

    async def global_budget_pause(self) -> float | None:
        """Seconds until the daily reset while the global budget is spent, else None."""
        return await self._budget.global_exhausted(self._limits.daily_token_limit)

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
