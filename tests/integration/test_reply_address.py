"""The core answers a request that names a gateway reply topic (`reply-to`) there, with
its correlation id, and every other request on the route's reply topic: a reply address
outside the gateway prefix is ignored."""

from __future__ import annotations

import uuid

from confluent_kafka import Producer

from tests.integration.conftest import Broker, SettingsFactory, Topics
from tests.support.service_runner import ReplyCollector, envelope, running_service


async def test_replies_go_to_the_named_gateway_topic_only_under_the_prefix(
    broker: Broker, make_settings: SettingsFactory, topics: Topics, replies: ReplyCollector
) -> None:
    prefix = f"gw-reply-{uuid.uuid4().hex[:8]}-"
    gateway_topic = f"{prefix}one"
    broker.create_topics([gateway_topic], partitions=1)
    settings = make_settings(gateway_reply_topic_prefix=prefix)
    gateway_replies = ReplyCollector(broker.bootstrap, gateway_topic)
    try:
        async with running_service(settings):
            producer = Producer({"bootstrap.servers": broker.bootstrap})
            for key, reply_to in (("to-gw", gateway_topic), ("elsewhere", topics.request)):
                _, value = envelope(key, message=f"hello {key}")
                producer.produce(
                    topics.request,
                    key=key.encode(),
                    value=value,
                    headers=[("reply-to", reply_to.encode()), ("correlation-id", key.encode())],
                )
            assert producer.flush(30) == 0
            on_gateway = await gateway_replies.await_keys({"to-gw"}, timeout=30)
            on_route = await replies.await_keys({"elsewhere"}, timeout=30)
    finally:
        gateway_replies.close()

    reply = on_gateway["to-gw"][0]
    assert reply.value["response"] == "echo: hello to-gw"
    assert reply.headers["correlation-id"] == b"to-gw"
    assert "reply-to" not in reply.headers
    assert on_route["elsewhere"][0].value["response"] == "echo: hello elsewhere"
    assert on_route["elsewhere"][0].headers["correlation-id"] == b"elsewhere"
    assert "to-gw" not in {r.key for r in replies.replies}
