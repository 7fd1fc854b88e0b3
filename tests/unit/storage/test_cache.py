"""Response cache: what is cacheable, what makes two requests the same, TTL and bound."""

from __future__ import annotations

from typing import Any

from chater_gpt.storage.cache import (
    CachedAnswer,
    InMemoryResponseCache,
    cache_key,
    is_cacheable,
)

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
ANSWER = CachedAnswer("Hello!", "gpt-4o-mini", "stop")


def key(**overrides: Any) -> str:
    request: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "max_tokens": 100,
        "temperature": 0.0,
        "seed": None,
    }
    request.update(overrides)
    return cache_key(**request)


def test_only_deterministic_requests_without_history_are_cacheable() -> None:
    assert is_cacheable(temperature=0, has_history=False)
    assert not is_cacheable(temperature=0.7, has_history=False)
    assert not is_cacheable(temperature=0, has_history=True)


def test_the_key_ignores_dict_order_but_nothing_that_shapes_the_answer() -> None:
    reordered = [{"content": m["content"], "role": m["role"]} for m in MESSAGES]
    assert key() == key(messages=reordered)
    others = {
        key(model="gpt-4o"),
        key(messages=[*MESSAGES[:1], {"role": "user", "content": "Hi!"}]),
        key(max_tokens=101),
        key(temperature=0.5),
        key(seed=7),
    }
    assert key() not in others
    assert len(others) == 5


async def test_in_memory_cache_expires_and_stays_bounded() -> None:
    now = [0.0]
    cache = InMemoryResponseCache(ttl_seconds=10, max_entries=2, clock=lambda: now[0])
    await cache.put("a", ANSWER)
    assert await cache.get("a") == ANSWER
    now[0] = 10.0
    assert await cache.get("a") is None
    for name in ("x", "y", "z"):
        await cache.put(name, ANSWER)
    assert await cache.get("x") is None
    assert await cache.get("z") == ANSWER


def test_the_stored_form_keeps_the_provider_and_reads_entries_written_without_one() -> None:
    from chater_gpt.storage.cache import _decode, _encode

    routed = CachedAnswer("Hello!", "claude-haiku-4-5", "stop", "anthropic")
    assert _decode(_encode(routed)) == routed
    assert _decode(b'["Hello!", "gpt-4o-mini", "stop"]') == ANSWER  # before issue 13
    assert ANSWER.provider == ""
