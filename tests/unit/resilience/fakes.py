"""Small fakes shared by the resilience and backend unit tests."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from chater_gpt.domain import ChatCall, ChatResult


def call(model: str = "gpt-4o-mini") -> ChatCall:
    return ChatCall(
        model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=10, temperature=0
    )


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingSleep:
    """An injected sleep that returns at once and remembers what it was asked."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.delays: list[float] = []
        self._clock = clock

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self._clock is not None:
            self._clock.advance(seconds)


class ScriptedBackend:
    """Answers with the queued outcomes in order (an exception is raised), then succeeds."""

    def __init__(self, name: str = "fake", outcomes: Iterable[BaseException | str] = ()) -> None:
        self._name = name
        self.outcomes: deque[BaseException | str] = deque(outcomes)
        self.calls: list[ChatCall] = []
        self.closed = 0

    @property
    def name(self) -> str:
        return self._name

    async def complete(self, call: ChatCall) -> ChatResult:
        self.calls.append(call)
        outcome = self.outcomes.popleft() if self.outcomes else "ok"
        if isinstance(outcome, BaseException):
            raise outcome
        return ChatResult(
            text=f"{outcome} from {self._name}",
            model=call.model,
            prompt_tokens=3,
            completion_tokens=2,
            finish_reason="stop",
            backend=self._name,
        )

    async def aclose(self) -> None:
        self.closed += 1
