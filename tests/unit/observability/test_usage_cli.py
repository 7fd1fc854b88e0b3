"""The usage command reads what the daily budget counted for one user and day."""

from __future__ import annotations

import argparse
import io
from datetime import UTC, date, datetime

import pytest
from pydantic import SecretStr

from chater_gpt.config import Settings
from chater_gpt.resilience.budget import DailyBudget, user_scope
from chater_gpt.storage.budgets import InMemoryBudgetStore
from chater_gpt.usage_cli import add_parser, run_usage, user_usage


async def test_usage_reports_the_tokens_settled_for_that_user_and_day() -> None:
    today = datetime.now(UTC).date()
    budget = DailyBudget(InMemoryBudgetStore())
    reservation = await budget.reserve([user_scope("Someone@Example.com", None)], 500)
    await budget.settle(reservation, 150)
    await budget.reserve([user_scope("other@example.com", None)], 70)

    report = await user_usage(budget, "someone@example.com", None)
    assert report == {"user": "someone@example.com", "day": today.isoformat(), "total_tokens": 150}
    yesterday = await user_usage(budget, "someone@example.com", date(2000, 1, 1))
    assert yesterday["total_tokens"] == 0


def test_the_usage_command_line() -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["usage", "--user", "a@example.com", "--day", "2026-01-31"])
    assert (args.user, args.day) == ("a@example.com", date(2026, 1, 31))
    with pytest.raises(SystemExit):
        parser.parse_args(["usage", "--user", "a@example.com", "--day", "31/01/2026"])


def test_without_redis_there_is_no_usage_to_show(capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(
        bootstrap_server="127.0.0.1:9092", openai_api_key=SecretStr("sk-x1234567"), redis_url=None
    )
    out = io.StringIO()
    assert run_usage(settings, "a@example.com", None, out=out) == 2
    assert out.getvalue() == ""
    assert "REDIS_URL" in capsys.readouterr().err
