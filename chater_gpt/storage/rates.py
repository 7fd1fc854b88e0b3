"""Rate windows: one GCRA "theoretical arrival time" per scope, in Redis or per process.

GCRA (the generic cell rate algorithm) keeps one number per scope: the
"theoretical arrival time" (TAT) of the next request. A rate of `limit` per
`period` spaces requests `period / limit` apart and allows `burst` of them at
once. The Redis version is one Lua script reading Redis' own clock, so replicas
with skewed clocks still share one schedule; the in-memory version is the same
arithmetic (`gcra_step`) on a local clock. What the windows are used for (pacing,
refusing) is `resilience/rate_limit.py`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from chater_gpt.errors import StoreUnavailable
from chater_gpt.observability.logging import warn_degraded
from chater_gpt.storage.keys import KeySpace
from chater_gpt.storage.redis import store_errors
from chater_gpt.storage.ttl_lru import TtlLru

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


class InMemoryRateStore:
    """Per-process windows; same semantics as the Redis store.

    A TAT in the past means the same as none, so each entry expires at its TAT; at most
    `max_scopes` are kept (the least recently used go first: to lose a live window,
    that many other scopes must have been used within its period).
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, *, max_scopes: int = 100_000
    ) -> None:
        self._clock = clock
        self._tats: TtlLru[float] = TtlLru(ttl_seconds=0.0, max_entries=max_scopes, clock=clock)

    async def step(self, scope: str, rate: Rate, *, reserve: bool) -> float | None:
        now = self._clock()
        tat = self._tats.get(scope)
        new_tat, wait = gcra_step(now if tat is None else tat, now, rate, reserve=reserve)
        if new_tat != tat:
            self._tats.put(scope, new_tat, ttl_seconds=new_tat - now)
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
    """Windows shared by every replica: one key per scope, updated by one Lua script."""

    def __init__(self, client: Redis, *, keys: KeySpace) -> None:
        self._keys = keys
        self._script = client.register_script(_GCRA)

    async def step(self, scope: str, rate: Rate, *, reserve: bool) -> float | None:
        with store_errors("rate-limit"):
            raw = await self._script(
                keys=[self._keys.rate(scope)],
                args=[repr(rate.interval * 1000), repr(rate.tolerance * 1000), int(reserve)],
            )
        text = raw.decode() if isinstance(raw, bytes) else str(raw or "")
        if not text:
            return 0.0 if reserve else None
        return float(text) / 1000.0


class FailoverRateStore:
    """Redis while it answers; the per-process store while it does not (see redis.py)."""

    def __init__(self, primary: RateStore, fallback: RateStore | None = None) -> None:
        self._primary = primary
        self._fallback = fallback or InMemoryRateStore()

    async def step(self, scope: str, rate: Rate, *, reserve: bool) -> float | None:
        try:
            return await self._primary.step(scope, rate, reserve=reserve)
        except StoreUnavailable as exc:
            warn_degraded(log, "rate-limit store unreachable; limits hold per process", exc)
            return await self._fallback.step(scope, rate, reserve=reserve)
