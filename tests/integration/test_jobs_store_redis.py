"""The Redis job store behaves as the in-memory one (the same scenarios), and a record
is gone after its time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from chater_gpt.storage.jobs import JobConfig, JobStore, RedisJobStore
from chater_gpt.storage.keys import KeySpace
from tests.unit.storage.job_scenarios import expiry, lifecycle

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    redis = Redis.from_url(redis_url)
    yield redis
    await redis.aclose()


async def test_lifecycle(client: Redis, prefix: str) -> None:
    def make(config: JobConfig, clock: Callable[[], float]) -> JobStore:
        return RedisJobStore(client, config, keys=KeySpace(prefix), clock=clock)

    await lifecycle(make)


async def test_expiry(client: Redis, prefix: str) -> None:
    def make(config: JobConfig, clock: Callable[[], float]) -> JobStore:
        return RedisJobStore(client, config, keys=KeySpace(prefix), clock=clock)

    await expiry(make)


async def test_a_record_lives_its_ttl_from_submission_and_again_from_its_end(
    client: Redis, prefix: str
) -> None:
    keys = KeySpace(prefix)
    store = RedisJobStore(client, JobConfig(ttl_seconds=30, max_wait_seconds=10), keys=keys)
    await store.submit("a", {})
    assert 29_000 < await client.pttl(keys.job("a")) <= 30_000
    assert await store.start("a") == "processing"
    assert 0 < await client.pttl(keys.job("a")) <= 30_000  # kept
    await client.pexpire(keys.job("a"), 5_000)
    await store.finish("a", "completed", {})
    assert 29_000 < await client.pttl(keys.job("a")) <= 30_000  # renewed at the end
