"""Real parts for the integration tests: a Kafka-wire broker (Tansu, or the cluster
named by KAFKA_BOOTSTRAP), Redis (REDIS_URL or 127.0.0.1:6379), scripted HTTP servers,
and a settings factory pointing the service at them. Each test gets its own topics
and consumer group, so tests never see each other's messages."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from chater_gpt.config import Settings, load_settings
from chater_gpt.dev.broker import EmbeddedBroker
from chater_gpt.dev.stack import embedded_settings
from tests.support.scripted_openai import ScriptedOpenAI
from tests.support.service_runner import ReplyCollector

FAKE_API_KEY = "sk-test-FAKEKEY-do-not-leak-7f3a9c2e1b"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


@dataclass(frozen=True)
class Broker:
    bootstrap: str
    embedded: EmbeddedBroker | None

    def create_topics(self, names: list[str], partitions: int = 3) -> None:
        if self.embedded is not None:
            self.embedded.create_topics(names, partitions=partitions)
            return
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        for future in admin.create_topics(
            [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names]
        ).values():
            future.result(30)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    external = os.environ.get("KAFKA_BOOTSTRAP")
    if external:
        yield Broker(external, None)
        return
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log) as embedded:
        yield Broker(embedded.bootstrap, embedded)


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as exc:  # never skipped: `make test` starts Redis
        pytest.fail(
            f"Redis is not reachable ({type(exc).__name__}); run scripts/ensure-test-services.sh"
        )
    finally:
        client.close()
    return url


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    """A Redis key prefix of the test's own; its keys are deleted afterwards."""
    name = f"test:{uuid.uuid4().hex[:12]}:"
    yield name
    client = AsyncRedis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{name}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@dataclass(frozen=True)
class Topics:
    request: str
    response: str
    group: str
    photo_request: str
    photo_response: str


@pytest.fixture
def topics(broker: Broker) -> Topics:
    run = uuid.uuid4().hex[:10]
    names = Topics(
        f"send-{run}", f"response-{run}", f"group-{run}", f"photo-{run}", f"analysis-{run}"
    )
    broker.create_topics([names.request, names.response, names.photo_request, names.photo_response])
    return names


@pytest.fixture
def scripted() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI() as server:
        yield server


@pytest.fixture
def replies(broker: Broker, topics: Topics) -> Iterator[ReplyCollector]:
    collector = ReplyCollector(broker.bootstrap, topics.response)
    yield collector
    collector.close()


SettingsFactory = Callable[..., Settings]


def service_config(
    broker: Broker, topics: Topics, server: ScriptedOpenAI, **overrides: Any
) -> dict[str, Any]:
    """The settings of a service under test, as a mapping (for in-process or child runs)."""
    test_defaults: dict[str, Any] = {
        "request_topic": topics.request,
        "response_topic": topics.response,
        "photo_request_topic": topics.photo_request,
        "photo_response_topic": topics.photo_response,
        "consumer_group": topics.group,
        "openai_api_key": FAKE_API_KEY,
        "model": "gpt-4o-mini",
        "vision_model": "gpt-4o",
        # Tests share the machine's Redis: each test's keys stay apart from the others'.
        "redis_key_prefix": f"test:{topics.group}:",
        "commit_interval_seconds": 0.2,
        "shutdown_grace_seconds": 10,
        "max_retries": 0,
        "timeout": 10,
        "requests_per_minute": 1_000_000,
        "daily_token_limit": 1_000_000_000,
        # Tansu's group joins take half the session timeout: 1 s each, not 1.5 s.
        "kafka_session_timeout_ms": 2000,
    }
    return embedded_settings(
        bootstrap=broker.bootstrap, llm_base_url=server.base_url, **(test_defaults | overrides)
    )


@pytest.fixture
def make_settings(broker: Broker, topics: Topics, scripted: ScriptedOpenAI) -> SettingsFactory:
    def make(**overrides: Any) -> Settings:
        return load_settings(service_config(broker, topics, scripted, **overrides))

    return make


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path
