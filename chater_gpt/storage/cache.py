"""Response cache: identical stateless requests answered without an LLM call.

Only deterministic requests are cached (`temperature == 0`) and only without stored
history (with history the same words mean a different conversation). The key is
a digest of everything that shapes the answer: model, the exact messages sent,
max_tokens, temperature, seed and response format. A cached reply costs zero tokens; the caller
marks it `cached` (replies.reply_bytes). Off by default (RESPONSE_CACHE_ENABLED).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis

from chater_gpt.storage.keys import KeySpace
from chater_gpt.storage.redis import store_errors
from chater_gpt.storage.ttl_lru import TtlLru


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    text: str
    model: str
    finish_reason: str
    provider: str = ""  # who answered first (entries written before it have none)


class ResponseCache(Protocol):
    async def get(self, key: str) -> CachedAnswer | None: ...

    async def put(self, key: str, answer: CachedAnswer) -> None: ...


def is_cacheable(*, temperature: float, has_history: bool) -> bool:
    return temperature == 0 and not has_history


def cache_key(
    *,
    model: str,
    messages: Sequence[Mapping[str, Any]],
    max_tokens: int,
    temperature: float,
    seed: int | None,
    response_format: Mapping[str, Any] | None = None,
) -> str:
    parts: list[Any] = [model, list(messages), max_tokens, temperature, seed]
    if response_format is not None:
        parts.append(dict(response_format))
    # Sorted keys: the same messages always give the same bytes, whatever dict order.
    payload = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(payload).hexdigest()


def _encode(answer: CachedAnswer) -> bytes:
    return orjson.dumps([answer.text, answer.model, answer.finish_reason, answer.provider])


def _decode(raw: bytes) -> CachedAnswer:
    text, model, finish_reason, *rest = orjson.loads(raw)
    return CachedAnswer(str(text), str(model), str(finish_reason), str(rest[0]) if rest else "")


class InMemoryResponseCache:
    """Per-process cache (embedded mode): bounded LRU with a TTL."""

    def __init__(
        self,
        *,
        ttl_seconds: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: TtlLru[CachedAnswer] = TtlLru(
            ttl_seconds=ttl_seconds, max_entries=max_entries, clock=clock
        )

    async def get(self, key: str) -> CachedAnswer | None:
        return self._entries.get(key)

    async def put(self, key: str, answer: CachedAnswer) -> None:
        self._entries.put(key, answer)


class RedisResponseCache:
    """Shared by all replicas; Redis expires the entries (RESPONSE_CACHE_TTL_SECONDS)."""

    def __init__(self, client: Redis, *, ttl_seconds: int, keys: KeySpace) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._keys = keys

    async def get(self, key: str) -> CachedAnswer | None:
        with store_errors("cache"):
            raw = await self._client.get(self._keys.cache(key))
        return _decode(raw) if isinstance(raw, bytes) else None

    async def put(self, key: str, answer: CachedAnswer) -> None:
        with store_errors("cache"):
            await self._client.set(self._keys.cache(key), _encode(answer), ex=self._ttl)
