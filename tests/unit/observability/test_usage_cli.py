"""The usage command reads what the daily budgets counted (tokens and money) for one user
or one tenant and day."""

from __future__ import annotations

import argparse
import io
from datetime import UTC, date, datetime

import pytest
from pydantic import SecretStr

from chater_gpt.config import Settings
from chater_gpt.resilience.budget import DailyBudget, tenant_scope, user_scope
from chater_gpt.storage.budgets import InMemoryBudgetStore
from chater_gpt.usage_cli import add_parser, run_usage, tenant_usage, user_usage


async def test_usage_reports_the_tokens_and_cost_settled_for_that_user_and_day() -> None:
    today = datetime.now(UTC).date()
    budget = DailyBudget(InMemoryBudgetStore())
    reservation = await budget.reserve([user_scope("Someone@Example.com", None)], 500, 0.0021)
    await budget.settle(reservation, 150, 0.000345)
    await budget.reserve([user_scope("other@example.com", None)], 70, 0.5)

    report = await user_usage(budget, "someone@example.com", None)
    assert report == {
        "user": "someone@example.com",
        "day": today.isoformat(),
        "total_tokens": 150,
        "cost_usd": 0.000345,
    }
    yesterday = await user_usage(budget, "someone@example.com", date(2000, 1, 1))
    assert (yesterday["total_tokens"], yesterday["cost_usd"]) == (0, 0.0)


async def test_usage_reports_a_tenant() -> None:
    today = datetime.now(UTC).date()
    budget = DailyBudget(InMemoryBudgetStore())
    scopes = [user_scope("a@example.com", None), tenant_scope("shop", None)]
    await budget.settle(await budget.reserve(scopes, 900, 0.01), 300, 0.0042)
    await budget.reserve([user_scope("b@example.com", None), tenant_scope("shop", None)], 20)

    report = await tenant_usage(budget, "shop", today)
    assert report == {
        "tenant": "shop",
        "day": today.isoformat(),
        "total_tokens": 320,
        "cost_usd": 0.0042,
    }
    assert (await tenant_usage(budget, "docs", None))["total_tokens"] == 0


def test_the_usage_command_line() -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["usage", "--user", "a@example.com", "--day", "2026-01-31"])
    assert (args.user, args.tenant, args.day) == ("a@example.com", None, date(2026, 1, 31))
    args = parser.parse_args(["usage", "--tenant", "shop"])
    assert (args.user, args.tenant, args.day) == (None, "shop", None)
    with pytest.raises(SystemExit):
        parser.parse_args(["usage", "--user", "a@example.com", "--day", "31/01/2026"])
    with pytest.raises(SystemExit):  # one of them, not both
        parser.parse_args(["usage", "--user", "a@example.com", "--tenant", "shop"])
    with pytest.raises(SystemExit):  # and not neither
        parser.parse_args(["usage"])


def test_without_redis_there_is_no_usage_to_show(capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(
        bootstrap_server="127.0.0.1:9092", openai_api_key=SecretStr("sk-x1234567"), redis_url=None
    )
    out = io.StringIO()
    assert run_usage(settings, "a@example.com", None, out=out) == 2
    assert out.getvalue() == ""
    assert "REDIS_URL" in capsys.readouterr().err


def test_the_report_is_of_a_user_or_of_a_tenant(capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(
        bootstrap_server="127.0.0.1:9092",
        openai_api_key=SecretStr("sk-x1234567"),
        redis_url=SecretStr("redis://127.0.0.1:1/0"),
    )
    assert run_usage(settings, None, None, out=io.StringIO()) == 2
    assert run_usage(settings, "a@example.com", None, tenant="shop", out=io.StringIO()) == 2
    assert capsys.readouterr().err.count("one of --user and --tenant") == 2
