"""Daily token counters: one per scope and UTC day, in Redis or per process.

A reservation charges every scope at once or none (`reserve`); `adjust` moves
counters by a signed amount (settling or releasing a reservation); `used` reads one.
The budget logic (scopes, days, the exhausted errors) is `resilience/budget.py`.
Counters expire `COUNTER_TTL_SECONDS` after the last reservation on them: a
reservation made before midnight may still be settled after it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from redis.asyncio import Redis

from chater_gpt.errors import StoreUnavailable
from chater_gpt.observability.logging import warn_degraded
from chater_gpt.storage.keys import KeySpace
from chater_gpt.storage.redis import store_errors
from chater_gpt.storage.ttl_lru import TtlLru

log = logging.getLogger(__name__)

COUNTER_TTL_SECONDS = 2 * 86_400


class BudgetStore(Protocol):
    async def reserve(
        self, day: str, scopes: Sequence[tuple[str, int | None]], tokens: int
    ) -> int | None:
        """Charge `tokens` to every scope, or none: None if charged, else the index
        of the first scope without room."""
        ...

    async def adjust(self, day: str, scopes: Sequence[str], delta: int) -> None: ...

    async def used(self, day: str, scope: str) -> int: ...


class InMemoryBudgetStore:
    """Per-process counters, expiring as the Redis ones do. At most `max_counters` are
    kept (the least recently used go first; the global counter is used by every
    request, so only idle users' and tenants' counters can go)."""

    def __init__(
        self, *, max_counters: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._used: TtlLru[int] = TtlLru(
            ttl_seconds=COUNTER_TTL_SECONDS, max_entries=max_counters, clock=clock
        )

    async def reserve(
        self, day: str, scopes: Sequence[tuple[str, int | None]], tokens: int
    ) -> int | None:
        counters = [f"{day}:{scope}" for scope, _ in scopes]
        for index, (counter, (_, limit)) in enumerate(zip(counters, scopes, strict=True)):
            if limit is not None and (self._used.get(counter) or 0) + tokens > limit:
                return index
        for counter in counters:
            self._used.put(counter, (self._used.get(counter) or 0) + tokens)
        return None

    async def adjust(self, day: str, scopes: Sequence[str], delta: int) -> None:
        for scope in scopes:
            counter = f"{day}:{scope}"
            self._used.put(counter, (self._used.get(counter) or 0) + delta)

    async def used(self, day: str, scope: str) -> int:
        return self._used.get(f"{day}:{scope}") or 0


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
    """Counters shared by every replica; a reservation is one Lua script."""

    def __init__(self, client: Redis, *, keys: KeySpace) -> None:
        self._client = client
        self._keys = keys
        self._reserve = client.register_script(_RESERVE)

    async def reserve(
        self, day: str, scopes: Sequence[tuple[str, int | None]], tokens: int
    ) -> int | None:
        with store_errors("budget"):
            refused = int(
                await self._reserve(
                    keys=[self._keys.budget(day, scope) for scope, _ in scopes],
                    args=[
                        tokens,
                        COUNTER_TTL_SECONDS,
                        *(-1 if limit is None else limit for _, limit in scopes),
                    ],
                )
            )
        return refused - 1 if refused else None

    async def adjust(self, day: str, scopes: Sequence[str], delta: int) -> None:
        if delta == 0 or not scopes:
            return
        with store_errors("budget"):
            async with self._client.pipeline(transaction=False) as pipe:
                for scope in scopes:
                    pipe.incrby(self._keys.budget(day, scope), delta)
                await pipe.execute()

    async def used(self, day: str, scope: str) -> int:
        with store_errors("budget"):
            raw = await self._client.get(self._keys.budget(day, scope))
        return int(raw) if raw is not None else 0


class FailoverBudgetStore:
    """Redis while it answers; the per-process store while it does not (the limits
    then hold per replica, as without Redis, instead of failing every request)."""

    def __init__(self, primary: BudgetStore, fallback: BudgetStore | None = None) -> None:
        self._primary = primary
        self._fallback = fallback or InMemoryBudgetStore()

    async def reserve(
        self, day: str, scopes: Sequence[tuple[str, int | None]], tokens: int
    ) -> int | None:
        try:
            return await self._primary.reserve(day, scopes, tokens)
        except StoreUnavailable as exc:
            warn_degraded(log, "budget store unreachable; limits hold per process", exc)
            return await self._fallback.reserve(day, scopes, tokens)

    async def adjust(self, day: str, scopes: Sequence[str], delta: int) -> None:
        try:
            await self._primary.adjust(day, scopes, delta)
        except StoreUnavailable as exc:
            warn_degraded(log, "budget store unreachable; usage not settled", exc)

    async def used(self, day: str, scope: str) -> int:
        try:
            return await self._primary.used(day, scope)
        except StoreUnavailable:
            return await self._fallback.used(day, scope)
