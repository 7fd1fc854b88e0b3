"""The one seam between the service and any LLM: the `LLMBackend` protocol.

A backend turns a `ChatCall` (OpenAI-style chat messages plus parameters) into a
`ChatResult`, or raises a `chater_gpt.errors.BackendError` subclass. Backends do
not retry and do not rate-limit: the resilience layer wraps them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from chater_gpt.domain import ResponseFormat

# An OpenAI chat message: {"role": ..., "content": str | list[content part]}.
ChatMessage = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ChatCall:
    model: str
    messages: Sequence[ChatMessage]
    max_tokens: int
    temperature: float
    # Correlation id sent to the backend as a header (X-Request-ID) where it can take one.
    request_id: str = ""
    seed: int | None = None
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    # The answer must be JSON (of this schema): each backend asks in its own dialect.
    response_format: ResponseFormat | None = None


@dataclass(frozen=True, slots=True)
class ChatResult:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    backend: str

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@runtime_checkable
class LLMBackend(Protocol):
    """Anything that can answer a chat call."""

    @property
    def name(self) -> str:
        """Short name for metrics and logs, e.g. "openai" or "koboldcpp"."""
        ...

    async def complete(self, call: ChatCall) -> ChatResult: ...

    async def aclose(self) -> None: ...
