"""`python -m chater_gpt usage (--user someone@example.com | --tenant APP_CODE)
[--day YYYY-MM-DD]`: the tokens and money one user or one tenant (`app_code`) spent on
one UTC day, read from the shared budget in Redis, as one JSON line.

Usage is counted by the daily budgets (`resilience/budget.py`), whose counters
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
from chater_gpt.storage.keys import tenant_scope_name, user_scope_name
from chater_gpt.storage.stores import open_stores


def add_parser(commands: Any) -> None:
    """Register the `usage` sub-command on the CLI's sub-parsers."""
    parser = commands.add_parser(
        "usage", help="tokens and cost (USD) of a user or a tenant on a UTC day"
    )
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="the user's e-mail address")
    who.add_argument("--tenant", help="the tenant's app_code")
    parser.add_argument("--day", type=_day, default=None, help="UTC day, YYYY-MM-DD (today)")


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a date as YYYY-MM-DD") from None


async def user_usage(budget: DailyBudget, user: str, day: date | None) -> dict[str, Any]:
    """The report for one user and day (today, UTC, when `day` is None)."""
    return {"user": user, **await _spent(budget, user_scope_name(user), day)}


async def tenant_usage(budget: DailyBudget, app_code: str, day: date | None) -> dict[str, Any]:
    """The report for one tenant and day (today, UTC, when `day` is None)."""
    return {"tenant": app_code, **await _spent(budget, tenant_scope_name(app_code), day)}


async def _spent(budget: DailyBudget, scope_name: str, day: date | None) -> dict[str, Any]:
    day_text = (day or datetime.now(UTC).date()).isoformat()
    spent = await budget.spent(scope_name, day_text)
    return {"day": day_text, "total_tokens": spent.tokens, "cost_usd": spent.cost_usd}


def run_usage(
    settings: Settings,
    user: str | None,
    day: date | None,
    *,
    tenant: str | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Print the report (of `user`, else of `tenant`) as one JSON line; 2 without Redis,
    1 when Redis fails."""
    if settings.redis_url is None:
        print("chater-gpt: usage is kept in Redis and REDIS_URL is not set", file=sys.stderr)
        return 2
    if (user is None) == (tenant is None):
        print("chater-gpt: usage needs one of --user and --tenant", file=sys.stderr)
        return 2

    # Imported here: of the service's wiring, the command needs only storage_config.
    from chater_gpt.wiring import storage_config

    async def read() -> dict[str, Any]:
        stores = open_stores(storage_config(settings), fail_over=False)
        try:
            budget = DailyBudget(stores.budgets)
            if user is not None:
                return await user_usage(budget, user, day)
            assert tenant is not None
            return await tenant_usage(budget, tenant, day)
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
