"""`kafka.streams.KafkaStreams`: what a streamed request's chunks look like, where they
go, and how a stream ends (an answer, a cached one, an error)."""

from __future__ import annotations

from typing import Any

import orjson

from chater_gpt.contracts import CHAT_STYLE, STREAM_HEADER, ChatRequest, Job, StreamEnvelope
from chater_gpt.domain import ChatResult
from chater_gpt.errors import BackendError
from chater_gpt.kafka.producer import DeliveryCallback, Headers
from chater_gpt.kafka.streams import KafkaStreams


class ListSink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any], dict[str, bytes]]] = []

    def send(
        self, topic: str, key: str, value: bytes, headers: Headers, on_delivery: DeliveryCallback
    ) -> None:
        StreamEnvelope.model_validate_json(value)  # the published schema
        self.sent.append((topic, key, orjson.loads(value)["value"], dict(headers)))
        on_delivery(None)


def request(key: str = "r-1") -> ChatRequest:
    return ChatRequest(
        key=key, message="hi", user=None, conversation=None, context=(), model="gpt-4o-mini",
        max_tokens=10, temperature=0.0, system_prompt=None, images=(), request_id=None,
        app_code=None, style=CHAT_STYLE, stream=True,
    )  # fmt: skip


def job(reply_to: str | None = None) -> Job:
    headers = (("correlation-id", b"c-1"),)
    return Job(request(), "dedupe-1", 0.0, "c-1", reply_to=reply_to, headers=headers)


RESULT = ChatResult("Hello", "gpt-4o-mini", 5, 2, "stop", "openai")


async def test_deltas_then_the_end_go_to_the_stream_topic_and_the_reply_address() -> None:
    sink, streams = ListSink(), KafkaStreams("gpt-stream")
    streams.attach(sink)
    the_job = job("gw-reply-a")
    stream = streams.open(request(), the_job)
    await stream.delta("Hel")
    await stream.delta("")  # nothing to send
    await stream.delta("lo")
    streams.end(request(), the_job, RESULT, None)
    topics = [topic for topic, *_ in sink.sent]
    assert topics == ["gpt-stream", "gw-reply-a"] * 3
    values = [value for topic, _, value, _ in sink.sent if topic == "gpt-stream"]
    assert [v["index"] for v in values] == [0, 1, 2]
    assert len({v["attempt"] for v in values}) == 1
    assert [v.get("delta") for v in values] == ["Hel", "lo", None]
    assert values[-1]["done"] is True
    assert values[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    assert all(h[STREAM_HEADER] == b"1" and h["correlation-id"] == b"c-1" for *_, h in sink.sent)
    assert {key for _, key, _, _ in sink.sent} == {"r-1"}


async def test_an_answer_that_was_not_streamed_is_sent_whole_then_ended() -> None:
    sink, streams = ListSink(), KafkaStreams("gpt-stream")
    streams.attach(sink)
    streams.end(request(), job(), RESULT, None)  # never opened: a cached answer
    values = [value for *_, value, _ in sink.sent]
    assert [v.get("delta") for v in values] == ["Hello", None]
    assert values[-1]["finish_reason"] == "stop"


async def test_a_broken_stream_ends_with_its_error_and_each_processing_is_an_attempt() -> None:
    sink, streams = ListSink(), KafkaStreams("")  # no stream topic: the reply address only
    streams.attach(sink)
    first = streams.open(request(), job("gw-reply-a"))
    await first.delta("Hel")
    streams.end(request(), job("gw-reply-a"), None, BackendError("the openai backend failed"))
    again = streams.open(request(), job("gw-reply-a"))  # the same request, processed again
    await again.delta("Hello")
    assert {topic for topic, *_ in sink.sent} == {"gw-reply-a"}
    values = [value for *_, value, _ in sink.sent]
    assert values[1]["error"]["code"] == "backend_error"
    assert values[1]["done"] is True
    assert values[0]["attempt"] == values[1]["attempt"] != values[2]["attempt"]
    assert values[2]["index"] == 0


async def test_a_cancelled_processing_forgets_its_stream() -> None:
    sink, streams = ListSink(), KafkaStreams("gpt-stream")
    streams.attach(sink)
    cancelled = streams.open(request(), job())
    await cancelled.delta("Hel")
    streams.discard(job())  # a shutdown: processed again later
    streams.end(request(), job(), RESULT, None)  # that later processing, answered
    values = [value for *_, value, _ in sink.sent]
    assert [v.get("delta") for v in values] == ["Hel", "Hello", None]
    assert values[0]["attempt"] != values[1]["attempt"] == values[2]["attempt"]
