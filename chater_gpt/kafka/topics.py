"""Creating a topic that a part owns (a gateway instance's reply topic)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from chater_gpt.errors import GatewayUnavailable


def ensure_topic(
    config: Mapping[str, Any], name: str, *, partitions: int = 1, timeout: float = 30.0
) -> None:
    """Create the topic unless it exists, and wait until the broker's metadata has it."""
    admin = AdminClient(dict(config))
    future = admin.create_topics([NewTopic(name, num_partitions=partitions)])[name]
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
