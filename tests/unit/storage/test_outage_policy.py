"""The one outage policy (storage/redis.py), store by store, against a Redis that does
not answer (a closed local port: every command fails at once)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from chater_gpt.domain import BreakerState, ConversationRef, Turn
from chater_gpt.errors import BackendError, CircuitOpen, StoreUnavailable
from chater_gpt.resilience.breaker import Breaker
from chater_gpt.storage.budgets import Charge, Counter, Meter
from chater_gpt.storage.cache import CachedAnswer
from chater_gpt.storage.rates import Rate
from chater_gpt.storage.stores import StorageConfig, Stores, open_stores

DOWN = StorageConfig(redis_url="redis://:pw@127.0.0.1:1/0", cache_ttl_seconds=60)
ADA = ConversationRef("ada@example.com")
DAY = "2026-03-01"


@pytest.fixture
async def stores() -> AsyncIterator[Stores]:
    opened = open_stores(DOWN)
    yield opened
    await opened.aclose()


async def test_data_stores_raise_store_unavailable_and_the_caller_decides(stores: Stores) -> None:
    assert stores.cache is not None
    calls = [
        stores.outcomes.get("id:1"),
        stores.outcomes.put("id:1", b"reply"),
        stores.history.load(ADA),
        stores.history.append(ADA, [Turn("user", "hi")], dedupe_id="id:1"),
        stores.history.forget_user("ada@example.com"),
        stores.cache.get("k"),
        stores.cache.put("k", CachedAnswer("a", "m", "stop")),
    ]
    names = []
    for call in calls:
        with pytest.raises(StoreUnavailable) as caught:
            await call
        names.append(caught.value.store)
        assert "pw" not in str(caught.value)
    assert names == ["outcomes"] * 2 + ["history"] * 3 + ["cache"] * 2


async def test_health_probes_answer_false(stores: Stores) -> None:
    assert await stores.history.ping() is False


async def test_limits_hold_per_process(stores: Stores, caplog: pytest.LogCaptureFixture) -> None:
    rate = Rate(2, 60.0, burst=2)
    answers = [await stores.rates.step("user:a", rate, reserve=False) for _ in range(3)]
    assert answers[:2] == [None, None]
    assert answers[2] == pytest.approx(30.0, abs=1.0)  # the fallback's real clock
    tokens, cost = Counter("global"), Counter("global", Meter.COST)
    assert await stores.budgets.reserve(DAY, [Charge(tokens, 80, 100), Charge(cost, 5)]) is None
    assert await stores.budgets.reserve(DAY, [Charge(tokens, 30, 100)]) == 0
    assert await stores.budgets.used(DAY, tokens) == 80  # the per-process count
    assert await stores.budgets.used(DAY, cost) == 5
    await stores.budgets.adjust(DAY, [(tokens, -50)])  # dropped, with a warning
    warnings = {r.getMessage() for r in caplog.records if r.levelno == logging.WARNING}
    cause = "(StoreUnavailable from ConnectionError)"
    assert warnings == {
        f"rate-limit store unreachable; limits hold per process {cause}",
        f"budget store unreachable; limits hold per process {cause}",
        f"budget store unreachable; usage not settled {cause}",
    }


async def test_the_breaker_keeps_its_local_state(
    stores: Stores, caplog: pytest.LogCaptureFixture
) -> None:
    state = stores.breaker_state("openai")
    assert state is not None
    assert await state.load() is None
    assert await state.add_failure() is None
    assert await state.claim_probe(5.0) is None
    await state.save(BreakerState.OPEN, opened_at=1.0)
    await state.reset_failures()
    await state.release_probe()
    breaker = Breaker("openai", fail_max=2, reset_seconds=30, store=state)

    async def fail() -> str:
        raise BackendError("503")

    for _ in range(2):
        with pytest.raises(BackendError):
            await breaker.call(fail)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        await breaker.call(fail)
    assert any("using the local state" in r.getMessage() for r in caplog.records)


async def test_without_fail_over_every_store_raises() -> None:
    stores = open_stores(DOWN, fail_over=False)
    try:
        with pytest.raises(StoreUnavailable):
            await stores.budgets.used(DAY, Counter("global"))
        with pytest.raises(StoreUnavailable):
            await stores.rates.step("global", Rate(1), reserve=True)
        state = stores.breaker_state("openai")
        assert state is not None
        with pytest.raises(StoreUnavailable):
            await state.load()
    finally:
        await stores.aclose()
