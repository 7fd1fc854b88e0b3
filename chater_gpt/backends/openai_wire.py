"""The OpenAI chat-completions wire format, shared by both OpenAI clients: the request
body for a `ChatCall` and the `ChatResult` read from the response JSON.

A JSON answer is asked for with OpenAI's `response_format` field
(`{"type": "json_object"}` or `{"type": "json_schema", "json_schema": {"name",
"schema", "strict"}}`). llama.cpp's server takes the same field on its
OpenAI-compatible endpoint and turns it into a grammar (tests/integration/
test_json_local_llm.py checks both kinds against it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chater_gpt.backends.http import cut_short, stream_error
from chater_gpt.backends.streaming import streamed_result
from chater_gpt.domain import ChatCall, ChatResult
from chater_gpt.errors import BackendBadResponse, BackendError

CHAT_COMPLETIONS_PATH = "/chat/completions"
MODELS_PATH = "/models"  # the model list: the cheap call a half-open probe makes

# Reasoning models reject `max_tokens` and take `max_completion_tokens`.
_COMPLETION_TOKENS_PREFIXES = ("o1", "o3", "o4", "gpt-5")


def chat_body(call: ChatCall) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": call.model,
        "messages": list(call.messages),
        "temperature": call.temperature,
    }
    if call.model.startswith(_COMPLETION_TOKENS_PREFIXES):
        body["max_completion_tokens"] = call.max_tokens
    else:
        body["max_tokens"] = call.max_tokens
    if call.seed is not None:
        body["seed"] = call.seed
    if call.response_format is not None:
        body["response_format"] = call.response_format.to_openai()
    return body


def request_headers(call: ChatCall) -> dict[str, str]:
    headers = dict(call.extra_headers)
    if call.request_id:
        headers["X-Request-ID"] = call.request_id
    return headers


def parse_completion(body: object, *, backend: str, requested_model: str) -> ChatResult:
    """A chat completion's JSON → ChatResult, or BackendBadResponse naming what is wrong."""
    bad = BackendBadResponse(f"the {backend} backend sent an unexpected response")
    if not isinstance(body, dict):
        raise bad
    try:
        choices = body["choices"]
        if not choices:
            raise BackendBadResponse(f"the {backend} backend returned no choices")
        choice = choices[0]
        text = choice["message"].get("content") or ""
        prompt_tokens, completion_tokens, cached_tokens = usage_counts(body.get("usage") or {})
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise bad from exc
    if not isinstance(text, str):
        raise bad
    return ChatResult(
        text=text,
        model=str(body.get("model") or requested_model),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        finish_reason=str(choice.get("finish_reason") or "stop"),
        backend=backend,
        cached_prompt_tokens=cached_tokens,
    )


def usage_counts(usage: Mapping[str, Any]) -> tuple[int, int, int]:
    """(prompt, completion, cached prompt) tokens of a `usage` object."""
    details = usage.get("prompt_tokens_details")
    cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0), cached


# --- streaming ----------------------------------------------------------------------


def stream_body(call: ChatCall) -> dict[str, Any]:
    """The streaming request: chunks, and a last chunk with the usage (`include_usage`;
    llama.cpp's and KoboldCPP's servers send it too)."""
    return {**chat_body(call), "stream": True, "stream_options": {"include_usage": True}}


class ChunkReader:
    """A stream's `chat.completion.chunk`s -> the text deltas, then the ChatResult.

    The stream is finished once a chunk gave the finish reason (the usage chunk, when
    sent, follows it); one that ends before is cut short. An `{"error": ...}` chunk (an
    error inside the stream) raises the error it stands for."""

    def __init__(self, *, backend: str, requested_model: str) -> None:
        self._backend = backend
        self._model = requested_model
        self._parts: list[str] = []
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self._finish is not None

    def feed(self, chunk: object) -> str:
        """The text delta of one chunk ("" when it has none)."""
        bad = BackendBadResponse(f"the {self._backend} backend sent an unexpected stream chunk")
        if not isinstance(chunk, dict):
            raise bad
        if chunk.get("error"):
            raise stream_error(chunk["error"], self._backend)
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        if chunk.get("model"):
            self._model = str(chunk["model"])
        choices = chunk.get("choices") or []
        if not isinstance(choices, list) or not choices:
            return ""
        choice = choices[0]
        delta = choice.get("delta") if isinstance(choice, dict) else None
        text = delta.get("content") if isinstance(delta, dict) else None
        if text is not None and not isinstance(text, str):
            raise bad
        if choice.get("finish_reason") == "error":  # KoboldCPP's failed generation
            raise BackendError(f"the {self._backend} backend failed while generating")
        if choice.get("finish_reason"):
            self._finish = str(choice["finish_reason"])
        if text:
            self._parts.append(text)
        return text or ""

    def result(self) -> ChatResult:
        if self._finish is None:
            raise cut_short(self._backend)
        return streamed_result(
            backend=self._backend,
            parts=self._parts,
            model=self._model,
            finish_reason=self._finish,
            usage=self._usage,
            counts=usage_counts,
        )
