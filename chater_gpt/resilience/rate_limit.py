"""Request-rate limits with GCRA, shared by all replicas through Redis (or per process).

GCRA (the generic cell rate algorithm) keeps one number per scope: the
"theoretical arrival time" (TAT) of the next request. A rate of `limit` per
`period` spaces requests `period / limit` apart and allows `burst` of them at
once. The Redis version is one Lua script reading Redis' own clock, so replicas
with skewed clocks still share one schedule; the in-memory version is the same
arithmetic (`gcra_step`) on a local clock.

Two uses:
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
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from chater_gpt.observability.logging import warn_degraded

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rate:
    limit: int
    period: float = 60.0
    burst: int = 1

    def __post_init__(self) -> None:
        if self.limit < 1 or self.period <= 0 or self.burst < 1:
            raise ValueError("a rate needs limit >= 1, period > 0 and burst >= 1")

    @property
    def interval(self) -> float:
        """Seconds between two requests at the steady rate."""
        return self.period / self.limit

    @property
    def tolerance(self) -> float:
        """How far ahead of schedule a request may be (GCRA's tau)."""
        return self.interval * (self.burst - 1)


def gcra_step(tat: float, now: float, rate: Rate, *, reserve: bool) -> tuple[float, float | None]:
    """One GCRA decision: (new TAT, wait).

    With `reserve`, the caller always gets a slot and `wait` is how long until it
    (0 when it may go now). Without, `wait` is None when allowed, else the
    retry-after, and the TAT is unchanged.
    """
    start = max(tat, now)
    wait = start - rate.tolerance - now
    if wait > 0 and not reserve:
        return tat, wait
    return start + rate.interval, max(wait, 0.0) if reserve else None


class RateStore(Protocol):
    async def step(self, scope: str, rate: Rate, *, reserve: bool) -> float | None:
        """Apply `gcra_step` to the scope's TAT atomically and return its wait."""
        ...


class MemoryRateStore:
    """Per-process limits; same semantics as the Redis store."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tats: dict[str, float] = {}

    async def step(self, scope: str, rate: Rate, *, reserve: bool) -> float | None:
        now = self._clock()
        if len(self._tats) > 10_000:  # forget idle scopes (their TAT is in the past)
            self._tats = {k: v for k, v in self._tats.items() if v > now}
        tat, wait = gcra_step(self._tats.get(scope, now), now, rate, reserve=reserve)
        self._tats[scope] = tat
        return wait


# KEYS[1] the scope's TAT (ms, as a string); ARGV: interval ms, tolerance ms, reserve (1/0).
# Returns the wait in ms as a string, or false-y "" when allowed without waiting.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local reserve = ARGV[3] == '1'
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait > 0 and not reserve then return tostring(wait) end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now) + 1000)
if wait > 0 then return tostring(wait) end
return ''
"""


class RedisRateStore:
    """Limits shared by every replica: one key per scope, updated by one Lua script."""

    def __init__(self, redis: Redis, *, prefix: str = "chater:") -> None:
        self._prefix = prefix
        self._script = redis.register_script(_GCRA)

    async def step(self, scope: str, rate: Rate, *, reserve: bool) -> float | None:
        raw = await self._script(
            keys=[f"{self._prefix}rate:{scope}"],
            args=[repr(rate.interval * 1000), repr(rate.tolerance * 1000), int(reserve)],
        )
        text = raw.decode() if isinstance(raw, bytes) else str(raw or "")
        if not text:
            return 0.0 if reserve else None
        return float(text) / 1000.0


class FailoverRateStore:
    """Redis while it answers; the per-process store while it does not."""

    def __init__(self, primary: RateStore, fallback: RateStore | None = None) -> None:
        self._primary = primary
        self._fallback = fallback or MemoryRateStore()

    async def step(self, scope: str, rate: Rate, *, reserve: bool) -> float | None:
        try:
            return await self._primary.step(scope, rate, reserve=reserve)
        except RedisError as exc:
            warn_degraded(log, "rate-limit store unreachable; limits hold per process", exc)
            return await self._fallback.step(scope, rate, reserve=reserve)


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
        scope: str = "global",
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
