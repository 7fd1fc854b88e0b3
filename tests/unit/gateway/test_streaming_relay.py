"""The gateway's relay of a stream (`gateway.streaming.relay`) over a real HTTP server:
what an OpenAI client receives for each sequence of events the reply topic can bring."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from chater_gpt.errors import GatewayUnavailable
from chater_gpt.gateway.streaming import StreamSpec, relay
from chater_gpt.gateway.waiter import StreamEvent

USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}

Events = list[StreamEvent | float]  # a float: the core is silent this many seconds


def chunk(attempt: str, index: int, **fields: Any) -> StreamEvent:
    return StreamEvent("chunk", {"index": index, "attempt": attempt, **fields})


def reply(**value: Any) -> StreamEvent:
    return StreamEvent("reply", value)


@pytest.fixture
async def ask() -> AsyncIterator[Callable[..., Any]]:
    """Serve one relay of the given events; returns (status, headers, SSE documents)."""
    scripted: list[Events] = []
    options: dict[str, Any] = {}

    async def handler(request: web.Request) -> web.StreamResponse:
        queue: asyncio.Queue[StreamEvent] = asyncio.Queue()

        async def feed(events: Events) -> None:
            for event in events:
                if isinstance(event, float):
                    await asyncio.sleep(event)  # the scenario: a model writing slowly
                else:
                    queue.put_nowait(event)

        feeding = asyncio.create_task(feed(scripted.pop()))
        spec = StreamSpec(
            completion_id="c1",
            model="gpt-4o-mini",
            include_usage=options.get("include_usage", False),
            timeout=options.get("timeout", 5.0),
            idle=options.get("idle", 5.0),
            headers={"Access-Control-Allow-Origin": "*"},
        )
        try:
            return await relay(request, queue, spec)
        finally:
            feeding.cancel()

    app = web.Application()
    app.router.add_post("/", handler)
    server = TestServer(app)
    await server.start_server()

    async def call(events: Events, **given: Any) -> tuple[int, Any, list[Any]]:
        scripted.append(events)
        options.clear()
        options.update(given)
        async with (
            aiohttp.ClientSession() as session,
            session.post(server.make_url("/")) as response,
        ):
            body = await response.read()
            if response.content_type != "text/event-stream":
                return response.status, response.headers, [orjson.loads(body)]
            events_out = [e.removeprefix(b"data: ") for e in body.split(b"\n\n") if e]
            docs = [e.decode() if e == b"[DONE]" else orjson.loads(e) for e in events_out]
            return response.status, response.headers, docs

    yield call
    await server.close()


def texts(documents: list[Any]) -> str:
    return "".join(
        d["choices"][0]["delta"].get("content", "")
        for d in documents
        if isinstance(d, dict) and d.get("choices")
    )


async def test_deltas_then_the_end_then_done(ask: Callable[..., Any]) -> None:
    events = [
        chunk("a", 0, delta="Hel"),
        chunk("a", 1, delta="lo"),
        chunk("a", 2, done=True, finish_reason="stop", usage=USAGE),
    ]
    status, headers, documents = await ask(events, include_usage=True)
    assert status == 200
    assert headers["Content-Type"] == "text/event-stream"
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert texts(documents) == "Hello"
    assert documents[0]["choices"][0]["delta"]["role"] == "assistant"
    assert documents[-3]["choices"][0]["finish_reason"] == "stop"
    assert documents[-2]["choices"] == []
    assert documents[-2]["usage"] == USAGE
    assert documents[-1] == "[DONE]"


async def test_a_reply_without_chunks_is_one_delta(ask: Callable[..., Any]) -> None:
    events = [reply(response="cached answer", finish_reason="stop", usage=USAGE)]
    status, _, documents = await ask(events)
    assert status == 200
    assert texts(documents) == "cached answer"
    assert all("usage" not in d for d in documents if isinstance(d, dict))  # not asked
    assert documents[-1] == "[DONE]"


async def test_an_error_before_any_text_is_the_http_status(ask: Callable[..., Any]) -> None:
    error = {"code": "rate_limited", "message": "slow down", "retryable": True, "retry_after": 2}
    events = [chunk("a", 0, done=True, error=error), reply(error=error)]
    status, headers, documents = await ask(events)
    assert status == 429
    assert headers["Retry-After"] == "2"
    assert documents == [
        {"error": {"message": "slow down", "type": "rate_limit_error", "param": None,
                   "code": "rate_limited"}}
    ]  # fmt: skip


async def test_an_error_after_text_is_an_error_event(ask: Callable[..., Any]) -> None:
    error = {"code": "backend_error", "message": "the openai backend failed", "retryable": True}
    events = [chunk("a", 0, delta="Hel"), chunk("a", 1, done=True, error=error)]
    status, _, documents = await ask(events)
    assert status == 200
    assert texts(documents) == "Hel"
    assert documents[-2]["error"]["code"] == "backend_error"
    assert documents[-1] == "[DONE]"


async def test_a_new_attempt_before_any_text_is_followed(ask: Callable[..., Any]) -> None:
    events = [
        chunk("a", 0, delta=""),  # an attempt that died before its first text
        chunk("b", 0, delta="fresh"),
        chunk("b", 1, done=True, finish_reason="stop", usage=USAGE),
    ]
    _, _, documents = await ask(events)
    assert texts(documents) == "fresh"
    assert documents[-1] == "[DONE]"


async def test_a_new_attempt_after_text_interrupts_the_stream(ask: Callable[..., Any]) -> None:
    events = [chunk("a", 0, delta="first half "), chunk("b", 0, delta="another answer")]
    status, _, documents = await ask(events)
    assert status == 200
    assert texts(documents) == "first half "
    assert documents[-2]["error"]["code"] == "stream_interrupted"
    assert documents[-1] == "[DONE]"


async def test_a_gateway_failure_and_a_timeout(ask: Callable[..., Any]) -> None:
    failed = [StreamEvent("failed", error=GatewayUnavailable("the gateway restarted; retry"))]
    status, _, documents = await ask(failed)
    assert (status, documents[0]["error"]["code"]) == (503, "gateway_unavailable")
    status, _, documents = await ask([], timeout=0.2)
    assert (status, documents[0]["error"]["code"]) == (504, "gateway_timeout")
    assert "no answer within 0.2 s" in documents[0]["error"]["message"]
    # Text went out, then the core fell silent: an error event after the idle wait.
    status, _, documents = await ask([chunk("a", 0, delta="slow")], timeout=5.0, idle=0.2)
    assert status == 200
    assert texts(documents) == "slow"
    assert documents[-2]["error"]["code"] == "gateway_timeout"
    assert "no new text for 0.2 s" in documents[-2]["error"]["message"]


async def test_a_long_answer_is_not_cut_while_its_pieces_keep_coming(
    ask: Callable[..., Any],
) -> None:
    """Five pieces 0.15 s apart take longer than the 0.3 s the first text may take, each
    well within the idle wait: the whole answer arrives."""
    events: Events = [chunk("a", 0, delta="0")]
    for index in range(1, 5):
        events += [0.15, chunk("a", index, delta=str(index))]
    events += [0.15, chunk("a", 5, done=True, finish_reason="stop", usage=USAGE)]
    status, _, documents = await ask(events, timeout=0.3, idle=2.0)
    assert status == 200
    assert texts(documents) == "01234"
    assert not [d for d in documents if isinstance(d, dict) and "error" in d]
    assert documents[-1] == "[DONE]"
