"""The daily budgets, in tokens and in money: global, per user and per tenant, per UTC day.

Before a call, the caller *reserves* its worst case (prompt tokens + max_tokens, and
what they would cost: `prices.worst_case_cost_usd`) on every scope at once,
atomically: either every scope has room in both meters and all are charged, or none
is (`BudgetExhausted`). After the call it *settles* the real usage and cost (the
reservation is adjusted by the difference) or *releases* it on failure. So a budget is
exceeded at most by what a reservation underestimated, never by concurrency. The
counters (keyed per UTC day, expiring after two days; money in whole nano-USD) are
`storage/budgets.py`.

Per-user and per-tenant usage is always counted (even without a limit), so it can be
read back with `spent()`. Users are hashed in keys (`storage/keys.py`): no personal
data in Redis key names.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from chater_gpt.errors import BudgetExhausted
from chater_gpt.storage.budgets import BudgetStore, Charge, Counter, Meter
from chater_gpt.storage.keys import GLOBAL_SCOPE, tenant_scope_name, user_scope_name


class GlobalBudgetExhausted(BudgetExhausted):
    """The service-wide budget is spent: the request should wait (consumption paused),
    not be answered with an error."""


@dataclass(frozen=True, slots=True)
class BudgetScope:
    name: str
    limit: int | None  # tokens; None: counted, never refused
    label: str  # for messages: "daily", "user daily", "tenant daily"
    cost_limit_usd: float | None = None  # money; None: counted, never refused


def global_scope(limit: int, cost_limit_usd: float | None = None) -> BudgetScope:
    return BudgetScope(GLOBAL_SCOPE, limit, "daily", cost_limit_usd)


def user_scope(
    user_email: str, limit: int | None, cost_limit_usd: float | None = None
) -> BudgetScope:
    return BudgetScope(user_scope_name(user_email), limit, "user daily", cost_limit_usd)


def tenant_scope(
    app_code: str, limit: int | None, cost_limit_usd: float | None = None
) -> BudgetScope:
    return BudgetScope(tenant_scope_name(app_code), limit, "tenant daily", cost_limit_usd)


NANOS_PER_USD = 1_000_000_000


def usd_to_nanos(usd: float) -> int:
    """USD as whole nano-USD, rounded up (money is never under-counted) once the float
    noise is gone (0.00015 is 150000 nano-USD, not 150001)."""
    return math.ceil(round(max(usd, 0.0) * NANOS_PER_USD, 6))


def nanos_to_usd(nanos: int) -> float:
    return round(nanos / NANOS_PER_USD, 9)


def utc_day(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).date().isoformat()


def seconds_until_utc_midnight(now: float) -> float:
    today = datetime.fromtimestamp(now, UTC).date()
    midnight = datetime.combine(today + timedelta(days=1), datetime.min.time(), UTC)
    return max(midnight.timestamp() - now, 0.0)


@dataclass(frozen=True, slots=True)
class Reservation:
    day: str
    scopes: tuple[str, ...]
    tokens: int
    cost_nanos: int | None = None  # None: money not metered (no prices)


@dataclass(frozen=True, slots=True)
class Spend:
    """What a scope used on a day."""

    tokens: int
    cost_usd: float


class DailyBudget:
    def __init__(self, store: BudgetStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def reserve(
        self, scopes: Sequence[BudgetScope], tokens: int, cost_usd: float | None = None
    ) -> Reservation:
        """Charge `tokens` (and `cost_usd`, unless None) to every scope or raise
        BudgetExhausted (GlobalBudgetExhausted when the global scope is the one without
        room). The global scope's counters are checked first."""
        now = self._clock()
        day = utc_day(now)
        nanos = None if cost_usd is None else usd_to_nanos(cost_usd)
        charges: list[tuple[BudgetScope, Charge]] = []
        for scope in scopes:
            charges.append((scope, Charge(Counter(scope.name), tokens, scope.limit)))
            if nanos is not None:
                limit = _limit_nanos(scope.cost_limit_usd)
                charges.append((scope, Charge(Counter(scope.name, Meter.COST), nanos, limit)))
        refused = await self._store.reserve(day, [charge for _, charge in charges])
        if refused is not None:
            scope, charge = charges[refused]
            error = GlobalBudgetExhausted if scope.name == GLOBAL_SCOPE else BudgetExhausted
            meter = "money" if charge.counter.meter is Meter.COST else "token"
            raise error(
                f"the {scope.label} {meter} budget is spent",
                retry_after=seconds_until_utc_midnight(now),
            )
        return Reservation(day, tuple(s.name for s in scopes), tokens, nanos)

    async def settle(
        self,
        reservation: Reservation,
        actual_total_tokens: int,
        actual_cost_usd: float | None = None,
    ) -> None:
        """Replace the reserved estimate by the real usage (and cost: None leaves the
        reserved cost charged)."""
        delta = max(actual_total_tokens, 0) - reservation.tokens
        changes = [(Counter(scope), delta) for scope in reservation.scopes]
        if reservation.cost_nanos is not None and actual_cost_usd is not None:
            cost_delta = usd_to_nanos(actual_cost_usd) - reservation.cost_nanos
            changes += [(Counter(scope, Meter.COST), cost_delta) for scope in reservation.scopes]
        await self._store.adjust(reservation.day, changes)

    async def release(self, reservation: Reservation) -> None:
        """The call failed: give the reservation back."""
        changes = [(Counter(scope), -reservation.tokens) for scope in reservation.scopes]
        if reservation.cost_nanos is not None:
            nanos = reservation.cost_nanos
            changes += [(Counter(scope, Meter.COST), -nanos) for scope in reservation.scopes]
        await self._store.adjust(reservation.day, changes)

    async def usage(self, user_email: str, day: date | str | None = None) -> int:
        """Tokens charged to a user on a UTC day (today by default)."""
        return await self._store.used(self._day(day), Counter(user_scope_name(user_email)))

    async def used(self, scope: BudgetScope, day: date | str | None = None) -> int:
        """Tokens charged to a scope on a UTC day (today by default)."""
        return await self._store.used(self._day(day), Counter(scope.name))

    async def spent(self, scope_name: str, day: date | str | None = None) -> Spend:
        """Tokens and money charged to a scope (`storage.keys`' scope names) on a UTC day."""
        day_text = self._day(day)
        tokens = await self._store.used(day_text, Counter(scope_name))
        nanos = await self._store.used(day_text, Counter(scope_name, Meter.COST))
        return Spend(tokens, nanos_to_usd(nanos))

    async def global_exhausted(
        self, limit: int, cost_limit_usd: float | None = None
    ) -> float | None:
        """Seconds until the budgets reset while a global budget is spent, else None."""
        now = self._clock()
        day = utc_day(now)
        spent = await self._store.used(day, Counter(GLOBAL_SCOPE)) >= limit
        if not spent and cost_limit_usd is not None:
            nanos = await self._store.used(day, Counter(GLOBAL_SCOPE, Meter.COST))
            spent = nanos >= usd_to_nanos(cost_limit_usd)
        return seconds_until_utc_midnight(now) if spent else None

    def _day(self, day: date | str | None) -> str:
        if day is None:
            return utc_day(self._clock())
        return day.isoformat() if isinstance(day, date) else day


def _limit_nanos(limit_usd: float | None) -> int | None:
    return None if limit_usd is None else usd_to_nanos(limit_usd)
