"""Money budgets shared by replicas through one Redis, under concurrent load: spent at most
one reservation past the limit, whichever replica admitted what.

First three service processes (`python main.py run`) answering one user's requests
against USER_DAILY_COST_LIMIT_USD; then three admission stacks, each with its own Redis
client, hammering a tenant's and the global money budgets from many tasks at once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from chater_gpt.config import load_settings
from chater_gpt.domain import ChatResult
from chater_gpt.errors import BudgetExhausted
from chater_gpt.resilience.admission import AdmissionControl, AdmissionLimits
from chater_gpt.resilience.budget import (
    DailyBudget,
    GlobalBudgetExhausted,
    nanos_to_usd,
    usd_to_nanos,
)
from chater_gpt.resilience.policy import parse_policy
from chater_gpt.resilience.rate_limit import RateLimiter
from chater_gpt.storage.budgets import RedisBudgetStore
from chater_gpt.storage.keys import GLOBAL_SCOPE, KeySpace, tenant_scope_name, user_scope_name
from chater_gpt.storage.rates import RedisRateStore
from chater_gpt.wiring import build_prices
from tests.integration.conftest import Broker, Topics, service_config
from tests.support.scripted_openai import ScriptedOpenAI
from tests.support.service_runner import (
    ReplyCollector,
    ServiceProcess,
    envelope,
    produce_requests,
)

pytestmark = pytest.mark.integration

REPLICAS = 3
MODEL = "gpt-4o-mini"
MAX_TOKENS = 100
USER = "ada@example.com"


def full_answer(body: dict[str, Any]) -> str:
    """An answer of all of max_tokens (the scripted server counts 4 characters a token):
    every call costs about its worst case, so the budget fills with real spend."""
    return "x" * 4 * int(body.get("max_tokens") or body.get("max_completion_tokens") or 1)


async def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.2)


async def test_three_service_replicas_never_overspend_a_users_money_budget(
    broker: Broker,
    topics: Topics,
    replies: ReplyCollector,
    redis_url: str,
    tmp_path: Path,
) -> None:
    # ~62 µUSD a call (gpt-4o-mini: 100 completion tokens at $0.60/M, ~20 prompt tokens at
    # $0.15/M): about 24 of the 60 requests fit the day's budget.
    limit = 0.0015
    with ScriptedOpenAI(latency=0.4, answer=full_answer) as scripted:
        config = service_config(
            broker,
            topics,
            scripted,
            redis_url=redis_url,
            user_daily_cost_limit_usd=limit,
            max_tokens=MAX_TOKENS,
            consumer_group=f"{topics.group}-money",
        )
        prices = build_prices(load_settings(config))  # the replicas' own prices
        logs = [tmp_path / f"replica-{n}.log" for n in range(REPLICAS)]
        replicas = [ServiceProcess(config, log).start() for log in logs]
        try:
            # Every replica owns partitions before the first request: no rebalance while
            # the budget is spent, and the requests are spread over the three.
            await wait_for(
                lambda: all(
                    log.exists() and "partitions assigned" in log.read_text() for log in logs
                ),
                timeout=90,
                what="three replicas assigned",
            )
            keys = [f"cost-{i}" for i in range(60)]
            produce_requests(
                broker.bootstrap,
                topics.request,
                [  # a conversation each: processed in parallel, no history to grow
                    envelope(key, message=f"spend {key}", user_email=USER, conversation_id=key)
                    for key in keys
                ],
            )
            by_key = await replies.await_keys(set(keys), timeout=90)
        finally:
            for replica in replicas:
                replica.stop()
        calls, peak = scripted.calls, scripted.max_concurrent

    answered = [by_key[key][0].value for key in keys if "response" in by_key[key][0].value]
    refused = [by_key[key][0].value for key in keys if "error" in by_key[key][0].value]
    assert len(answered) + len(refused) == len(keys)
    assert calls == len(answered)  # a refused request never reached the backend
    assert peak > REPLICAS  # the calls overlapped: reservations raced for the last room

    spent = sum(
        prices.cost_usd(
            reply["model"], reply["usage"]["prompt_tokens"], reply["usage"]["completion_tokens"]
        )
        for reply in answered
    )
    largest_prompt = max(reply["usage"]["prompt_tokens"] for reply in answered)
    reservation = prices.cost_usd(MODEL, largest_prompt, MAX_TOKENS)
    assert spent <= limit + reservation, f"${spent} spent of ${limit}"
    assert spent >= limit - 2 * reservation  # and the replicas did use the budget

    for reply in refused:
        error = reply["error"]
        assert error["code"] == "budget_exhausted"
        assert error["retryable"] is True
        assert "money budget" in error["message"]
        assert 0 < error["retry_after"] <= 86_400

    # What the replicas settled in Redis is the real cost of every answer.
    client = Redis.from_url(redis_url)
    try:
        keyspace = KeySpace(config["redis_key_prefix"])
        budget = DailyBudget(RedisBudgetStore(client, keys=keyspace))
        counted = await budget.spent(user_scope_name(USER))
        keys_left = [key async for key in client.scan_iter(match=f"{keyspace.prefix}*")]
        if keys_left:
            await client.delete(*keys_left)
    finally:
        await client.aclose()
    assert counted.cost_usd == pytest.approx(spent, abs=len(answered) * 1e-9)
    assert counted.tokens == sum(reply["usage"]["total_tokens"] for reply in answered)


# --- three admission stacks over separate clients, many tasks each ----------------------


@pytest.fixture
async def clients(redis_url: str) -> AsyncIterator[list[Redis]]:
    replicas = [Redis.from_url(redis_url) for _ in range(REPLICAS)]
    yield replicas
    for client in replicas:
        await client.aclose()


POLICY = parse_policy('{"tenants": {"shop": {"daily_cost_limit_usd": 0.003}}}', yaml=False)
GLOBAL_LIMIT = 0.01


class Prices:
    """$0.15 per million prompt tokens, $0.60 per million completion tokens."""

    def cost_usd(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * 0.15 + completion_tokens * 0.60) / 1_000_000


def stack(client: Redis, prefix: str) -> AdmissionControl:
    keys = KeySpace(prefix)
    return AdmissionControl(
        limiter=RateLimiter(RedisRateStore(client, keys=keys)),
        budget=DailyBudget(RedisBudgetStore(client, keys=keys)),
        limits=AdmissionLimits(daily_token_limit=10**9, daily_cost_limit_usd=GLOBAL_LIMIT),
        policy=POLICY,
        prices=Prices(),
    )


async def test_three_admission_stacks_share_the_tenant_and_global_money_budgets(
    clients: list[Redis], prefix: str
) -> None:
    controls = [stack(client, prefix) for client in clients]
    prices = Prices()
    rng = random.Random(13)
    refusals: set[tuple[str, str, bool]] = set()
    settled_nanos: dict[str, int] = {"global": 0, "shop": 0}
    outcomes = {"answered": 0, "failed": 0, "tenant_refused": 0, "paused": 0}
    largest = prices.cost_usd(MODEL, 60, MAX_TOKENS)  # the dearest reservation made

    async def worker(control: AdmissionControl) -> None:
        paused = 0
        while True:
            app_code = "shop" if rng.random() < 0.5 else None
            prompt_tokens = rng.randint(10, 50)
            try:
                admission = await control.admit(
                    key="k",
                    user_email=f"user{rng.randint(1, 5)}@example.com",
                    app_code=app_code,
                    model=MODEL,
                    max_tokens=MAX_TOKENS,
                    prompt_tokens=prompt_tokens,
                )
            except GlobalBudgetExhausted as exc:
                refusals.add(("global", exc.message, exc.retry_after is not None))
                paused += 1
                if paused == 5:  # in the service: paused until midnight
                    outcomes["paused"] += 1
                    return
                await asyncio.sleep(0.03)  # the calls in flight settle meanwhile
                continue
            except BudgetExhausted as exc:
                refusals.add(("tenant", exc.message, bool(exc.retry_after)))
                outcomes["tenant_refused"] += 1
                await asyncio.sleep(0)
                continue
            await asyncio.sleep(rng.uniform(0.0, 0.02))  # the "LLM call"
            if rng.random() < 0.1:
                await admission.release()
                outcomes["failed"] += 1
                continue
            # The provider counted the prompt up to 10 tokens higher than we did; half the
            # answers use all of max_tokens (those cost a little more than reserved).
            prompt = prompt_tokens + rng.randint(0, 10)
            completion = MAX_TOKENS if rng.random() < 0.5 else rng.randint(1, MAX_TOKENS)
            await admission.settle(ChatResult("a", MODEL, prompt, completion, "stop", "x"))
            nanos = usd_to_nanos(prices.cost_usd(MODEL, prompt, completion))
            settled_nanos["global"] += nanos
            if app_code:
                settled_nanos["shop"] += nanos
            outcomes["answered"] += 1

    await asyncio.gather(*(worker(c) for c in controls for _ in range(20)))

    budget = controls[1].budget
    spent_global = await budget.spent(GLOBAL_SCOPE)
    spent_shop = await budget.spent(tenant_scope_name("shop"))
    assert spent_global.cost_usd == nanos_to_usd(settled_nanos["global"])  # every replica's
    assert spent_shop.cost_usd == nanos_to_usd(settled_nanos["shop"])
    assert spent_global.cost_usd <= GLOBAL_LIMIT + largest
    assert spent_shop.cost_usd <= 0.003 + largest
    assert spent_global.cost_usd >= GLOBAL_LIMIT - 2 * largest  # the budget was used
    assert refusals == {
        ("global", "the daily money budget is spent", True),
        ("tenant", "the tenant daily money budget is spent", True),
    }
    assert outcomes["paused"] == 60  # every worker ended on the global pause
    assert outcomes["tenant_refused"] > 0
    assert outcomes["answered"] > 100
