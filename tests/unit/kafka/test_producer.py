"""The reply producer hands every failure to the pipeline: refused sends come back as
failed deliveries, and a fatal producer error reaches the service (which stops)."""

from __future__ import annotations

import asyncio

from confluent_kafka import KafkaError

from chater_gpt.kafka.producer import KafkaReplyProducer

# Nothing listens here: these tests never need a broker to answer.
NOWHERE = {"bootstrap.servers": "127.0.0.1:1", "message.max.bytes": 10_000}


async def test_a_refused_send_is_reported_as_a_failed_delivery() -> None:
    loop = asyncio.get_running_loop()
    producer = KafkaReplyProducer(NOWHERE, loop)
    reported: asyncio.Future[KafkaError | None] = loop.create_future()
    try:
        # Larger than message.max.bytes: librdkafka refuses it inside produce().
        producer.send("gpt-response", "k", b"x" * 20_000, [], reported.set_result)
        error = await asyncio.wait_for(reported, 5)
    finally:
        producer.close(0)
    assert error is not None
    assert error.code() == KafkaError.MSG_SIZE_TOO_LARGE


async def test_a_fatal_error_is_handed_over_once() -> None:
    loop = asyncio.get_running_loop()
    reasons: list[str] = []
    handed: asyncio.Event = asyncio.Event()

    def on_fatal(reason: str) -> None:
        reasons.append(reason)
        handed.set()

    producer = KafkaReplyProducer(NOWHERE, loop, on_fatal=on_fatal)
    try:
        fatal = KafkaError(KafkaError._FATAL, "out of order sequence number", fatal=True)
        producer._on_error(KafkaError(KafkaError._TRANSPORT, "broker down"))  # not fatal
        producer._on_error(fatal)
        producer._on_error(fatal)
        await asyncio.wait_for(handed.wait(), 5)
        await asyncio.sleep(0)
    finally:
        producer.close(0)
    assert reasons == ["reply producer: out of order sequence number"]
    assert producer.fatal_error == "out of order sequence number"
