"""The one seam between the service and any LLM: the `LLMBackend` protocol.

A backend turns a `ChatCall` (OpenAI-style chat messages plus parameters, see
`chater_gpt.domain`) into a `ChatResult`, or raises a `chater_gpt.errors.BackendError`
subclass. Backends do not retry and do not rate-limit: `resilience.guards` wraps
them (that dependency is one-way: no backend imports resilience).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from chater_gpt.domain import ChatCall, ChatResult, DeltaSink


@runtime_checkable
class LLMBackend(Protocol):
    """Anything that can answer a chat call."""

    @property
    def name(self) -> str:
        """Short name for metrics and logs, e.g. "openai" or "koboldcpp"."""
        ...

    async def complete(self, call: ChatCall) -> ChatResult: ...

    async def stream(self, call: ChatCall, on_delta: DeltaSink) -> ChatResult:
        """`complete` in streaming mode: awaits `on_delta(text)` for each text delta, in
        order, as it arrives, and returns the whole answer (its text: the deltas joined)
        with the usage the backend reported (`usage_reported` False when it gave none).
        A failure before the stream starts raises what `complete` would; one inside it
        (an error event, a cut connection) raises the mapped `BackendError`, never a
        truncated success. `on_delta`'s own errors propagate unchanged."""
        ...

    async def ping(self) -> None:
        """A cheap call that proves the backend answers and spends no tokens (its model
        list); raises a `BackendError` like `complete`. The breaker's half-open probe."""
        ...

    async def aclose(self) -> None: ...
