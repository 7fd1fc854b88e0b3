"""The stores against a real Redis write exactly the keys of the key space (the names
deployed data lives under), and the usage command reads what the budget counted."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
from pydantic import SecretStr

from chater_gpt.config import Settings
from chater_gpt.domain import BreakerState, ConversationRef, Turn
from chater_gpt.resilience.budget import DailyBudget, global_scope, tenant_scope, user_scope
from chater_gpt.storage.budgets import Charge, Counter, Meter
from chater_gpt.storage.cache import CachedAnswer
from chater_gpt.storage.keys import digest, user_scope_name
from chater_gpt.storage.rates import Rate
from chater_gpt.storage.stores import StorageConfig, Stores, open_stores
from chater_gpt.usage_cli import run_usage

pytestmark = pytest.mark.integration


@pytest.fixture
async def stores(redis_url: str, prefix: str) -> AsyncIterator[Stores]:
    opened = open_stores(
        StorageConfig(redis_url=redis_url, key_prefix=prefix, cache_ttl_seconds=60)
    )
    yield opened
    await opened.aclose()


async def test_every_store_writes_the_key_space_keys(stores: Stores, prefix: str) -> None:
    assert stores.cache is not None
    assert stores.client is not None
    ada = ConversationRef("Ada@example.com", "work")
    await stores.outcomes.put("id:1", b"reply")
    await stores.cache.put("c1", CachedAnswer("a", "m", "stop"))
    await stores.history.append(ada, [Turn("user", "q"), Turn("assistant", "a")], dedupe_id="r1")
    await stores.rates.step(user_scope_name("ada@example.com"), Rate(5), reserve=False)
    await stores.budgets.reserve(
        "2026-03-01", [Charge(Counter("global"), 7), Charge(Counter("global", Meter.COST), 9)]
    )
    state = stores.breaker_state("openai")
    assert state is not None
    await state.save(BreakerState.OPEN, opened_at=1.0)
    assert await state.claim_probe(30.0) is True

    member = digest("Ada@example.com\x1fwork")
    expected = {
        f"{prefix}outcome:id:1",
        f"{prefix}cache:c1",
        f"{prefix}{{u:{digest('Ada@example.com')}}}:h:{member}",
        f"{prefix}{{u:{digest('Ada@example.com')}}}:d:{member}",
        f"{prefix}{{u:{digest('Ada@example.com')}}}:idx",
        f"{prefix}rate:user:{digest('ada@example.com')}",
        f"{prefix}budget:2026-03-01:global",
        f"{prefix}cost:2026-03-01:global",
        f"{prefix}breaker:openai",
        f"{prefix}breaker:openai:probe",
    }
    found = {key.decode() async for key in stores.client.scan_iter(match=f"{prefix}*")}
    assert found == expected


def test_the_usage_command_reads_the_budget_from_redis(redis_url: str, prefix: str) -> None:
    async def spend() -> None:
        stores = open_stores(StorageConfig(redis_url=redis_url, key_prefix=prefix))
        try:
            budget = DailyBudget(stores.budgets)
            scopes = [
                global_scope(10**6),
                user_scope("ada@example.com", None),
                tenant_scope("shop", None, 5.0),
            ]
            await budget.settle(await budget.reserve(scopes, 90, 0.0009), 42, 0.000123)
            await budget.reserve([global_scope(10**6), tenant_scope("shop", None)], 8, 0.000002)
            await budget.reserve([user_scope("bob@example.com", None, 1.0)], 1000, 0.5)
        finally:
            await stores.aclose()

    asyncio.run(spend())
    settings = Settings(
        bootstrap_server="127.0.0.1:9092",
        openai_api_key=SecretStr("sk-x1234567"),
        redis_url=SecretStr(redis_url),
        redis_key_prefix=prefix,
    )
    out = io.StringIO()
    assert run_usage(settings, "Ada@Example.com", None, out=out) == 0
    today = datetime.now(UTC).date().isoformat()
    assert out.getvalue() == (
        f'{{"user": "Ada@Example.com", "day": "{today}", "total_tokens": 42,'
        ' "cost_usd": 0.000123}\n'
    )
    out = io.StringIO()
    assert run_usage(settings, None, None, tenant="shop", out=out) == 0
    assert out.getvalue() == (
        f'{{"tenant": "shop", "day": "{today}", "total_tokens": 50, "cost_usd": 0.000125}}\n'
    )
    out = io.StringIO()
    assert run_usage(settings, None, date(2000, 1, 1), tenant="shop", out=out) == 0
    assert '"total_tokens": 0, "cost_usd": 0.0}' in out.getvalue()


def test_the_usage_command_fails_when_redis_does_not_answer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings(
        bootstrap_server="127.0.0.1:9092",
        openai_api_key=SecretStr("sk-x1234567"),
        redis_url=SecretStr("redis://:hunter2@127.0.0.1:1/0"),
    )
    out = io.StringIO()
    assert run_usage(settings, "ada@example.com", None, out=out) == 1
    assert out.getvalue() == ""
    err = capsys.readouterr().err
    assert "cannot read usage from Redis (ConnectionError)" in err
    assert "hunter2" not in err
