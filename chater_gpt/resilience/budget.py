"""The daily token budget: global, per user and per tenant, per UTC day.

Before a call, the caller *reserves* its worst case (prompt tokens + max_tokens)
on every scope at once, atomically: either every scope has room and all are
charged, or none is (`BudgetExhausted`). After the call it *settles* the real
usage (the reservation is adjusted by the difference) or *releases* it on
failure. So the budget is exceeded at most by what a reservation underestimated,
never by concurrency. Counters are keyed per UTC day and expire after two days.

Per-user usage is always counted (even without a per-user limit), so it can be
read back with `usage()`. User emails are hashed in keys: no personal data in
Redis key names.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from chater_gpt.errors import BudgetExhausted
from chater_gpt.observability.logging import warn_degraded

log = logging.getLogger(__name__)

KEY_TTL_SECONDS = 2 * 86_400
GLOBAL_SCOPE = "global"


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
    return BudgetScope(user_key(user_email), limit, "user daily")


def tenant_scope(app_code: str, limit: int | None) -> BudgetScope:
    return BudgetScope(f"tenant:{app_code}", limit, "tenant daily")


def user_key(user_email: str) -> str:
    """The scope name of a user: a hash of the normalised email."""
    digest = hashlib.sha256(user_email.strip().lower().encode()).hexdigest()[:32]
    return f"user:{digest}"


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


class BudgetStore(Protocol):
    async def reserve(
        self, day: str, scopes: Sequence[tuple[str, int | None]], tokens: int
    ) -> int | None:
        """Charge `tokens` to every scope, or none: None if charged, else the index
        of the first scope without room."""
        ...

    async def adjust(self, day: str, scopes: Sequence[str], delta: int) -> None: ...

    async def used(self, day: str, scope: str) -> int: ...


class MemoryBudgetStore:
    def __init__(self) -> None:
        self._used: dict[tuple[str, str], int] = {}
        self._swept_on: str | None = None

    async def reserve(
        self, day: str, scopes: Sequence[tuple[str, int | None]], tokens: int
    ) -> int | None:
        self._forget_old_days(day)
        for index, (scope, limit) in enumerate(scopes):
            if limit is not None and self._used.get((day, scope), 0) + tokens > limit:
                return index
        for scope, _ in scopes:
            self._used[(day, scope)] = self._used.get((day, scope), 0) + tokens
        return None

    async def adjust(self, day: str, scopes: Sequence[str], delta: int) -> None:
        for scope in scopes:
            self._used[(day, scope)] = self._used.get((day, scope), 0) + delta

    async def used(self, day: str, scope: str) -> int:
        return self._used.get((day, scope), 0)

    def _forget_old_days(self, today: str) -> None:
        # Once per day: a scan on every reservation would cost the hot path dearly.
        if self._swept_on == today:
            return
        self._swept_on = today
        # Days are ISO dates, so string order is date order; keep today and yesterday
        # (a reservation made before midnight may settle after it).
        yesterday = (date.fromisoformat(today) - timedelta(days=1)).isoformat()
        if any(day < yesterday for day, _ in self._used):
            self._used = {k: v for k, v in self._used.items() if k[0] >= yesterday}


# KEYS: one counter per scope. ARGV[1] tokens, ARGV[2] TTL seconds, ARGV[2+i] the
# limit of KEYS[i] (-1: none). Returns 0 when charged, else the 1-based refusing index.
_RESERVE = """
local tokens = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[i + 2])
  if limit >= 0 and tonumber(redis.call('GET', key) or '0') + tokens > limit then
    return i
  end
end
for _, key in ipairs(KEYS) do
  redis.call('INCRBY', key, tokens)
  redis.call('EXPIRE', key, ARGV[2])
end
return 0
"""


class RedisBudgetStore:
    def __init__(self, redis: Redis, *, prefix: str = "chater:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._reserve = redis.register_script(_RESERVE)

    def _key(self, day: str, scope: str) -> str:
        return f"{self._prefix}budget:{day}:{scope}"

    async def reserve(
        self, day: str, scopes: Sequence[tuple[str, int | None]], tokens: int
    ) -> int | None:
        refused = int(
            await self._reserve(
                keys=[self._key(day, scope) for scope, _ in scopes],
                args=[tokens, KEY_TTL_SECONDS, *(-1 if lim is None else lim for _, lim in scopes)],
            )
        )
        return refused - 1 if refused else None

    async def adjust(self, day: str, scopes: Sequence[str], delta: int) -> None:
        if delta == 0 or not scopes:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for scope in scopes:
                pipe.incrby(self._key(day, scope), delta)
            await pipe.execute()

    async def used(self, day: str, scope: str) -> int:
        raw = await self._redis.get(self._key(day, scope))
        return int(raw) if raw is not None else 0


class FailoverBudgetStore:
    """Redis while it answers; the per-process store while it does not (the limits
    then hold per replica, as without Redis, instead of failing every request)."""

    def __init__(self, primary: BudgetStore, fallback: BudgetStore | None = None) -> None:
        self._primary = primary
        self._fallback = fallback or MemoryBudgetStore()

    async def reserve(
        self, day: str, scopes: Sequence[tuple[str, int | None]], tokens: int
    ) -> int | None:
        try:
            return await self._primary.reserve(day, scopes, tokens)
        except RedisError as exc:
            warn_degraded(log, "budget store unreachable; limits hold per process", exc)
            return await self._fallback.reserve(day, scopes, tokens)

    async def adjust(self, day: str, scopes: Sequence[str], delta: int) -> None:
        try:
            await self._primary.adjust(day, scopes, delta)
        except RedisError as exc:
            warn_degraded(log, "budget store unreachable; usage not settled", exc)

    async def used(self, day: str, scope: str) -> int:
        try:
            return await self._primary.used(day, scope)
        except RedisError:
            return await self._fallback.used(day, scope)


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
        return await self._store.used(self._day(day), user_key(user_email))

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
