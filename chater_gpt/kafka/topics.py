"""Creating a topic that a part owns (a gateway instance's reply topic)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from chater_gpt.errors import GatewayUnavailable

# A reply is worth nothing once its caller stopped waiting: an hour bounds what a
# reused reply topic holds (and what its reader skips at start).
REPLY_RETENTION_MS = 3_600_000


def ensure_topic(
    config: Mapping[str, Any],
    name: str,
    *,
    partitions: int = 1,
    retention_ms: int = REPLY_RETENTION_MS,
    timeout: float = 30.0,
) -> None:
    """Create the topic unless it exists, and wait until the broker's metadata has it."""
    admin = AdminClient(dict(config))
    topic = NewTopic(name, num_partitions=partitions, config={"retention.ms": str(retention_ms)})
    future = admin.create_topics([topic])[name]
    try:
        future.result(timeout)
    except KafkaException as exc:
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            raise GatewayUnavailable(f"could not create the topic {name}") from exc
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        topics = admin.list_topics(name, timeout=5).topics
        if name in topics and topics[name].partitions and topics[name].error is None:
            return
        time.sleep(0.05)
    raise GatewayUnavailable(f"the topic {name} did not appear in the broker's metadata")
