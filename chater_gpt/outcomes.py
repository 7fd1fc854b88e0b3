"""The recorded outcome of every request, so a replay is answered without a second LLM call.

A request is identified by its idempotency id (see `dedupe_id`). The reply bytes
are stored before the request's offset can be committed; a replayed request
(crash, rebalance, deploy) finds them and is answered again, unbilled.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from redis.asyncio import Redis

from chater_gpt.storage.ttl_lru import TtlLru


class OutcomeStore(Protocol):
    async def get(self, dedupe_id: str) -> bytes | None: ...

    async def put(self, dedupe_id: str, reply: bytes) -> None: ...


def content_fingerprint(parts: Sequence[bytes]) -> str:
    """A short stable digest of request content, for idempotency ids."""
    digest = hashlib.blake2b(digest_size=12)
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def dedupe_id(
    *, key: str, request_id: str | None, topic: str, partition: int, offset: int, value: bytes
) -> str:
    """An explicit request_id wins (scoped by key); else the message's own coordinates.

    The content fingerprint guards against a topic recreated from scratch, where the
    same coordinates would name a different message.
    """
    if request_id:
        return f"id:{content_fingerprint([key.encode(), request_id.encode()])}"
    return f"msg:{topic}:{partition}:{offset}:{content_fingerprint([value])}"


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

    def __init__(self, client: Redis, *, ttl_seconds: int, prefix: str = "chater:") -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._prefix = f"{prefix}outcome:"

    async def get(self, dedupe_id: str) -> bytes | None:
        value = await self._client.get(self._prefix + dedupe_id)
        return value if isinstance(value, bytes) else None

    async def put(self, dedupe_id: str, reply: bytes) -> None:
        await self._client.set(self._prefix + dedupe_id, reply, ex=self._ttl)
