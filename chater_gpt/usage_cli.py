"""`python -m chater_gpt usage --user someone@example.com [--day YYYY-MM-DD]`:
the tokens one user spent on one UTC day, read from the shared budget in Redis.

Usage is counted by the daily token budget (`resilience/budget.py`), which keys
users by a hash of their e-mail; this command only reads it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, date, datetime
from typing import Any, TextIO

from redis.asyncio import Redis
from redis.exceptions import RedisError

from chater_gpt.config import Settings
from chater_gpt.resilience.budget import RedisBudgetStore, TokenBudget


def add_parser(commands: Any) -> None:
    """Register the `usage` sub-command on the CLI's sub-parsers."""
    parser = commands.add_parser("usage", help="tokens a user spent on a UTC day")
    parser.add_argument("--user", required=True, help="the user's e-mail address")
    parser.add_argument("--day", type=_day, default=None, help="UTC day, YYYY-MM-DD (today)")


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a date as YYYY-MM-DD") from None


async def user_usage(budget: TokenBudget, user: str, day: date | None) -> dict[str, Any]:
    """The report for one user and day (today, UTC, when `day` is None)."""
    day_text = (day or datetime.now(UTC).date()).isoformat()
    return {"user": user, "day": day_text, "total_tokens": await budget.usage(user, day_text)}


def run_usage(settings: Settings, user: str, day: date | None, *, out: TextIO = sys.stdout) -> int:
    """Print the report as one JSON line; 2 without Redis, 1 when Redis fails."""
    if settings.redis_url is None:
        print("chater-gpt: usage is kept in Redis and REDIS_URL is not set", file=sys.stderr)
        return 2

    async def read() -> dict[str, Any]:
        assert settings.redis_url is not None
        redis = Redis.from_url(settings.redis_url.get_secret_value())
        try:
            return await user_usage(
                TokenBudget(RedisBudgetStore(redis, prefix=settings.redis_key_prefix)), user, day
            )
        finally:
            await redis.aclose()

    try:
        report = asyncio.run(read())
    except RedisError as exc:
        print(f"chater-gpt: cannot read usage from Redis ({type(exc).__name__})", file=sys.stderr)
        return 1
    print(json.dumps(report), file=out)
    return 0
