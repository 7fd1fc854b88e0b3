"""A scripted OpenAI-compatible HTTP server for tests and load runs.

It serves `POST /v1/chat/completions` and `GET /v1/models` on 127.0.0.1 from its own
thread (so it works beside an in-process service and beside child processes), records
every request it receives, tracks how many it serves at once, and answers as scripted:
a latency (fixed or drawn from a function), queued faults (status codes with headers,
stalls), or a total outage. The answer text is "echo: <last user message>" unless a
function says otherwise, so tests can match replies to requests.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.support.http_thread import ThreadedApp


@dataclass(frozen=True)
class Fault:
    """One scripted failure: an HTTP status (with headers), or a stall of `delay` seconds."""

    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body: dict[str, Any] | None = None
    raw: bytes | None = None  # sent as is (e.g. a malformed answer with status 200)


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


class ScriptedOpenAI:
    def __init__(
        self,
        *,
        latency: float | Callable[[], float] = 0.0,
        answer: Callable[[dict[str, Any]], str] = echo_answer,
        record: bool = True,
    ) -> None:
        self.latency = latency
        self.answer = answer
        self.record = record
        self.outage_status: int | None = None  # every request fails with this while set
        self.faults: deque[Fault] = deque()
        self.fault_fn: Callable[[], Fault | None] | None = None
        self.fault_for_body: Callable[[dict[str, Any]], Fault | None] | None = None
        self.requests: list[RecordedRequest] = []
        self.calls = 0
        self.concurrent = 0
        self.max_concurrent = 0
        self.port = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._server: ThreadedApp | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # --- control (any thread) ---------------------------------------------------

    def fail_next(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def wait_until(self, predicate: Callable[[ScriptedOpenAI], bool], timeout: float) -> None:
        """Block until predicate(self) holds (checked at every request start and end)."""
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self), timeout):
                raise AssertionError(
                    f"scripted server: condition not met within {timeout} s "
                    f"(calls={self.calls}, concurrent={self.concurrent})"
                )

    def reset_stats(self) -> None:
        with self._lock:
            self.requests.clear()
            self.calls = 0
            self.max_concurrent = self.concurrent

    def start(self) -> ScriptedOpenAI:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self._server = ThreadedApp(app, name="scripted-openai", backlog=1024)
        self._server.start()
        self.port = self._server.port
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> ScriptedOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _models(self, _request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "gpt-4o-mini"}]})

    async def _chat(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = orjson.loads(raw)
        with self._lock:
            self.calls += 1
            self.concurrent += 1
            self.max_concurrent = max(self.max_concurrent, self.concurrent)
            self._changed.notify_all()
            if self.record:
                self.requests.append(RecordedRequest(body, dict(request.headers), time.time()))
            fault = self.faults.popleft() if self.faults else None
        try:
            if fault is None and self.fault_fn is not None:
                fault = self.fault_fn()
            if fault is None and self.fault_for_body is not None:
                fault = self.fault_for_body(body)
            if fault is None and self.outage_status is not None:
                fault = Fault(status=self.outage_status)
            latency = self.latency() if callable(self.latency) else self.latency
            if fault is not None:
                await asyncio.sleep(fault.delay)
                if fault.raw is not None:
                    return web.Response(body=fault.raw, status=fault.status, headers=fault.headers)
                error = fault.body or {"error": {"message": "scripted failure", "type": "server"}}
                return web.json_response(error, status=fault.status, headers=fault.headers)
            if latency > 0:
                await asyncio.sleep(latency)
            return web.Response(
                body=orjson.dumps(self._completion(body)), content_type="application/json"
            )
        finally:
            with self._lock:
                self.concurrent -= 1
                self._changed.notify_all()

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        text = self.answer(body)
        prompt = sum(len(str(m.get("content", ""))) // 4 + 4 for m in body.get("messages", []))
        completion = max(1, len(text) // 4)
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
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
