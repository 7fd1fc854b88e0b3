"""`python -m chater_gpt usage --user someone@example.com [--day YYYY-MM-DD]`:
the tokens one user spent on one UTC day, read from the shared budget in Redis.

Usage is counted by the daily token budget (`resilience/budget.py`), whose counters
(`storage/budgets.py`) key users by a hash of their e-mail; this command only reads
them, from Redis itself: a Redis failure ends it (exit code 1) rather than report the
per-process fallback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, date, datetime
from typing import Any, TextIO

from chater_gpt.config import Settings
from chater_gpt.errors import StoreUnavailable
from chater_gpt.resilience.budget import DailyBudget
from chater_gpt.storage.stores import open_stores


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


async def user_usage(budget: DailyBudget, user: str, day: date | None) -> dict[str, Any]:
    """The report for one user and day (today, UTC, when `day` is None)."""
    day_text = (day or datetime.now(UTC).date()).isoformat()
    return {"user": user, "day": day_text, "total_tokens": await budget.usage(user, day_text)}


def run_usage(settings: Settings, user: str, day: date | None, *, out: TextIO = sys.stdout) -> int:
    """Print the report as one JSON line; 2 without Redis, 1 when Redis fails."""
    if settings.redis_url is None:
        print("chater-gpt: usage is kept in Redis and REDIS_URL is not set", file=sys.stderr)
        return 2

    # Imported here: of the service's wiring, the command needs only storage_config.
    from chater_gpt.wiring import storage_config

    async def read() -> dict[str, Any]:
        stores = open_stores(storage_config(settings), fail_over=False)
        try:
            return await user_usage(DailyBudget(stores.budgets), user, day)
        finally:
            await stores.aclose()

    try:
        report = asyncio.run(read())
    except StoreUnavailable as exc:
        cause = type(exc.__cause__ or exc).__name__  # the class only: never the address
        print(f"chater-gpt: cannot read usage from Redis ({cause})", file=sys.stderr)
        return 1
    print(json.dumps(report), file=out)
    return 0
