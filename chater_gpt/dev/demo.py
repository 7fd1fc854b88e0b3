"""`python main.py demo`: the whole service end to end on the embedded local stack.

Starts the embedded Kafka-wire broker (Tansu) and the local LLM (llama.cpp with
SmolLM2), runs the real service against them, sends requests in the documented
format, the legacy Chater format, one asking for a JSON answer of a schema, one
malformed message, and one photo analysis on the photo route, and prints every
reply with its token usage; then starts the HTTP gateway and uses its three doors over
HTTP (one streamed OpenAI chat completion, one job submitted and polled, one event),
each answered through Kafka by the same service. The local model
reads no images, so the photo sent is a broken one: it shows the photo route's error
reply, which never reaches the model.
Nothing here is used by `python main.py run`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer

from chater_gpt.config import Settings, load_settings
from chater_gpt.dev.broker import EmbeddedBroker
from chater_gpt.dev.demo_gateway import (
    GatewayAnswer,
    ask_gateway,
    demo_tenant_policy,
    print_event,
    print_gateway_answer,
    print_job,
    run_job,
    running_gateway,
    send_event,
)
from chater_gpt.dev.llm import LocalLLMServer
from chater_gpt.dev.stack import embedded_settings
from chater_gpt.storage.jobs import InMemoryJobStore
from chater_gpt.wiring import build_service, job_config

log = logging.getLogger("chater_gpt.demo")


WEIGHT_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "weight_kg": {"type": "number"}},
    "required": ["name", "weight_kg"],
    "additionalProperties": False,
}


def demo_requests(count: int) -> list[tuple[str, str, bytes]]:
    """(Kafka key, request key, value): one remembered conversation, a legacy request, a
    JSON answer and a malformed one. The conversation's requests share a Kafka key (the
    user), so they land on one partition and are answered in order, each seeing the turns
    before it."""
    run = uuid.uuid4().hex[:6]
    user = f"demo-{run}@example.com"
    questions = [
        "My name is Ada. Say hello to me in one short sentence.",
        "What is my name?",
        "Name one colour of the rainbow.",
        "Say a short greeting in French.",
    ]
    messages: list[tuple[str, str, bytes]] = []
    for index in range(max(1, count)):
        key = f"demo-{run}-{index + 1}"
        value = {"message": questions[index % len(questions)], "user_email": user}
        messages.append((user, key, orjson.dumps({"key": key, "value": value})))
    legacy_key = f"legacy-{run}"
    legacy = {"question": "And what is 2 + 2?", "context": "We were doing simple sums."}
    messages.append((legacy_key, legacy_key, orjson.dumps({"key": legacy_key, "value": legacy})))
    json_key = f"json-{run}"
    structured = {
        "message": "Ada weighs 62 kg. Give her name and weight.",
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "weight", "schema": WEIGHT_SCHEMA},
        },
    }
    messages.append((json_key, json_key, orjson.dumps({"key": json_key, "value": structured})))
    messages.append((f"broken-{run}", f"broken-{run}", b"{this is not json"))
    return messages


def demo_photos() -> list[tuple[str, str, bytes]]:
    """A photo analysis in the platform's shape, with a photo that is not an image."""
    key = f"photo-{uuid.uuid4().hex[:6]}"
    value = {
        "prompt": "Analyse the food; answer as JSON with type = food_processing.",
        "photo": "bm90IGFuIGltYWdl",  # base64 of "not an image"
        "user_email": "ada@example.com",
        "image_id": key,
        "date": "2026-11-26",
    }
    return [(key, key, orjson.dumps({"key": key, "value": value}))]


def run_demo(*, requests: int = 3, timeout: float = 300.0) -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    print("starting the embedded broker and the local LLM ...", file=sys.stderr)
    app_code = secrets.token_hex(16)  # the demo app's, registered by its hash only
    with (
        EmbeddedBroker() as broker,
        LocalLLMServer() as llm,
        tempfile.TemporaryDirectory(prefix="chater-demo-") as scratch,
    ):
        policy = Path(scratch) / "tenants.json"
        policy.write_bytes(orjson.dumps(demo_tenant_policy(app_code)))
        settings = load_settings(
            embedded_settings(
                bootstrap=broker.bootstrap,
                llm_base_url=llm.base_url,
                model=llm.model_name,
                vision_model=llm.model_name,
                max_tokens=64,
                temperature=0,
                seed=42,
                shutdown_grace_seconds=10,
                tokenizer="llamacpp",
                tenant_policy_file=policy,
            )
        )
        topics = [t for route in settings.routes for t in (route.request_topic, route.reply_topic)]
        topics.append(settings.stream_topic)
        broker.create_topics(topics, partitions=3)
        kafka = demo_requests(requests), demo_photos()
        return asyncio.run(_demo(settings, kafka, app_code, timeout))


