"""Streamed answers end to end: the real broker, the service and the gateway (in this
process, one event loop), the scripted OpenAI server streaming. Callers: the official
`openai` SDK (sync and async, `stream=True`), `curl -N` for the raw server-sent events,
and a Kafka reader of the stream topic."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import openai
import orjson
import pytest

from chater_gpt.config import Settings
from chater_gpt.dev.demo_gateway import running_gateway
from tests.integration.conftest import Broker, SettingsFactory, Topics
from tests.support.scripted_common import StreamFault, split_for_stream
from tests.support.scripted_openai import ScriptedOpenAI
from tests.support.service_runner import (
    ReplyCollector,
    envelope,
    produce_requests,
    running_service,
)

pytestmark = pytest.mark.integration

QUESTION = "tell me a short story please"
ANSWER = f"echo: {QUESTION}"


@dataclass
class Stack:
    settings: Settings
    url: str  # the gateway's /v1
    stream_topic: str
    scripted: ScriptedOpenAI

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url, api_key="sk-open-gateway", max_retries=0)

    def async_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url, api_key="sk-open-gateway", max_retries=0)


@pytest.fixture
async def stack(
    broker: Broker, topics: Topics, scripted: ScriptedOpenAI, make_settings: SettingsFactory
) -> AsyncIterator[Stack]:
    run = uuid.uuid4().hex[:10]
    stream_topic = f"stream-{run}"
    broker.create_topics([stream_topic])
    settings = make_settings(
        stream_topic=stream_topic,
        gateway_reply_topic_prefix=f"gws-reply-{run}-",
        gateway_instance_id=f"s-{run}",
        gateway_timeout_seconds=20,
        gateway_shutdown_grace_seconds=0,
    )
    async with running_service(settings), running_gateway(settings) as base:
        yield Stack(settings, f"{base}/v1", stream_topic, scripted)


def _chat(stream_options: dict[str, bool] | None = None) -> dict[str, object]:
    options: dict[str, object] = {"stream_options": stream_options} if stream_options else {}
    return {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": QUESTION}],
        "stream": True,
        **options,
    }


async def test_the_sdk_streams_the_answer_with_its_exact_usage(stack: Stack) -> None:
    def read() -> tuple[list[str], list[object]]:
        chunks = list(stack.client().chat.completions.create(**_chat({"include_usage": True})))
        texts = [c.choices[0].delta.content or "" for c in chunks if c.choices]
        return texts, chunks

    texts, chunks = await asyncio.to_thread(read)
    assert "".join(texts) == ANSWER
    # One chunk per piece the backend streamed: relayed as they came, not as one block.
    assert [t for t in texts if t] == split_for_stream(ANSWER)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices]  # type: ignore[attr-defined]
    assert finish[-1] == "stop"
    usage = chunks[-1].usage  # type: ignore[attr-defined]
    recorded = stack.scripted.requests[-1]
    assert recorded.body["stream"] is True
    assert recorded.body["stream_options"] == {"include_usage": True}
    expected = stack.scripted._usage(recorded.body, ANSWER)
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        expected["prompt_tokens"],
        expected["completion_tokens"],
    )


async def test_the_async_sdk_streams_too_and_no_usage_chunk_unless_asked(stack: Stack) -> None:
    stream = await stack.async_client().chat.completions.create(**_chat())
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert all(c.usage is None for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_curl_sees_server_sent_events_ending_with_done(stack: Stack) -> None:
    body = orjson.dumps(_chat({"include_usage": True})).decode()
    done = await asyncio.to_thread(
        subprocess.run,
        ["curl", "-sN", "-H", "Content-Type: application/json", "-d", body,
         f"{stack.url}/chat/completions"],
        capture_output=True,
        text=True,
        timeout=30,
    )  # fmt: skip
    events = [line for line in done.stdout.split("\n\n") if line]
    assert all(event.startswith("data: ") for event in events), done.stdout
    assert events[-1] == "data: [DONE]"
    documents = [orjson.loads(event[6:]) for event in events[:-1]]
    assert {d["object"] for d in documents} == {"chat.completion.chunk"}
    assert documents[-1]["choices"] == []
    assert documents[-1]["usage"]["total_tokens"] > 0


async def test_a_backend_failure_mid_stream_ends_it_with_an_error_event(stack: Stack) -> None:
    stack.scripted.fail_stream_next(StreamFault(after=2, status=500))
    received: list[str] = []

    def read() -> None:
        for chunk in stack.client().chat.completions.create(**_chat()):
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")

    with pytest.raises(openai.APIError) as raised:
        await asyncio.to_thread(read)
    assert "".join(received) == "".join(split_for_stream(ANSWER)[:2])
    assert "backend" in str(raised.value.message)
    # No retry after text went out: the backend was called once.
    assert stack.scripted.calls == 1


async def test_an_error_before_any_text_is_an_http_status(stack: Stack) -> None:
    request = _chat()
    request["model"] = "not-an-allowed-model"
    with pytest.raises(openai.NotFoundError) as raised:
        await stack.async_client().chat.completions.create(**request)  # type: ignore[call-overload]
    assert raised.value.status_code == 404


async def test_kafka_readers_follow_the_stream_topic_and_a_replay_answers_from_the_record(
    stack: Stack, broker: Broker, topics: Topics, replies: ReplyCollector
) -> None:
    chunks = ReplyCollector(broker.bootstrap, stack.stream_topic)
    try:
        request = envelope("k-1", message=QUESTION, stream=True, request_id="stream-once")
        produce_requests(broker.bootstrap, topics.request, [request])
        first = (await replies.await_keys({"k-1"}, timeout=30))["k-1"]
        stream = await chunks.await_count(len(split_for_stream(ANSWER)) + 1, timeout=30)
        # The same request again (a producer's retry): answered from the record.
        produce_requests(broker.bootstrap, topics.request, [request])
        both = await replies.await_count(2, timeout=30)
    finally:
        chunks.close()
    values = [c.value for c in stream if c.key == "k-1"]
    assert [v["index"] for v in values] == list(range(len(values)))
    assert len({v["attempt"] for v in values}) == 1
    assert "".join(v.get("delta") or "" for v in values) == ANSWER
    assert values[-1]["done"] is True
    assert values[-1]["usage"] == first[0].value["usage"]
    assert both[1].value["response"] == first[0].value["response"] == ANSWER
    assert stack.scripted.calls == 1
