"""The one seam between the service and any LLM: the `LLMBackend` protocol.

A backend turns a `ChatCall` (OpenAI-style chat messages plus parameters, see
`chater_gpt.domain`) into a `ChatResult`, or raises a `chater_gpt.errors.BackendError`
subclass. Backends do not retry and do not rate-limit: `resilience.guards` wraps
them (that dependency is one-way: no backend imports resilience).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from chater_gpt.domain import ChatCall, ChatResult


@runtime_checkable
class LLMBackend(Protocol):
    """Anything that can answer a chat call."""

    @property
    def name(self) -> str:
        """Short name for metrics and logs, e.g. "openai" or "koboldcpp"."""
        ...

    async def complete(self, call: ChatCall) -> ChatResult: ...

    async def aclose(self) -> None: ...
