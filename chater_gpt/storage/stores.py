"""Every store of the process, opened in one place: Redis when configured, else in memory.

`open_stores(config)` makes the "Redis or in memory" decision once and applies the
outage policy of `redis.py` while doing so: with Redis, the coordination stores
(rate windows, budget counters, breaker state) are wrapped in their `Failover*`
stores, the data stores (history, outcomes, cache) raise `StoreUnavailable`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from chater_gpt.storage.breaker_state import (
    BreakerStateStore,
    FailoverBreakerStateStore,
    RedisBreakerStateStore,
)
from chater_gpt.storage.budgets import (
    BudgetStore,
    FailoverBudgetStore,
    InMemoryBudgetStore,
    RedisBudgetStore,
)
from chater_gpt.storage.cache import InMemoryResponseCache, RedisResponseCache, ResponseCache
from chater_gpt.storage.history import HistoryStore, InMemoryHistoryStore, RedisHistoryStore
from chater_gpt.storage.jobs import InMemoryJobStore, JobConfig, JobStore, RedisJobStore
from chater_gpt.storage.keys import DEFAULT_KEY_PREFIX, KeySpace
from chater_gpt.storage.outcomes import InMemoryOutcomeStore, OutcomeStore, RedisOutcomeStore
from chater_gpt.storage.rates import FailoverRateStore, InMemoryRateStore, RateStore, RedisRateStore
from chater_gpt.storage.redis import redis_client

WEEK_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class HistoryConfig:
    max_turns: int = 10  # MAX_HISTORY
    ttl_seconds: int = WEEK_SECONDS  # CONTEXT_TTL_SECONDS
    max_conversations: int = 10_000  # HISTORY_MAX_CONVERSATIONS (in memory only)


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """What the stores need to know, and nothing else. The defaults are the settings'."""

    # Secret (it may carry a password): never in a repr. None: every store in memory.
    redis_url: str | None = field(default=None, repr=False)
    key_prefix: str = DEFAULT_KEY_PREFIX
    max_connections: int = 64
    outcome_ttl_seconds: int = WEEK_SECONDS
    history: HistoryConfig = HistoryConfig()
    # None: no response cache (RESPONSE_CACHE_ENABLED=false).
    cache_ttl_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class Stores:
    """The stores of one process, and the Redis client behind them (None in memory)."""

    history: HistoryStore
    outcomes: OutcomeStore
    rates: RateStore
    budgets: BudgetStore
    cache: ResponseCache | None
    keys: KeySpace
    client: Redis | None = None
    fail_over: bool = True

    def breaker_state(self, backend: str) -> BreakerStateStore | None:
        """The shared state of one backend's breaker; None without Redis (the breaker's
        local state is then the only one)."""
        if self.client is None:
            return None
        shared = RedisBreakerStateStore(self.client, backend, keys=self.keys)
        return FailoverBreakerStateStore(shared) if self.fail_over else shared

    def jobs(self, config: JobConfig) -> JobStore:
        """The job API's store: in Redis, shared by the gateways and the core; in memory
        only for a gateway and a core in one process (the demo, tests). Call it once."""
        if self.client is None:
            return InMemoryJobStore(config)
        return RedisJobStore(self.client, config, keys=self.keys)

    @property
    def ping(self) -> Callable[[], Awaitable[Any]] | None:
        """The readiness probe's ping (the client's own, so that `/readyz` names the
        client's error); None without Redis."""
        return self.client.ping if self.client is not None else None

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()


def open_stores(config: StorageConfig, *, fail_over: bool = True) -> Stores:
    """Redis stores when `config.redis_url` is set, else in-memory ones. `fail_over`
    False (reads that must not guess, like the usage command) leaves the coordination
    stores unwrapped: they raise `StoreUnavailable` as the data stores do."""
    keys = KeySpace(config.key_prefix)
    history = config.history
    if config.redis_url is None:
        return Stores(
            history=InMemoryHistoryStore(
                max_history=history.max_turns,
                ttl_seconds=history.ttl_seconds,
                max_conversations=history.max_conversations,
            ),
            outcomes=InMemoryOutcomeStore(ttl_seconds=config.outcome_ttl_seconds),
            rates=InMemoryRateStore(),
            budgets=InMemoryBudgetStore(),
            cache=(
                None
                if config.cache_ttl_seconds is None
                else InMemoryResponseCache(ttl_seconds=config.cache_ttl_seconds)
            ),
            keys=keys,
        )
    client = redis_client(config.redis_url, max_connections=config.max_connections)
    rates: RateStore = RedisRateStore(client, keys=keys)
    budgets: BudgetStore = RedisBudgetStore(client, keys=keys)
    if fail_over:
        rates, budgets = FailoverRateStore(rates), FailoverBudgetStore(budgets)
    return Stores(
        history=RedisHistoryStore(
            client, max_history=history.max_turns, ttl_seconds=history.ttl_seconds, keys=keys
        ),
        outcomes=RedisOutcomeStore(client, ttl_seconds=config.outcome_ttl_seconds, keys=keys),
        rates=rates,
        budgets=budgets,
        cache=(
            None
            if config.cache_ttl_seconds is None
            else RedisResponseCache(client, ttl_seconds=config.cache_ttl_seconds, keys=keys)
        ),
        keys=keys,
        client=client,
        fail_over=fail_over,
    )
