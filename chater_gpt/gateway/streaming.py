"""A streamed chat completion (`stream: true`): the core's stream chunks, arriving on
this instance's reply topic, relayed as OpenAI's server-sent events.

Each text delta becomes a `chat.completion.chunk` (the first names the role), the
stream's end a chunk with its `finish_reason`, then, when `stream_options.include_usage`
asks, a chunk with the exact usage, then `data: [DONE]`. The HTTP status is decided by
the first event: an error before any text is answered as the non-streamed request
would be (its status and OpenAI's error object); an error after text has gone out is
an `{"error": ...}` event, then `[DONE]` (OpenAI's clients raise on it).

- A reply without chunks (the answer came from the response cache, or a replay of a
  finished request answered from its record) is relayed as one delta.
- Chunks carry the attempt that produced them: a request whose service replica died is
  processed again elsewhere and streams afresh. Before any text went out the new
  attempt is followed; after, the stream ends with `stream_interrupted` (retryable).
- `timeout` bounds the wait for the first text (past it, 504); once text flows, the
  stream goes on as long as each next piece comes within `idle` seconds (else an error
  event): a long answer is not cut while the model writes it, a stalled one is ended.
  The core's own LLM timeout bounds the whole generation.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from chater_gpt.errors import ChaterError, GatewayTimeout, StreamInterrupted
from chater_gpt.gateway.error_map import HttpError, from_core_reply, http_error
from chater_gpt.gateway.openai_shapes import completion_chunk, usage_chunk
from chater_gpt.gateway.waiter import StreamEvent

SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # proxies (nginx) must not buffer the stream
}


@dataclass(frozen=True, slots=True)
class StreamSpec:
    completion_id: str
    model: str
    include_usage: bool
    timeout: float  # GATEWAY_TIMEOUT_SECONDS: until the first text
    idle: float  # GATEWAY_STREAM_IDLE_SECONDS: at most between pieces once text flows
    headers: dict[str, str]  # more headers of the answer (CORS)


class _Relay:
    def __init__(self, request: web.Request, spec: StreamSpec) -> None:
        self._request = request
        self._spec = spec
        self.response: web.StreamResponse | None = None
        self._attempt: str | None = None
        self.sent_text = False

    async def _send(self, body: dict[str, Any] | None) -> None:
        if self.response is None:
            self.response = web.StreamResponse(headers={**SSE_HEADERS, **self._spec.headers})
            await self.response.prepare(self._request)
        data = b"[DONE]" if body is None else orjson.dumps(body)
        await self.response.write(b"data: " + data + b"\n\n")

    async def text(self, content: str) -> None:
        chunk = completion_chunk(
            self._spec.completion_id, self._spec.model, content=content, first=not self.sent_text
        )
        await self._send(chunk)
        self.sent_text = True

    async def finish(self, finish_reason: str, usage: dict[str, Any] | None) -> None:
        spec = self._spec
        if not self.sent_text:
            await self.text("")
        await self._send(
            completion_chunk(spec.completion_id, spec.model, finish_reason=finish_reason)
        )
        if spec.include_usage and usage is not None:
            await self._send(usage_chunk(spec.completion_id, spec.model, usage))
        await self._send(None)

    async def fail(self, error: HttpError) -> None:
        await self._send(error.body)
        await self._send(None)

    def same_attempt(self, chunk: dict[str, Any]) -> bool:
        """False when the chunk is of another attempt and text of this one went out."""
        attempt = chunk.get("attempt")
        if attempt != self._attempt:
            if self.sent_text:
                return False
            self._attempt = str(attempt)
        return True


async def relay(
    request: web.Request, events: asyncio.Queue[StreamEvent], spec: StreamSpec
) -> web.StreamResponse:
    """The HTTP answer of a streamed request (see the module's docstring)."""
    relay = _Relay(request, spec)
    try:
        error = await _follow(relay, _Paced(events, relay, spec))
    except TimeoutError:
        waited = (
            f"no new text for {spec.idle:g} s"
            if relay.sent_text
            else f"no answer within {spec.timeout:g} s"
        )
        error = http_error(
            GatewayTimeout.code.value,
            f"{waited}; the request may still be answered and billed",
        )
    if error is not None:
        if relay.response is None:
            return web.Response(
                body=orjson.dumps(error.body),
                status=error.status,
                headers={**error.headers, **spec.headers},
                content_type="application/json",
            )
        await relay.fail(error)
    assert relay.response is not None
    await relay.response.write_eof()
    return relay.response


class _Paced:
    """The stream's events, each waited for at most as long as `StreamSpec` allows:
    TimeoutError when the first text is late, or the next piece after text went out."""

    def __init__(self, events: asyncio.Queue[StreamEvent], relay: _Relay, spec: StreamSpec) -> None:
        self._events = events
        self._relay = relay
        self._spec = spec
        self._first_by = asyncio.get_running_loop().time() + spec.timeout

    async def get(self) -> StreamEvent:
        if not self._events.empty():
            return self._events.get_nowait()
        if self._relay.sent_text:
            wait = self._spec.idle
        else:
            wait = self._first_by - asyncio.get_running_loop().time()
        async with asyncio.timeout(max(wait, 0.0)):
            return await self._events.get()


async def _follow(relay: _Relay, events: _Paced) -> HttpError | None:
    """Relay events until the stream ends; returns the error it ended with, if any."""
    while True:
        event = await events.get()
        if event.kind == "failed":
            assert event.error is not None
            return _from_error(event.error)
        value = event.value or {}
        if event.kind == "reply":
            if "error" in value:
                return from_core_reply(value["error"])
            if not relay.sent_text and value.get("response"):
                await relay.text(str(value["response"]))
            await relay.finish(str(value.get("finish_reason") or "stop"), value.get("usage"))
            return None
        if not relay.same_attempt(value):
            return _from_error(
                StreamInterrupted("the answer's processing restarted after part of it was sent")
            )
        if value.get("done"):
            if value.get("error"):
                if relay.sent_text:
                    return from_core_reply(value["error"])
                continue  # the error reply follows: answered with its HTTP status
            await relay.finish(str(value.get("finish_reason") or "stop"), value.get("usage"))
            return None
        delta = value.get("delta")
        if isinstance(delta, str) and delta:
            await relay.text(delta)


def _from_error(error: ChaterError) -> HttpError:
    return http_error(error.code.value, error.message, retry_after=error.retry_after)
