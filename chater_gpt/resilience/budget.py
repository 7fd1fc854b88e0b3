"""The daily token budget: global, per user and per tenant, per UTC day.

Before a call, the caller *reserves* its worst case (prompt tokens + max_tokens)
on every scope at once, atomically: either every scope has room and all are
charged, or none is (`BudgetExhausted`). After the call it *settles* the real
usage (the reservation is adjusted by the difference) or *releases* it on
failure. So the budget is exceeded at most by what a reservation underestimated,
never by concurrency. The counters (keyed per UTC day, expiring after two days)
are `storage/budgets.py`.

Per-user usage is always counted (even without a per-user limit), so it can be
read back with `usage()`. Users are hashed in keys (`storage/keys.py`): no personal
data in Redis key names.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from chater_gpt.errors import BudgetExhausted
from chater_gpt.storage.budgets import BudgetStore
from chater_gpt.storage.keys import GLOBAL_SCOPE, tenant_scope_name, user_scope_name


class GlobalBudgetExhausted(BudgetExhausted):
    """The service-wide budget is spent: the request should wait (consumption paused),
    not be answered with an error."""


@dataclass(frozen=True, slots=True)
class BudgetScope:
    name: str
    limit: int | None  # None: counted, never refused
    label: str  # for messages: "daily", "user daily", "tenant daily"


def global_scope(limit: int) -> BudgetScope:
    return BudgetScope(GLOBAL_SCOPE, limit, "daily")


def user_scope(user_email: str, limit: int | None) -> BudgetScope:
    return BudgetScope(user_scope_name(user_email), limit, "user daily")


def tenant_scope(app_code: str, limit: int | None) -> BudgetScope:
    return BudgetScope(tenant_scope_name(app_code), limit, "tenant daily")


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


class TokenBudget:
    def __init__(self, store: BudgetStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def reserve(self, scopes: Sequence[BudgetScope], tokens: int) -> Reservation:
        """Charge `tokens` to every scope or raise BudgetExhausted (GlobalBudgetExhausted
        when the global scope is the one without room)."""
        now = self._clock()
        day = utc_day(now)
        refused = await self._store.reserve(day, [(s.name, s.limit) for s in scopes], tokens)
        if refused is not None:
            scope = scopes[refused]
            error = GlobalBudgetExhausted if scope.name == GLOBAL_SCOPE else BudgetExhausted
            raise error(
                f"the {scope.label} token budget is spent",
                retry_after=seconds_until_utc_midnight(now),
            )
        return Reservation(day, tuple(s.name for s in scopes), tokens)

    async def settle(self, reservation: Reservation, actual_total_tokens: int) -> None:
        """Replace the reserved estimate by the real usage."""
        delta = max(actual_total_tokens, 0) - reservation.tokens
        await self._store.adjust(reservation.day, reservation.scopes, delta)

    async def release(self, reservation: Reservation) -> None:
        """The call failed: give the reservation back."""
        await self._store.adjust(reservation.day, reservation.scopes, -reservation.tokens)

    async def usage(self, user_email: str, day: date | str | None = None) -> int:
        """Tokens charged to a user on a UTC day (today by default)."""
        return await self._store.used(self._day(day), user_scope_name(user_email))

    async def used(self, scope: BudgetScope, day: date | str | None = None) -> int:
        return await self._store.used(self._day(day), scope.name)

    async def global_exhausted(self, limit: int) -> float | None:
        """Seconds until the budget resets while the global budget is spent, else None."""
        now = self._clock()
        if await self._store.used(utc_day(now), GLOBAL_SCOPE) >= limit:
            return seconds_until_utc_midnight(now)
        return None

    def _day(self, day: date | str | None) -> str:
        if day is None:
            return utc_day(self._clock())
        return day.isoformat() if isinstance(day, date) else day
