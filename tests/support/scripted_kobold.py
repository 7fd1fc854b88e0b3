"""A scripted KoboldCPP server for tests, following KoboldCPP's API document.

Served on 127.0.0.1 from its own thread:
- `POST /v1/chat/completions` (OpenAI-compatible; when not `chat_enabled`, 404 as
  on servers without it),
- `POST /api/v1/generate` (native KoboldAI API: `prompt`, `max_length`,
  `temperature`, `images` as base64 strings -> `{"results": [{"text", "finish_reason",
  "prompt_tokens", "completion_tokens"}]}`; the token counts only when `report_usage`),
- `POST /api/extra/tokencount` (`{"prompt": text}` -> `{"value": n, "ids": [...]}`;
  here one token per whitespace-separated word),
- `POST /api/extra/json_to_grammar` (`{"schema": {...}}` -> `{"result": "<GBNF>",
  "success": true}`; here `grammar_for(schema)`, or `{"success": false}` when the
  schema has `"x-unconvertible"`; 404 when not `grammar_api`, as on older servers),
- `GET /api/v1/model`, `GET /api/extra/version`.
- Streams as KoboldCPP's `handle_sse_stream` does: the chat API with `stream: true`
  sends `data: <chat.completion.chunk>` per word (`delta: {role, content}`), one with
  the finish reason, the usage chunk (`choices: []`) when `stream_options.include_usage`
  is set and `report_usage`, then `data: [DONE]`; `POST /api/extra/generate/stream`
  sends `event: message` / `data: {"token": ..., "finish_reason": null}` per word
  (the first token " ", as generation starts) and a last one with the finish reason.
  A queued `StreamFault` ends the stream after `after` words with finish reason
  "error" (KoboldCPP's failed generation), or cuts the connection.
With `password` set, requests need `Authorization: Bearer <password>` (else 401).
Queued faults answer the next chat/generate requests with a status, headers and a
raw body, or stall. Every request is recorded, body included (`bodies(path)`), so
tests check what the backend sent (e.g. `response_format`, `grammar`).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.support.http_thread import ThreadedApp
from tests.support.scripted_common import StreamFault, split_for_stream


@dataclass(frozen=True)
class KoboldFault:
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"detail": {"msg": "scripted failure", "type": "service_unavailable"}}'
    delay: float = 0.0


@dataclass(frozen=True)
class KoboldRequest:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


def count_tokens(text: str) -> int:
    return len(text.split())


def grammar_for(schema: dict[str, Any]) -> str:
    """The scripted server's "conversion": a recognisable stand-in, not real GBNF."""
    return "root ::= scripted-schema-grammar # " + orjson.dumps(schema).decode()


