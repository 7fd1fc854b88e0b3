"""Limits, budget and breaker shared by replicas through a real Redis.

Each "replica" is its own Redis client and its own store objects; they share only
Redis. Every test uses its own key prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis

from chater_gpt.errors import BackendError, BudgetExhausted, CircuitOpen
from chater_gpt.resilience.breaker import Breaker
from chater_gpt.resilience.budget import DailyBudget, global_scope, user_scope
from chater_gpt.resilience.rate_limit import Pacer, RateLimiter
from chater_gpt.storage.breaker_state import RedisBreakerStateStore
from chater_gpt.storage.budgets import RedisBudgetStore
from chater_gpt.storage.keys import KeySpace
from chater_gpt.storage.rates import Rate, RedisRateStore
from tests.support.fakes import FakeClock

pytestmark = pytest.mark.integration

REPLICAS = 3


@pytest.fixture
async def clients(redis_url: str) -> AsyncIterator[list[Redis]]:
    replicas = [Redis.from_url(redis_url) for _ in range(REPLICAS)]
    yield replicas
    for client in replicas:
        await client.aclose()


async def test_three_replicas_never_exceed_the_shared_rate(
    clients: list[Redis], prefix: str
) -> None:
    # 60 per minute scaled down: 10 per 2 s, i.e. one every 0.2 s.
    rate = Rate(10, 2.0)
    pacers = [
        Pacer(RedisRateStore(c, keys=KeySpace(prefix)), rate, scope="rpm:fake") for c in clients
    ]
    granted: list[float] = []
    deadline = time.monotonic() + 4.0

    async def worker(pacer: Pacer) -> None:
        while time.monotonic() < deadline:
            await pacer.wait_turn()
            granted.append(time.monotonic())

    await asyncio.gather(*(worker(p) for p in pacers for _ in range(4)))
    granted.sort()
    # Redis hands out slots exactly 0.2 s apart; the +2 allows the slot at the window's
    # edge plus one interval of event-loop wake-up lateness on a busy machine.
    for start in granted:
        in_window = [t for t in granted if start <= t < start + rate.period]
        assert len(in_window) <= rate.limit + 2, "more than the rate within one period"
    assert len(granted) <= (granted[-1] - granted[0]) / rate.interval + 2
    assert len(granted) >= 10  # the replicas were served, not starved


async def test_refusing_limit_holds_across_replicas(clients: list[Redis], prefix: str) -> None:
    limiters = [RateLimiter(RedisRateStore(c, keys=KeySpace(prefix))) for c in clients]
    rate = Rate(5, 60.0, burst=5)
    answers = await asyncio.gather(
        *(limiters[i % REPLICAS].try_acquire("user:ada", rate) for i in range(12))
    )
    allowed = [a for a in answers if a is None]
    refused = [a for a in answers if a is not None]
    assert len(allowed) == 5
    assert all(0 < r <= 12.0 for r in refused)  # retry_after: one interval at most


async def test_budget_is_never_overspent_by_concurrent_replicas(
    clients: list[Redis], prefix: str
) -> None:
    budgets = [DailyBudget(RedisBudgetStore(c, keys=KeySpace(prefix))) for c in clients]
    limit = 1000
    scopes = [global_scope(limit), user_scope("ada@example.com", None)]
    charged: list[int] = []

    async def request(index: int) -> None:
        budget = budgets[index % REPLICAS]
        try:
            reservation = await budget.reserve(scopes, 100)
        except BudgetExhausted:
            return
        await asyncio.sleep(0.01)  # the "LLM call"
        actual = 60 + index % 40  # real usage below the reservation
        await budget.settle(reservation, actual)
        charged.append(actual)

    await asyncio.gather(*(request(i) for i in range(40)))
    used = await budgets[0].used(scopes[0])
    assert used == sum(charged)
    assert used <= limit
    assert len(charged) >= 10  # settling freed room for more than limit / reservation
    assert await budgets[1].usage("ada@example.com") == used


async def test_breaker_opened_by_one_replica_is_open_for_the_others(
    clients: list[Redis], prefix: str
) -> None:
    clock = FakeClock(time.time())
    breakers = [
        Breaker(
            "openai",
            fail_max=3,
            reset_seconds=30,
            store=RedisBreakerStateStore(c, "openai", keys=KeySpace(prefix)),
            clock=clock,
        )
        for c in clients
    ]
    seen: list[str] = []
    half_open = asyncio.Event()

    def watch(name: str, state: str) -> None:
        seen.append(state)
        if state == "half_open":
            half_open.set()

    breakers[1].add_listener(watch)
    calls = 0

    def backend(fails: bool) -> Callable[[], Awaitable[str]]:
        async def call() -> str:
            nonlocal calls
            calls += 1
            if fails:
                raise BackendError("500")
            return "ok"

        return call

    for _ in range(3):
        with pytest.raises(BackendError):
            await breakers[0].call(backend(fails=True))
    assert breakers[0].state == "open"

    with pytest.raises(CircuitOpen) as caught:
        await breakers[1].call(backend(fails=False))
    assert calls == 3  # replica 1 did not call the backend
    assert caught.value.retry_after == pytest.approx(30, abs=0.01)
    assert seen == ["open"]

    clock.advance(31)
    gate = asyncio.Event()

    async def slow_probe() -> str:
        await gate.wait()
        return "ok"

    probe = asyncio.create_task(breakers[1].call(slow_probe))
    await asyncio.wait_for(half_open.wait(), 5)
    with pytest.raises(CircuitOpen):  # one probe across all replicas
        await breakers[2].call(backend(fails=False))
    gate.set()
    assert await probe == "ok"
    assert await breakers[0].refresh() == "closed"
    assert seen == ["open", "half_open", "closed"]
    assert await breakers[2].call(backend(fails=False)) == "ok"
