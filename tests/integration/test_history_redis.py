"""History stores against a real Redis (and the in-memory store where the rule is shared)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from chater_gpt.domain import ConversationRef, Turn
from chater_gpt.storage.cache import CachedAnswer, RedisResponseCache
from chater_gpt.storage.history import HistoryStore, InMemoryHistoryStore, RedisHistoryStore
from chater_gpt.storage.keys import KeySpace

pytestmark = pytest.mark.integration

TTL = 300
ALICE = ConversationRef("alice@example.com")
ALICE_WORK = ConversationRef("alice@example.com", "work")
BOB = ConversationRef("bob@example.com")

StoreFactory = Callable[..., HistoryStore]


def exchange(n: int) -> list[Turn]:
    return [Turn("user", f"q{n} 你好 😀"), Turn("assistant", f"a{n}")]


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    redis = Redis.from_url(redis_url)
    yield redis
    await redis.aclose()


@pytest.fixture
async def prefix(client: Redis) -> AsyncIterator[str]:
    name = f"test-{uuid.uuid4().hex}:"
    yield name
    keys = [key async for key in client.scan_iter(match=f"{name}*")]
    if keys:
        await client.delete(*keys)


async def keys_of(client: Redis, prefix: str) -> list[bytes]:
    return sorted([key async for key in client.scan_iter(match=f"{prefix}*")])


@pytest.fixture(params=["redis", "memory"])
def make_store(request: pytest.FixtureRequest, client: Redis, prefix: str) -> StoreFactory:
    def make(max_history: int = 10) -> HistoryStore:
        if request.param == "redis":
            return RedisHistoryStore(
                client, max_history=max_history, ttl_seconds=TTL, keys=KeySpace(prefix)
            )
        return InMemoryHistoryStore(max_history=max_history, ttl_seconds=TTL, max_conversations=100)

    return make


async def test_turns_come_back_in_order_per_conversation(make_store: StoreFactory) -> None:
    store = make_store()
    await store.append(ALICE, exchange(1), dedupe_id="r1")
    await store.append(ALICE_WORK, exchange(2), dedupe_id="r2")
    await store.append(ALICE, exchange(3), dedupe_id="r3")
    assert await store.load(ALICE) == exchange(1) + exchange(3)
    assert await store.load(ALICE_WORK) == exchange(2)
    assert await store.load(BOB) == []


async def test_max_history_is_enforced_in_whole_exchanges(make_store: StoreFactory) -> None:
    store = make_store(max_history=5)
    for n in range(1, 6):
        await store.append(ALICE, exchange(n), dedupe_id=f"r{n}")
    assert await store.load(ALICE) == exchange(4) + exchange(5)


async def test_a_replayed_request_does_not_duplicate_history(make_store: StoreFactory) -> None:
    store = make_store()
    await store.append(ALICE, exchange(1), dedupe_id="r1")
    await store.append(ALICE, exchange(2), dedupe_id="r2")
    await store.append(ALICE, exchange(1), dedupe_id="r1")
    assert await store.load(ALICE) == exchange(1) + exchange(2)


async def test_forget_removes_every_conversation_of_the_user(make_store: StoreFactory) -> None:
    store = make_store()
    await store.append(ALICE, exchange(1), dedupe_id="r1")
    await store.append(ALICE_WORK, exchange(2), dedupe_id="r2")
    await store.append(BOB, exchange(3), dedupe_id="r3")
    assert await store.forget_user("alice@example.com") == 2
    assert await store.load(ALICE) == []
    assert await store.load(ALICE_WORK) == []
    assert await store.load(BOB) == exchange(3)
    assert await store.forget_user("alice@example.com") == 0
    assert await store.ping() is True


async def test_forget_leaves_no_key_of_the_user_in_redis(client: Redis, prefix: str) -> None:
    store = RedisHistoryStore(client, max_history=10, ttl_seconds=TTL, keys=KeySpace(prefix))
    await store.append(ALICE, exchange(1), dedupe_id="r1")
    await store.append(ALICE_WORK, exchange(2), dedupe_id="r2")
    assert len(await keys_of(client, prefix)) == 5  # 2 lists, 2 dedupe sets, the index
    await store.forget_user("alice@example.com")
    assert await keys_of(client, prefix) == []


async def test_every_key_has_the_ttl_and_no_key_names_the_user(client: Redis, prefix: str) -> None:
    store = RedisHistoryStore(client, max_history=10, ttl_seconds=TTL, keys=KeySpace(prefix))
    await store.append(ALICE, exchange(1), dedupe_id="r1")
    keys = await keys_of(client, prefix)
    assert len(keys) == 3
    for key in keys:
        assert 0 < await client.ttl(key) <= TTL
        assert b"alice" not in key
    # Every key of one user shares a Redis Cluster hash tag (one slot).
    assert len({key.split(b"{", 1)[1].split(b"}", 1)[0] for key in keys}) == 1


async def test_an_append_refreshes_the_ttl(client: Redis, prefix: str) -> None:
    store = RedisHistoryStore(client, max_history=10, ttl_seconds=TTL, keys=KeySpace(prefix))
    await store.append(ALICE, exchange(1), dedupe_id="r1")
    for key in await keys_of(client, prefix):
        await client.expire(key, 5)
    await store.append(ALICE, exchange(2), dedupe_id="r2")
    for key in await keys_of(client, prefix):
        assert await client.ttl(key) > 5


async def test_concurrent_appends_are_atomic(client: Redis, prefix: str) -> None:
    store = RedisHistoryStore(client, max_history=1000, ttl_seconds=TTL, keys=KeySpace(prefix))
    await asyncio.gather(
        *(store.append(ALICE, exchange(n), dedupe_id=f"r{n}") for n in range(40)),
        *(store.append(ALICE, exchange(7), dedupe_id="r7") for _ in range(10)),
    )
    turns = await store.load(ALICE)
    assert len(turns) == 80
    # Each exchange landed whole: every question is directly followed by its answer.
    pairs = [(turns[i], turns[i + 1]) for i in range(0, len(turns), 2)]
    assert sorted(pairs, key=lambda p: p[1].content) == sorted(
        [(q, a) for q, a in (exchange(n) for n in range(40))], key=lambda p: p[1].content
    )


async def test_forget_racing_appends_leaves_no_orphan_history(client: Redis, prefix: str) -> None:
    store = RedisHistoryStore(client, max_history=10, ttl_seconds=TTL, keys=KeySpace(prefix))
    conversations = [ConversationRef("alice@example.com", f"c{n}") for n in range(20)]
    await asyncio.gather(
        *(store.append(c, exchange(1), dedupe_id=f"r{i}") for i, c in enumerate(conversations)),
        store.forget_user("alice@example.com"),
    )
    # Whatever was appended after the forget is still listed in the index: a second
    # forget removes it all.
    await store.forget_user("alice@example.com")
    assert await keys_of(client, prefix) == []


async def test_ping_is_false_when_redis_is_unreachable() -> None:
    unreachable = Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    try:
        store = RedisHistoryStore(unreachable, max_history=10, ttl_seconds=TTL, keys=KeySpace())
        assert await store.ping() is False
    finally:
        await unreachable.aclose()


async def test_redis_response_cache_round_trip_with_ttl(client: Redis, prefix: str) -> None:
    # The optional response cache shares this Redis setup.
    cache = RedisResponseCache(client, ttl_seconds=TTL, keys=KeySpace(prefix))
    answer = CachedAnswer("Hello! 你好", "gpt-4o-mini", "stop")
    assert await cache.get("k1") is None
    await cache.put("k1", answer)
    assert await cache.get("k1") == answer
    (key,) = await keys_of(client, prefix)
    assert 0 < await client.ttl(key) <= TTL
