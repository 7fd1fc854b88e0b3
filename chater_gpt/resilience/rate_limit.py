"""Request-rate limits with GCRA, shared by all replicas through Redis (or per process).

The windows (one GCRA "theoretical arrival time" per scope) and their arithmetic
live in `storage/rates.py`; this module uses them in two ways:
- pacing (`Pacer.wait_turn`): the global REQUESTS_PER_MINUTE *delays* work. Each
  caller reserves the next free slot atomically and sleeps until it, so callers are
  served in order and the backend never sees more than the rate (burst 1: at most
  `limit` requests in any window of `period`, plus the one at its edge).
- refusing (`RateLimiter.try_acquire`): per-user and per-tenant limits answer
  `rate_limited` with a retry-after instead of waiting. Their burst is the limit
  itself (a bucket of `limit` requests refilled at `limit` per `period`), so a user
  may send a few messages in a row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from chater_gpt.storage.keys import GLOBAL_SCOPE
from chater_gpt.storage.rates import Rate, RateStore


class RateLimiter:
    """Refusing limits: per user, per tenant."""

    def __init__(self, store: RateStore) -> None:
        self._store = store

    async def try_acquire(self, scope: str, rate: Rate) -> float | None:
        """Take one request of `scope`'s allowance: None if allowed, else seconds to wait."""
        return await self._store.step(scope, rate, reserve=False)


class Pacer:
    """The delaying limit of one backend: `wait_turn()` before each attempt."""

    def __init__(
        self,
        store: RateStore,
        rate: Rate,
        *,
        scope: str = GLOBAL_SCOPE,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_wait: Callable[[float], None] | None = None,
    ) -> None:
        self._store = store
        self._rate = rate
        self._scope = scope
        self._sleep = sleep
        self._on_wait = on_wait

    async def wait_turn(self) -> None:
        wait = await self._store.step(self._scope, self._rate, reserve=True) or 0.0
        if self._on_wait is not None:
            self._on_wait(wait)
        if wait > 0:
            await self._sleep(wait)
