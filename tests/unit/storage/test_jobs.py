"""The in-memory job store (the embedded stack's twin of the Redis one)."""

from __future__ import annotations

from collections.abc import Callable

from chater_gpt.storage.jobs import InMemoryJobStore, JobConfig, JobStore
from tests.unit.storage.job_scenarios import CONFIG, Clock, expiry, lifecycle


def memory(config: JobConfig, clock: Callable[[], float]) -> JobStore:
    return InMemoryJobStore(config, clock)


async def test_lifecycle() -> None:
    await lifecycle(memory)


async def test_expiry() -> None:
    await expiry(memory)


async def test_a_record_is_gone_after_its_time() -> None:
    clock = Clock()
    store = InMemoryJobStore(CONFIG, clock)
    await store.submit("a", {})
    clock.now += CONFIG.ttl_seconds + 1
    assert await store.get("a") is None
    assert await store.start("a") == "missing"