class ScriptedKobold:
    def __init__(
        self,
        *,
        chat_enabled: bool = True,
        report_usage: bool = True,
        password: str | None = None,
        answer: str = "Hello from Kobold",
        grammar_api: bool = True,
    ) -> None:
        self.chat_enabled = chat_enabled
        self.grammar_api = grammar_api
        self.report_usage = report_usage
        self.password = password
        self.answer = answer
        self.faults: deque[KoboldFault] = deque()
        self.stream_faults: deque[StreamFault] = deque()
        self.requests: list[KoboldRequest] = []
        self.port = 0
        self._lock = threading.Lock()
        self._server: ThreadedApp | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def paths(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.requests]

    def bodies(self, path: str) -> list[dict[str, Any]]:
        """The bodies received on `path`, oldest first."""
        with self._lock:
            return [r.body for r in self.requests if r.path == path]

    def fail_next(self, *faults: KoboldFault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def fail_stream_next(self, *faults: StreamFault) -> None:
        with self._lock:
            self.stream_faults.extend(faults)

    def __enter__(self) -> ScriptedKobold:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/api/v1/generate", self._generate)
        app.router.add_post("/api/extra/generate/stream", self._generate_stream)
        app.router.add_post("/api/extra/tokencount", self._tokencount)
        app.router.add_post("/api/extra/json_to_grammar", self._json_to_grammar)
        app.router.add_get("/api/v1/model", self._model)
        app.router.add_get("/api/extra/version", self._version)
        self._server = ThreadedApp(app, name="scripted-kobold")
        self._server.start()
        self.port = self._server.port
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    # --- the handlers ---------------------------------------------------------------

    async def _admit(self, request: web.Request, *, faults: bool) -> web.Response | dict[str, Any]:
        body = orjson.loads(await request.read() or b"{}")
        with self._lock:
            self.requests.append(KoboldRequest(request.path, body, dict(request.headers)))
            fault = self.faults.popleft() if faults and self.faults else None
        if self.password and request.headers.get("Authorization") != f"Bearer {self.password}":
            return web.json_response(
                {"detail": {"msg": "bad key", "type": "key_error"}}, status=401
            )
        if fault is not None:
            await asyncio.sleep(fault.delay)
            return web.Response(
                body=fault.body,
                status=fault.status,
                headers=fault.headers,
                content_type="application/json",
            )
        return body  # type: ignore[no-any-return]

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if not self.chat_enabled:  # an older server: no such endpoint (recorded all the same)
            await self._admit(request, faults=False)
            return web.Response(status=404, text="404: Not Found")
        body = await self._admit(request, faults=True)
        if isinstance(body, web.Response):
            return body
        prompt = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        if body.get("stream"):
            return await self._chat_stream(request, body, prompt)
        answer: dict[str, Any] = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "koboldcpp/scripted",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.answer},
                    "finish_reason": "stop",
                }
            ],
        }
        if self.report_usage:
            p, c = count_tokens(prompt), count_tokens(self.answer)
            answer["usage"] = {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
        return web.json_response(answer)

    async def _generate(self, request: web.Request) -> web.Response:
        body = await self._admit(request, faults=True)
        if isinstance(body, web.Response):
            return body
        result: dict[str, Any] = {"text": " " + self.answer, "finish_reason": "stop"}
        if self.report_usage:
            result["prompt_tokens"] = count_tokens(str(body.get("prompt", "")))
            result["completion_tokens"] = count_tokens(self.answer)
        return web.json_response({"results": [result]})

    # --- streams ------------------------------------------------------------------

    async def _sse(
        self,
        request: web.Request,
        frames: list[bytes],
        last: bytes,
        failed: bytes,
    ) -> web.StreamResponse:
        """`frames` (one per word), then `last`; a queued StreamFault sends `failed` (or
        cuts the connection) after `after` words instead."""
        with self._lock:
            fault = self.stream_faults.popleft() if self.stream_faults else None
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        try:
            for sent, frame in enumerate([*frames, last]):
                if fault is not None and sent == fault.after:
                    if fault.cut:
                        if request.transport is not None:
                            request.transport.close()
                        return response
                    frame = failed
                await response.write(frame)
                if frame is failed:
                    break
            await response.write_eof()
        except ConnectionResetError:
            pass
        return response

    async def _chat_stream(
        self, request: web.Request, body: dict[str, Any], prompt: str
    ) -> web.StreamResponse:
        def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
            data = {
                "id": "chatcmpl-A1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "koboldcpp/scripted",
                "choices": [{"index": 0, "finish_reason": finish, "delta": delta}],
            }
            return b"data: " + orjson.dumps(data) + b"\n\n"

        frames = [
            chunk({"role": "assistant", "content": piece}, None)
            for piece in split_for_stream(self.answer)
        ]
        last = chunk({"role": "assistant", "content": ""}, "stop")
        if self.report_usage and (body.get("stream_options") or {}).get("include_usage"):
            p, c = count_tokens(prompt), count_tokens(self.answer)
            usage = {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
            data = {"id": "chatcmpl-A1", "object": "chat.completion.chunk", "choices": []}
            last += b"data: " + orjson.dumps({**data, "usage": usage}) + b"\n\n"
        last += b"data: [DONE]\n\n"
        return await self._sse(request, frames, last, chunk({}, "error"))

    async def _generate_stream(self, request: web.Request) -> web.StreamResponse:
        body = await self._admit(request, faults=True)
        if isinstance(body, web.Response):
            return body

        def event(token: str, finish: str | None) -> bytes:
            data = orjson.dumps({"token": token, "finish_reason": finish})
            return b"event: message\ndata: " + data + b"\n\n"

        frames = [event(piece, None) for piece in [" ", *split_for_stream(self.answer)]]
        return await self._sse(request, frames, event("", "stop"), event("", "error"))

    async def _tokencount(self, request: web.Request) -> web.Response:
        body = await self._admit(request, faults=False)
        if isinstance(body, web.Response):
            return body
        n = count_tokens(str(body.get("prompt", "")))
        return web.json_response({"value": n, "ids": list(range(n))})

    async def _json_to_grammar(self, request: web.Request) -> web.Response:
        body = await self._admit(request, faults=False)
        if isinstance(body, web.Response):
            return body
        if not self.grammar_api:
            return web.Response(status=404, text="404: Not Found")
        schema = body.get("schema")
        if not isinstance(schema, dict) or "x-unconvertible" in schema:
            return web.json_response({"result": "", "success": False})
        return web.json_response({"result": grammar_for(schema), "success": True})

    async def _model(self, request: web.Request) -> web.Response:
        with self._lock:
            self.requests.append(KoboldRequest(request.path, {}, dict(request.headers)))
        return web.json_response({"result": "koboldcpp/scripted"})

    async def _version(self, _request: web.Request) -> web.Response:
        return web.json_response({"result": "KoboldCpp", "version": "1.80"})
