"""One behaviour, two stores: the job store's transitions, run against the in-memory
store here and against Redis in `tests/integration/test_jobs_store_redis.py`."""

from __future__ import annotations

from collections.abc import Callable

from chater_gpt.storage.jobs import JobConfig, JobStore

CONFIG = JobConfig(ttl_seconds=100, max_wait_seconds=50, capacity=3)
MakeStore = Callable[[JobConfig, Callable[[], float]], JobStore]


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


async def lifecycle(make: MakeStore) -> None:
    clock = Clock()
    store = make(CONFIG, clock)
    assert await store.submit("a", {"tenant": "shop"}) == 0
    clock.now += 0.01
    assert await store.submit("b", {"tenant": "shop"}) == 1
    clock.now += 0.01
    assert await store.submit("c", {}) == 2
    assert await store.submit("d", {}) is None  # full
    view = await store.get("c")
    assert view is not None
    assert view.status == "queued"
    assert view.position == 2
    assert await store.start("a") == "processing"
    assert await store.start("a") == "processing"  # a replay moves nothing
    view = await store.get("c")
    assert view is not None
    assert view.position == 1
    assert await store.finish("a", "completed", {"ai_response": "hi", "token_usage": {}})
    assert not await store.finish("a", "error", {"error_code": "X"})  # final: ignored
    done = await store.get("a")
    assert done is not None
    assert done.status == "completed"
    assert done.record["result"] == {"ai_response": "hi", "token_usage": {}}
    assert [status for status, _ in done.record["history"]] == [
        "queued",
        "processing",
        "completed",
    ]
    assert done.per_second > 0
    assert done.position is None
    assert await store.start("a") == "completed"
    assert await store.submit("d", {}) == 2  # room again
    assert await store.start("nobody") == "missing"


async def expiry(make: MakeStore) -> None:
    clock = Clock()
    store = make(CONFIG, clock)
    await store.submit("late", {})
    clock.now += 51
    assert await store.start("late") == "expired"
    view = await store.get("late")
    assert view is not None
    assert view.status == "expired"
    assert not await store.finish("late", "completed", {})  # too late: stays expired
    view = await store.get("late")
    assert view is not None
    assert view.status == "expired"
    assert [s for s, _ in view.record["history"]] == ["queued", "expired"]
