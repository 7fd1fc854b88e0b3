"""The recorded outcome of every request, so a replay is answered without a second LLM call.

A request is identified by its idempotency id (`keys.dedupe_id`). The reply bytes
are stored before the request's offset can be committed; a replayed request
(crash, rebalance, deploy) finds them and is answered again, unbilled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis

from chater_gpt.storage.keys import KeySpace
from chater_gpt.storage.redis import store_errors
from chater_gpt.storage.ttl_lru import TtlLru


class OutcomeStore(Protocol):
    async def get(self, dedupe_id: str) -> bytes | None: ...

    async def put(self, dedupe_id: str, reply: bytes) -> None: ...


class InMemoryOutcomeStore:
    """Per-process record (embedded mode): survives rebalances, not a crash."""

    def __init__(
        self,
        *,
        ttl_seconds: float,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: TtlLru[bytes] = TtlLru(
            ttl_seconds=ttl_seconds, max_entries=max_entries, clock=clock
        )

    async def get(self, dedupe_id: str) -> bytes | None:
        return self._entries.get(dedupe_id)

    async def put(self, dedupe_id: str, reply: bytes) -> None:
        self._entries.put(dedupe_id, reply)


class RedisOutcomeStore:
    """Shared by all replicas: a replay on another pod is answered from here too."""

    def __init__(self, client: Redis, *, ttl_seconds: int, keys: KeySpace) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._keys = keys

    async def get(self, dedupe_id: str) -> bytes | None:
        with store_errors("outcomes"):
            value = await self._client.get(self._keys.outcome(dedupe_id))
        return value if isinstance(value, bytes) else None

    async def put(self, dedupe_id: str, reply: bytes) -> None:
        with store_errors("outcomes"):
            await self._client.set(self._keys.outcome(dedupe_id), reply, ex=self._ttl)
