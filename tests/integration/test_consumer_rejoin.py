"""The consumer after its group session is lost (a stalled broker) and the same
partitions come back: librdkafka keeps a partition paused across a re-assignment, so
the ingress must apply its pause state afresh, or consumption never resumes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Message, Producer

from chater_gpt.dev.broker import EmbeddedBroker
from chater_gpt.kafka.consumer import KafkaIngress
from chater_gpt.kafka.offsets import TopicPartition

pytestmark = pytest.mark.slow

TOPIC = "rejoin-send"
MESSAGES = 30


class RecordingHandler:
    """The loop side of the ingress: takes as much as `room` allows and records it."""

    def __init__(self) -> None:
        self.room = 5
        self.seen: set[tuple[int, int]] = set()
        self.first_seen = asyncio.Event()
        self.lost_once = asyncio.Event()
        self.assignments: list[list[TopicPartition]] = []
        self.assigned_again = asyncio.Event()
        self.all_seen = asyncio.Event()
        self.paused_polls = 0
        self.paused_for_a_while = threading.Event()

    def capacity(self) -> int:
        if self.room <= 0:
            # The second poll at no room runs after the pause was applied.
            self.paused_polls += 1
            if self.paused_polls >= 2:
                self.paused_for_a_while.set()
        return self.room

    async def accept(self, messages: list[Message]) -> None:
        for message in messages:
            self.seen.add((message.partition() or 0, message.offset() or 0))
        self.first_seen.set()
        if len(self.seen) >= MESSAGES:
            self.all_seen.set()

    async def assigned(self, partitions: list[TopicPartition]) -> None:
        self.assignments.append(partitions)
        if len(self.assignments) > 1:
            self.assigned_again.set()

    async def revoked(self, partitions: list[TopicPartition]) -> list[tuple[TopicPartition, int]]:
        return []

    async def lost(self, partitions: list[TopicPartition]) -> None:
        self.lost_once.set()


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as embedded:
        embedded.create_topics([TOPIC])
        producer = Producer({"bootstrap.servers": embedded.bootstrap})
        for index in range(MESSAGES):
            producer.produce(TOPIC, key=f"k{index}", value=b"request", partition=index % 3)
        assert producer.flush(10) == 0
        yield embedded


async def test_partitions_paused_when_lost_are_consumed_again_once_reassigned(
    private_broker: EmbeddedBroker,
) -> None:
    handler = RecordingHandler()
    ingress = KafkaIngress(
        {
            "bootstrap.servers": private_broker.bootstrap,
            "group.id": "rejoin-group",
            "session.timeout.ms": 3000,
            "heartbeat.interval.ms": 300,
            "fetch.wait.max.ms": 10,
        },
        [TOPIC],
        handler,
        asyncio.get_running_loop(),
    )
    ingress.start()
    try:
        await asyncio.wait_for(handler.first_seen.wait(), 30)
        handler.room = 0  # at capacity: the ingress pauses every partition
        assert await asyncio.to_thread(handler.paused_for_a_while.wait, 10)
        assert ingress.paused
        private_broker.freeze()
        try:
            await asyncio.wait_for(handler.lost_once.wait(), 30)
        finally:
            private_broker.thaw()
        await asyncio.wait_for(handler.assigned_again.wait(), 60)
        handler.room = 1000
        await asyncio.wait_for(handler.all_seen.wait(), 30)
    finally:
        ingress.stop()
        await asyncio.wait_for(ingress.wait_stopped(), 30)
    assert len(handler.seen) == MESSAGES
