"""Small fakes and builders shared by the processing unit tests."""

from __future__ import annotations

from typing import Any

from chater_gpt.contracts import ChatRequest, Job
from chater_gpt.domain import ChatCall, ChatResult
from chater_gpt.processing.stages import Prompt


class RecordingObserver:
    """Remembers every report as (method, keyword arguments)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def named(self, name: str) -> list[dict[str, Any]]:
        return [kwargs for event, kwargs in self.events if event == name]

    def request_done(
        self, *, outcome: str, code: str, model: str, backend: str, route: str
    ) -> None:
        done = {"outcome": outcome, "code": code, "model": model, "backend": backend}
        self.events.append(("request_done", {**done, "route": route}))

    def tokens(self, *, model: str, prompt: int, completion: int) -> None:
        self.events.append(("tokens", {"model": model, "prompt": prompt, "completion": completion}))

    def cost(self, *, model: str, provider: str, usd: float) -> None:
        self.events.append(("cost", {"model": model, "provider": provider, "usd": usd}))

    def backend_latency(self, *, backend: str, seconds: float) -> None:
        self.events.append(("backend_latency", {"backend": backend, "seconds": seconds}))

    def replayed(self) -> None:
        self.events.append(("replayed", {}))

    def store_error(self, *, store: str) -> None:
        self.events.append(("store_error", {"store": store}))

    def cache_hit(self) -> None:
        self.events.append(("cache_hit", {}))

    def cache_miss(self) -> None:
        self.events.append(("cache_miss", {}))

    def json_repaired(self, *, route: str) -> None:
        self.events.append(("json_repaired", {"route": route}))

    def job_finished(self, *, status: str) -> None:
        self.events.append(("job_finished", {"status": status}))


def chat_request(key: str = "k", **changes: Any) -> ChatRequest:
    fields: dict[str, Any] = {
        "key": key,
        "message": "hello",
        "user": None,
        "conversation": None,
        "context": (),
        "model": "gpt-4o-mini",
        "max_tokens": 10,
        "temperature": 0.0,
        "system_prompt": None,
        "images": (),
        "request_id": None,
        "app_code": None,
    }
    fields.update(changes)
    return ChatRequest(**fields)


def job_for(request: ChatRequest | Any, *, route: str = "chat", received_at: float = 0.0) -> Job:
    key = getattr(request, "key", None) or "k"
    return Job(
        request=request,
        dedupe_id=f"d-{key}",
        received_at=received_at,
        correlation_id=key,
        route=route,
    )


def result(text: str = "fine", *, model: str = "gpt-4o-mini", backend: str = "b") -> ChatResult:
    return ChatResult(text, model, 5, 1, "stop", backend)


def prompt_for(request: ChatRequest | None = None, **changes: Any) -> Prompt:
    request = request or chat_request()
    call = ChatCall(
        model=request.model,
        messages=[{"role": "user", "content": request.message}],
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        request_id=request.key,
        response_format=request.response_format,
    )
    fields: dict[str, Any] = {"request": request, "call": call, "prompt_tokens": 7, "route": "chat"}
    fields.update(changes)
    return Prompt(**fields)
