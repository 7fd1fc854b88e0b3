"""The shared state of a circuit breaker: one Redis hash per backend, plus a probe key.

The breaker itself (`resilience/breaker.py`) keeps a local copy of its state
(pybreaker's storage); with Redis it reads this store before each call and writes it
after, so every replica sees one state, and exactly one replica probes a half-open
backend. Without Redis there is no store: the local copy is the state.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from chater_gpt.domain import BreakerState
from chater_gpt.errors import StoreUnavailable
from chater_gpt.observability.logging import warn_degraded
from chater_gpt.storage.keys import KeySpace
from chater_gpt.storage.redis import store_errors

log = logging.getLogger(__name__)

# The hash's `state` field holds the state's value; anything else reads as closed.
_STATES = frozenset(state.value for state in BreakerState)


@dataclass(frozen=True, slots=True)
class SharedState:
    state: BreakerState
    opened_at: float | None
    failures: int


class BreakerStateStore(Protocol):
    """Where replicas share one breaker's state. Methods return None when unreachable."""

    async def load(self) -> SharedState | None: ...

    async def add_failure(self) -> int | None: ...

    async def save(self, state: BreakerState, *, opened_at: float | None = None) -> None: ...

    async def reset_failures(self) -> None: ...

    async def claim_probe(self, ttl: float) -> bool | None: ...

    async def release_probe(self) -> None: ...


# Atomic "increment the failure count" on the shared hash.
_ADD_FAILURE = """
local n = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return n
"""
# Delete the probe key only if this process still owns it.
_RELEASE_PROBE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisBreakerStateStore:
    """The shared state of one breaker in Redis; raises `StoreUnavailable` when Redis
    fails (`FailoverBreakerStateStore` turns that into "unreachable")."""

    def __init__(
        self, client: Redis, name: str, *, keys: KeySpace, ttl_seconds: float = 86_400
    ) -> None:
        self._client = client
        self._key = keys.breaker(name)
        self._probe_key = keys.breaker_probe(name)
        self._token = uuid.uuid4().hex
        self._ttl_ms = int(ttl_seconds * 1000)
        self._add_failure = client.register_script(_ADD_FAILURE)
        self._release = client.register_script(_RELEASE_PROBE)

    async def load(self) -> SharedState:
        with store_errors("breaker"):
            raw = await self._client.hgetall(self._key)
        fields = {_text(k): _text(v) for k, v in raw.items()}
        state = fields.get("state", BreakerState.CLOSED)
        opened_at = fields.get("opened_at")
        return SharedState(
            state=BreakerState(state) if state in _STATES else BreakerState.CLOSED,
            opened_at=float(opened_at) if opened_at else None,
            failures=int(fields.get("failures") or 0),
        )

    async def add_failure(self) -> int:
        with store_errors("breaker"):
            return int(await self._add_failure(keys=[self._key], args=[self._ttl_ms]))

    async def save(self, state: BreakerState, *, opened_at: float | None = None) -> None:
        mapping: dict[str, str | int] = {"state": state.value}
        if state is not BreakerState.HALF_OPEN:
            mapping["failures"] = 0
        if opened_at is not None:
            mapping["opened_at"] = repr(opened_at)
        with store_errors("breaker"):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hset(self._key, mapping=mapping)  # type: ignore[arg-type]
                pipe.pexpire(self._key, self._ttl_ms)
                await pipe.execute()

    async def reset_failures(self) -> None:
        with store_errors("breaker"):
            await self._client.hset(self._key, "failures", 0)

    async def claim_probe(self, ttl: float) -> bool:
        with store_errors("breaker"):
            return bool(
                await self._client.set(self._probe_key, self._token, nx=True, px=int(ttl * 1000))
            )

    async def release_probe(self) -> None:
        with store_errors("breaker"):
            await self._release(keys=[self._probe_key], args=[self._token])


class FailoverBreakerStateStore:
    """The shared state while Redis answers; "unreachable" (None) while it does not, and
    the breaker goes on with its local state (see redis.py)."""

    def __init__(self, shared: BreakerStateStore) -> None:
        self._shared = shared

    async def load(self) -> SharedState | None:
        try:
            return await self._shared.load()
        except StoreUnavailable as exc:
            self._unreachable(exc)
            return None

    async def add_failure(self) -> int | None:
        try:
            return await self._shared.add_failure()
        except StoreUnavailable as exc:
            self._unreachable(exc)
            return None

    async def save(self, state: BreakerState, *, opened_at: float | None = None) -> None:
        try:
            await self._shared.save(state, opened_at=opened_at)
        except StoreUnavailable as exc:
            self._unreachable(exc)

    async def reset_failures(self) -> None:
        try:
            await self._shared.reset_failures()
        except StoreUnavailable as exc:
            self._unreachable(exc)

    async def claim_probe(self, ttl: float) -> bool | None:
        try:
            return await self._shared.claim_probe(ttl)
        except StoreUnavailable as exc:
            self._unreachable(exc)
            return None

    async def release_probe(self) -> None:
        try:
            await self._shared.release_probe()
        except StoreUnavailable as exc:
            self._unreachable(exc)

    def _unreachable(self, exc: StoreUnavailable) -> None:
        warn_degraded(log, "breaker state store unreachable; using the local state", exc)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
