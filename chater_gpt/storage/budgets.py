"""Daily budget counters: per scope, meter and UTC day, in Redis or per process.

Two meters count each scope: tokens, and money in nano-USD (integers: no float drift,
and a cheap model's few tokens still count). A reservation charges a list of counters
at once or none (`reserve`); `adjust` moves counters by signed amounts (settling or
releasing a reservation); `used` reads one. The budget logic (scopes, days, the
exhausted errors) is `resilience/budget.py`. Counters expire `COUNTER_TTL_SECONDS`
after the last reservation on them: a reservation made before midnight may still be
settled after it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from redis.asyncio import Redis

from chater_gpt.errors import StoreUnavailable
from chater_gpt.observability.logging import warn_degraded
from chater_gpt.storage.keys import KeySpace
from chater_gpt.storage.redis import store_errors
from chater_gpt.storage.ttl_lru import TtlLru

log = logging.getLogger(__name__)

COUNTER_TTL_SECONDS = 2 * 86_400


class Meter(StrEnum):
    TOKENS = "tokens"
    COST = "cost"  # nano-USD


@dataclass(frozen=True, slots=True)
class Counter:
    """One scope's counter of one meter (per UTC day)."""

    scope: str
    meter: Meter = Meter.TOKENS


@dataclass(frozen=True, slots=True)
class Charge:
    """`amount` on one counter; refused if it would take the counter over `limit`."""

    counter: Counter
    amount: int
    limit: int | None = None  # None: counted, never refused


class BudgetStore(Protocol):
    async def reserve(self, day: str, charges: Sequence[Charge]) -> int | None:
        """Make every charge, or none: None if made, else the index of the first charge
        without room."""
        ...

    async def adjust(self, day: str, changes: Sequence[tuple[Counter, int]]) -> None:
        """Move each counter by its signed amount (never refused)."""
        ...

    async def used(self, day: str, counter: Counter) -> int: ...


class InMemoryBudgetStore:
    """Per-process counters, expiring as the Redis ones do. At most `max_counters` are
    kept (the least recently used go first; the global counters are used by every
    request, so only idle users' and tenants' counters can go)."""

    def __init__(
        self, *, max_counters: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._used: TtlLru[int] = TtlLru(
            ttl_seconds=COUNTER_TTL_SECONDS, max_entries=max_counters, clock=clock
        )

    @staticmethod
    def _name(day: str, counter: Counter) -> str:
        return f"{counter.meter}:{day}:{counter.scope}"

    async def reserve(self, day: str, charges: Sequence[Charge]) -> int | None:
        names = [self._name(day, charge.counter) for charge in charges]
        for index, (name, charge) in enumerate(zip(names, charges, strict=True)):
            used = self._used.get(name) or 0
            if charge.limit is not None and used + charge.amount > charge.limit:
                return index
        for name, charge in zip(names, charges, strict=True):
            self._used.put(name, (self._used.get(name) or 0) + charge.amount)
        return None

    async def adjust(self, day: str, changes: Sequence[tuple[Counter, int]]) -> None:
        for counter, delta in changes:
            name = self._name(day, counter)
            self._used.put(name, (self._used.get(name) or 0) + delta)

    async def used(self, day: str, counter: Counter) -> int:
        return self._used.get(self._name(day, counter)) or 0


# KEYS: the counters. ARGV[1] the TTL in seconds; ARGV[2i] the amount and ARGV[2i+1]
# the limit (-1: none) of KEYS[i]. Returns 0 when charged, else the 1-based refusing
# index. Lua numbers are doubles: exact up to 2^53 (9e15 nano-USD, $9M per counter).
_RESERVE = """
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i + 1])
  local after = tonumber(redis.call('GET', key) or '0') + tonumber(ARGV[2 * i])
  if limit >= 0 and after > limit then
    return i
  end
end
for i, key in ipairs(KEYS) do
  redis.call('INCRBY', key, ARGV[2 * i])
  redis.call('EXPIRE', key, ARGV[1])
end
return 0
"""


class RedisBudgetStore:
    """Counters shared by every replica; a reservation is one Lua script."""

    def __init__(self, client: Redis, *, keys: KeySpace) -> None:
        self._client = client
        self._keys = keys
        self._reserve = client.register_script(_RESERVE)

    def _key(self, day: str, counter: Counter) -> str:
        if counter.meter is Meter.COST:
            return self._keys.cost(day, counter.scope)
        return self._keys.budget(day, counter.scope)

    async def reserve(self, day: str, charges: Sequence[Charge]) -> int | None:
        args: list[int] = [COUNTER_TTL_SECONDS]
        for charge in charges:
            args += [charge.amount, -1 if charge.limit is None else charge.limit]
        with store_errors("budget"):
            refused = int(
                await self._reserve(
                    keys=[self._key(day, charge.counter) for charge in charges], args=args
                )
            )
        return refused - 1 if refused else None

    async def adjust(self, day: str, changes: Sequence[tuple[Counter, int]]) -> None:
        changes = [(counter, delta) for counter, delta in changes if delta]
        if not changes:
            return
        with store_errors("budget"):
            async with self._client.pipeline(transaction=False) as pipe:
                for counter, delta in changes:
                    pipe.incrby(self._key(day, counter), delta)
                await pipe.execute()

    async def used(self, day: str, counter: Counter) -> int:
        with store_errors("budget"):
            raw = await self._client.get(self._key(day, counter))
        return int(raw) if raw is not None else 0


class FailoverBudgetStore:
    """Redis while it answers; the per-process store while it does not (the limits
    then hold per replica, as without Redis, instead of failing every request)."""

    def __init__(self, primary: BudgetStore, fallback: BudgetStore | None = None) -> None:
        self._primary = primary
        self._fallback = fallback or InMemoryBudgetStore()

    async def reserve(self, day: str, charges: Sequence[Charge]) -> int | None:
        try:
            return await self._primary.reserve(day, charges)
        except StoreUnavailable as exc:
            warn_degraded(log, "budget store unreachable; limits hold per process", exc)
            return await self._fallback.reserve(day, charges)

    async def adjust(self, day: str, changes: Sequence[tuple[Counter, int]]) -> None:
        try:
            await self._primary.adjust(day, changes)
        except StoreUnavailable as exc:
            warn_degraded(log, "budget store unreachable; usage not settled", exc)

    async def used(self, day: str, counter: Counter) -> int:
        try:
            return await self._primary.used(day, counter)
        except StoreUnavailable:
            return await self._fallback.used(day, counter)
