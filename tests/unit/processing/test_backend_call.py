"""The backend call: timed, and waiting (paused) while the breaker is open."""

from __future__ import annotations

from chater_gpt.domain import ChatCall, ChatResult
from chater_gpt.errors import CircuitOpen
from chater_gpt.kafka.pipeline import PauseGate
from chater_gpt.processing.backend_call import BackendCall
from chater_gpt.processing.waiting import PausedWait
from tests.support.fakes import FakeClock, RecordingSleep
from tests.unit.processing.fakes import RecordingObserver, prompt_for, result


class Backend:
    """Open breaker for the first `closed_after` tries (each takes 1 s), then answers
    (taking 2 s)."""

    name = "fake"

    def __init__(self, clock: FakeClock, closed_after: int = 0) -> None:
        self.clock = clock
        self.closed_after = closed_after
        self.calls = 0

    async def complete(self, call: ChatCall) -> ChatResult:
        self.calls += 1
        if self.calls <= self.closed_after:
            self.clock.now += 1.0
            raise CircuitOpen("open", retry_after=0.5)
        self.clock.now += 2.0
        return result(backend="openai")

    async def aclose(self) -> None:
        pass


def backend_call(
    backend: Backend, clock: FakeClock, gate: PauseGate, sleep: RecordingSleep
) -> tuple[BackendCall, RecordingObserver]:
    observer = RecordingObserver()
    wait = PausedWait(
        gate, "breaker", waits_on=CircuitOpen, max_wait=5.0, min_wait=0.2, sleep=sleep
    )
    return BackendCall(backend, wait, observer, clock), observer


async def test_a_call_is_timed() -> None:
    clock = FakeClock(100.0)
    stage, observer = backend_call(Backend(clock), clock, PauseGate(), RecordingSleep())
    assert await stage(prompt_for().call) == result(backend="openai")
    assert observer.named("backend_latency") == [{"backend": "openai", "seconds": 2.0}]


async def test_an_open_breaker_is_waited_for_paused_and_only_the_answer_is_timed() -> None:
    clock, sleep = FakeClock(100.0), RecordingSleep()
    seen: list[frozenset[str]] = []
    backend = Backend(clock, closed_after=2)
    stage, observer = backend_call(backend, clock, PauseGate(on_change=seen.append), sleep)
    assert await stage(prompt_for().call) == result(backend="openai")
    assert backend.calls == 3
    assert sleep.delays == [0.5, 0.5]
    assert seen == [frozenset({"breaker"}), frozenset()]
    assert observer.named("backend_latency") == [{"backend": "openai", "seconds": 2.0}]
