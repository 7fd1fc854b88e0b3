"""Fixtures of the fault suite: scale, topics with a chosen partition count, child
services and reply collectors cleaned up after each test, a private password-protected
Redis, and the book of figures printed at the end of the session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Broker, Topics
from tests.integration.faults.figures import FigureBook
from tests.integration.faults.harness import ChildService
from tests.support.private_redis import PrivateRedis
from tests.support.service_runner import ReplyCollector

REDIS_PASSWORD = "redis-PASSWORD-do-not-leak-4b8e1d"

FIGURES = pytest.StashKey[FigureBook]()


@pytest.fixture(scope="session")
def fault_scale() -> float:
    """CHATER_FAULT_SCALE shrinks counts and durations (CI); 1.0 is the issue's size."""
    return float(os.environ.get("CHATER_FAULT_SCALE", "1.0"))


@pytest.fixture
def scaled(fault_scale: float) -> Callable[[float], int]:
    def scale(value: float) -> int:
        return max(1, round(value * fault_scale))

    return scale


@pytest.fixture(scope="session")
def figure_book(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> FigureBook:
    book = FigureBook(tmp_path_factory.getbasetemp() / "fault-figures.json")
    request.config.stash[FIGURES] = book
    return book


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    book = config.stash.get(FIGURES, None)
    if book is not None and book.entries:
        for line in book.summary_lines():
            terminalreporter.write_line(line)


TopicsFactory = Callable[[int], Topics]


@pytest.fixture
def make_topics(broker: Broker) -> TopicsFactory:
    def make(partitions: int) -> Topics:
        run = uuid.uuid4().hex[:10]
        names = Topics(
            f"send-{run}", f"response-{run}", f"group-{run}", f"photo-{run}", f"analysis-{run}"
        )
        # Both routes' request topics (the service reads the photo route's by default).
        broker.create_topics([names.request, names.photo_request], partitions=partitions)
        broker.create_topics([names.response, names.photo_response], partitions=3)
        return names

    return make


ChildFactory = Callable[[dict[str, Any], str], ChildService]


@pytest.fixture
def children(tmp_path: Path) -> Iterator[ChildFactory]:
    """Starts child services; every one still running is killed after the test."""
    started: list[ChildService] = []

    def start(config: dict[str, Any], name: str) -> ChildService:
        child = ChildService(config, tmp_path / f"{name}.log").start()
        started.append(child)
        return child

    yield start
    for child in started:
        child.stop()


CollectorFactory = Callable[[str, str], ReplyCollector]


@pytest.fixture
def collectors() -> Iterator[CollectorFactory]:
    made: list[ReplyCollector] = []

    def make(bootstrap: str, topic: str) -> ReplyCollector:
        collector = ReplyCollector(bootstrap, topic)
        made.append(collector)
        return collector

    yield make
    for collector in made:
        collector.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    with PrivateRedis(tmp_path / "redis", password=REDIS_PASSWORD) as server:
        yield server
