"""A scripted OpenAI-compatible HTTP server for tests and load runs.

It serves `POST /v1/chat/completions` and `GET /v1/models` on 127.0.0.1 from its own
thread (so it works beside an in-process service and beside child processes), records
every request it receives, tracks how many it serves at once, and answers as scripted:
a latency (fixed or drawn from a function), queued faults (status codes with headers,
stalls), or a total outage (the machinery is `scripted_common.ScriptedServer`). The
answer text is "echo: <last user message>" unless a function says otherwise, so tests
can match replies to requests.

`stream: true` answers as OpenAI's chat-completions streaming does
(platform.openai.com/docs/api-reference/chat-streaming): `text/event-stream` with one
`data: <chat.completion.chunk>` frame for the role, one per word of the answer
(`delta.content`), one with the `finish_reason` and an empty delta, then, when
`stream_options.include_usage` is set, a chunk with `choices: []` and the usage (every
other chunk then carries `"usage": null`), and `data: [DONE]`. A queued `StreamFault`
sends `data: {"error": {...}}` after `after` words (as the API reports an error inside
a stream), or cuts the connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tests.support.scripted_common import Fault, ScriptedServer, StreamFault, split_for_stream

__all__ = ["Fault", "RecordedRequest", "ScriptedOpenAI", "echo_answer", "user_text"]


@dataclass(frozen=True)
class RecordedRequest:
    body: dict[str, Any]
    headers: dict[str, str]
    at: float

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.body.get("messages", [])
        return messages

    @property
    def last_user_text(self) -> str:
        return user_text(self.body)


def user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return " ".join(p.get("text", "") for p in content if p.get("type") == "text")
    return ""


def echo_answer(body: dict[str, Any]) -> str:
    return f"echo: {user_text(body)}"


class ScriptedOpenAI(ScriptedServer[RecordedRequest]):
    thread_name = "scripted-openai"

    def __init__(
        self,
        *,
        latency: float | Callable[[], float] = 0.0,
        answer: Callable[[dict[str, Any]], str] = echo_answer,
        record: bool = True,
        stream_interval: float = 0.0,
    ) -> None:
        super().__init__(latency=latency, answer=answer, record=record)
        self.model_lists = 0  # GET /v1/models served (the breaker's probes)
        self.stream_interval = stream_interval  # seconds between two stream chunks
        self.stream_usage = True  # False: a server that ignores `include_usage`

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)

    def _record_of(self, request: web.Request, body: dict[str, Any]) -> RecordedRequest:
        return RecordedRequest(body, dict(request.headers), time.time())

    def _error_body(self, status: int) -> dict[str, Any]:
        return {"error": {"message": "scripted failure", "type": "server"}}

    async def _models(self, _request: web.Request) -> web.Response:
        # The model list is down with the rest of the server during an outage.
        with self._changed:
            self.model_lists += 1
            status = self.outage_status
            self._changed.notify_all()
        if status is not None:
            return web.json_response(self._error_body(status), status=status)
        return web.json_response({"object": "list", "data": [{"id": "gpt-4o-mini"}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())

        async def respond() -> web.StreamResponse:
            if body.get("stream"):
                return await self._stream(request, body)
            return web.Response(
                body=orjson.dumps(self._completion(body)), content_type="application/json"
            )

        return await self._serve(request, body, respond)

    def _usage(self, body: dict[str, Any], text: str) -> dict[str, int]:
        prompt = sum(len(str(m.get("content", ""))) // 4 + 4 for m in body.get("messages", []))
        completion = max(1, len(text) // 4)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        text = self.answer(body)
        return {
            "id": f"chatcmpl-{self.calls}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "gpt-4o-mini"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": self._usage(body, text),
        }

    async def _stream(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        text = self.answer(body)
        fault = self._next_stream_fault()
        options = body.get("stream_options") or {}
        with_usage = self.stream_usage and bool(options.get("include_usage"))
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            }
        )
        await response.prepare(request)
        base = {
            "id": f"chatcmpl-{self.calls}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", "gpt-4o-mini"),
        }

        async def send(delta: dict[str, Any], finish: str | None = None) -> None:
            chunk = {
                **base,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if with_usage:
                chunk["usage"] = None
            await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")

        try:
            await send({"role": "assistant", "content": "", "refusal": None})
            for sent, piece in enumerate(split_for_stream(text)):
                if fault is not None and sent == fault.after:
                    return await self._break(request, response, fault)
                if sent and self.stream_interval > 0:
                    await asyncio.sleep(self.stream_interval)
                await send({"content": piece})
            if fault is not None:
                return await self._break(request, response, fault)
            await send({}, "stop")
            if with_usage:
                usage = {**base, "choices": [], "usage": self._usage(body, text)}
                await response.write(b"data: " + orjson.dumps(usage) + b"\n\n")
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except ConnectionResetError:  # the client went away (its timeout, a cut)
            pass
        return response

    async def _break(
        self, request: web.Request, response: web.StreamResponse, fault: StreamFault
    ) -> web.StreamResponse:
        if fault.cut:
            if request.transport is not None:
                request.transport.close()
            return response
        error = fault.body or {
            "error": {
                "message": "The server had an error while processing your request.",
                "type": {429: "requests"}.get(
                    fault.status, "server_error" if fault.status >= 500 else "invalid_request_error"
                ),
                "param": None,
                "code": "rate_limit_exceeded" if fault.status == 429 else None,
            }
        }
        await response.write(b"data: " + orjson.dumps(error) + b"\n\n")
        await response.write_eof()
        return response
