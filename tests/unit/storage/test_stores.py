"""`open_stores`: the one "Redis or in memory" decision, and the settings it is made from."""

from __future__ import annotations

from pydantic import SecretStr

from chater_gpt.config import Settings
from chater_gpt.storage.breaker_state import FailoverBreakerStateStore, RedisBreakerStateStore
from chater_gpt.storage.budgets import FailoverBudgetStore, InMemoryBudgetStore, RedisBudgetStore
from chater_gpt.storage.cache import InMemoryResponseCache, RedisResponseCache
from chater_gpt.storage.history import InMemoryHistoryStore, RedisHistoryStore
from chater_gpt.storage.keys import KeySpace
from chater_gpt.storage.outcomes import InMemoryOutcomeStore, RedisOutcomeStore
from chater_gpt.storage.rates import FailoverRateStore, InMemoryRateStore, RedisRateStore
from chater_gpt.storage.stores import HistoryConfig, StorageConfig, open_stores
from chater_gpt.wiring import storage_config

PASSWORD = "redis-pw-7f3a"
URL = f"redis://:{PASSWORD}@127.0.0.1:1/0"


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "bootstrap_server": "127.0.0.1:9092",
        "openai_api_key": SecretStr("sk-x1234567"),
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


async def test_without_a_redis_url_every_store_is_in_memory() -> None:
    stores = open_stores(StorageConfig(cache_ttl_seconds=60))
    assert isinstance(stores.history, InMemoryHistoryStore)
    assert isinstance(stores.outcomes, InMemoryOutcomeStore)
    assert isinstance(stores.rates, InMemoryRateStore)
    assert isinstance(stores.budgets, InMemoryBudgetStore)
    assert isinstance(stores.cache, InMemoryResponseCache)
    assert stores.client is None
    assert stores.ping is None
    assert stores.breaker_state("openai") is None  # the breaker's local state is the state
    await stores.outcomes.put("id:1", b"reply")
    assert await stores.outcomes.get("id:1") == b"reply"
    await stores.aclose()


async def test_with_a_redis_url_every_store_shares_one_client_and_key_space() -> None:
    stores = open_stores(StorageConfig(redis_url=URL, key_prefix="dep-2:", max_connections=5))
    try:
        assert stores.client is not None
        assert stores.client.connection_pool.max_connections == 5
        assert stores.keys == KeySpace("dep-2:")
        assert isinstance(stores.history, RedisHistoryStore)
        assert isinstance(stores.outcomes, RedisOutcomeStore)
        assert stores.cache is None  # the response cache is off unless given a TTL
        # Coordination stores fall back per process (the outage policy, redis.py).
        assert isinstance(stores.rates, FailoverRateStore)
        assert isinstance(stores.budgets, FailoverBudgetStore)
        assert isinstance(stores.breaker_state("openai"), FailoverBreakerStateStore)
        assert stores.ping == stores.client.ping
    finally:
        await stores.aclose()


async def test_without_fail_over_the_redis_stores_are_bare() -> None:
    stores = open_stores(StorageConfig(redis_url=URL, cache_ttl_seconds=5), fail_over=False)
    try:
        assert isinstance(stores.rates, RedisRateStore)
        assert isinstance(stores.budgets, RedisBudgetStore)
        assert isinstance(stores.breaker_state("openai"), RedisBreakerStateStore)
        assert isinstance(stores.cache, RedisResponseCache)
    finally:
        await stores.aclose()


def test_the_redis_url_never_shows_in_a_repr() -> None:
    config = StorageConfig(redis_url=URL)
    assert PASSWORD not in repr(config)
    assert PASSWORD not in repr(storage_config(settings(redis_url=URL)))


def test_storage_defaults_are_the_settings_defaults() -> None:
    assert storage_config(settings()) == StorageConfig()


def test_storage_config_takes_what_storage_needs_from_the_settings() -> None:
    config = storage_config(
        settings(
            redis_url=URL,
            redis_key_prefix="tenant-a:",
            redis_max_connections=9,
            outcome_ttl_seconds=600,
            max_history=4,
            context_ttl_seconds=120,
            history_max_conversations=50,
            response_cache_enabled=True,
            response_cache_ttl_seconds=30,
        )
    )
    assert config == StorageConfig(
        redis_url=URL,
        key_prefix="tenant-a:",
        max_connections=9,
        outcome_ttl_seconds=600,
        history=HistoryConfig(max_turns=4, ttl_seconds=120, max_conversations=50),
        cache_ttl_seconds=30,
    )
    disabled = storage_config(settings(response_cache_ttl_seconds=30))
    assert disabled.cache_ttl_seconds is None


def test_the_settings_default_prefix_is_the_key_space_default() -> None:
    assert settings().redis_key_prefix == KeySpace().prefix == "chater:"