async def _demo(
    settings: Settings,
    kafka: tuple[list[tuple[str, str, bytes]], list[tuple[str, str, bytes]]],
    app_code: str,
    timeout: float,
) -> int:
    chats, photos = kafka
    jobs = InMemoryJobStore(job_config(settings))  # the core's and the gateway's
    service = build_service(settings, jobs=jobs)
    running = asyncio.create_task(service.run(install_signal_handlers=False))
    started = time.monotonic()
    messages = chats + photos
    try:
        await asyncio.to_thread(_produce, settings, settings.request_topic, chats)
        await asyncio.to_thread(_produce, settings, settings.photo_request_topic, photos)
        keys = {key for _, key, _ in messages}
        replies = await asyncio.to_thread(_collect, settings, keys, timeout)
        elapsed = time.monotonic() - started
        async with running_gateway(settings, jobs) as gateway_url:
            asked = time.monotonic()
            answer = await ask_gateway(gateway_url, settings.model, timeout)
            http_elapsed = time.monotonic() - asked
            job, job_elapsed = await run_job(gateway_url, app_code, timeout)
            event = await send_event(gateway_url, timeout)
    finally:
        service.request_stop()
        exit_code = await running
    _print_replies(messages, replies, elapsed)
    print_gateway_answer(answer, http_elapsed)
    print_job(job, job_elapsed)
    print_event(event)
    missing = len(messages) - len(replies)
    if missing:
        print(f"\n{missing} request(s) got no reply within {timeout:.0f} s", file=sys.stderr)
        return 1
    return exit_code if _http_ok(answer, job, event) else 1


def _http_ok(answer: GatewayAnswer, job: dict[str, Any], event: dict[str, Any]) -> bool:
    return (
        answer.status == 200
        and not answer.error
        and job.get("status") == "completed"
        and "completion" in event
    )


def _produce(settings: Settings, topic: str, messages: list[tuple[str, str, bytes]]) -> None:
    producer = Producer({**settings.kafka_producer_properties(), "enable.idempotence": True})
    # Same Kafka key, same partition: the conversation's requests stay in order.
    for kafka_key, _, value in messages:
        producer.produce(topic, key=kafka_key.encode(), value=value)
    producer.flush(30)
    producer.close()


def _collect(settings: Settings, keys: set[str], timeout: float) -> dict[str, dict[str, Any]]:
    consumer = Consumer(
        {
            **settings.kafka_consumer_properties(),
            "group.id": f"demo-reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 3000,
            "heartbeat.interval.ms": 300,
        }
    )
    consumer.subscribe([settings.response_topic, settings.photo_response_topic])
    replies: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    try:
        while keys - replies.keys() and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            key = (message.key() or b"").decode()
            if key in keys:
                replies[key] = orjson.loads(message.value() or b"{}")
    finally:
        consumer.close()
    return replies


def _print_replies(
    messages: list[tuple[str, str, bytes]], replies: dict[str, dict[str, Any]], elapsed: float
) -> None:
    print(f"\n{len(replies)}/{len(messages)} replies in {elapsed:.1f} s\n")
    for _, key, raw in messages:
        print(f"[{key}] asked: {_question(raw)}")
        reply = replies.get(key)
        if reply is None:
            print("  (no reply)\n")
            continue
        value = reply.get("value", {})
        if "error" in value:
            error = value["error"]
            about = f" (image_id {value['image_id']})" if "image_id" in value else ""
            print(f"  ERROR {error['code']}: {error['message']}{about}\n")
            continue
        usage = value["usage"]
        answer = value["analysis"] if "analysis" in value else value["response"]
        print(f"  {value['model']} ({value['finish_reason']}, {value['processing_time']:.2f} s)")
        print(f"  answer: {' '.join(answer.split())}")  # one line, even for JSON
        print(
            f"  usage:  prompt={usage['prompt_tokens']} completion={usage['completion_tokens']} "
            f"total={usage['total_tokens']}  cost: ${value.get('cost', 0.0):.6f} "
            f"({value.get('provider') or 'local'})\n"
        )


def _question(raw: bytes) -> str:
    try:
        value = orjson.loads(raw)["value"]
        return str(value.get("message") or value.get("question") or value.get("prompt"))
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return repr(raw[:40])
