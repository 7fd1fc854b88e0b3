"""A scripted OpenAI-compatible HTTP server for tests and load runs.

It serves `POST /v1/chat/completions` and `GET /v1/models` on 127.0.0.1 from its own
thread (so it works beside an in-process service and beside child processes), records
every request it receives, tracks how many it serves at once, and answers as scripted:
a latency (fixed or drawn from a function), queued faults (status codes with headers,
stalls), or a total outage (the machinery is `scripted_common.ScriptedServer`). The
answer text is "echo: <last user message>" unless a function says otherwise, so tests
can match replies to requests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tests.support.scripted_common import Fault, ScriptedServer

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
    ) -> None:
        super().__init__(latency=latency, answer=answer, record=record)

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
        return web.json_response({"object": "list", "data": [{"id": "gpt-4o-mini"}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())

        async def respond() -> web.Response:
            return web.Response(
                body=orjson.dumps(self._completion(body)), content_type="application/json"
            )

        return await self._serve(request, body, respond)

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
