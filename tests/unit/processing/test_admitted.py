"""Admission around the backend call: reserve, then settle or release; a spent global
budget waits, paused."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from chater_gpt.domain import ChatCall, ChatResult
from chater_gpt.errors import BackendUnavailable, BudgetExhausted
from chater_gpt.kafka.pipeline import PauseGate
from chater_gpt.processing.admitted import Admitted
from chater_gpt.processing.waiting import PausedWait
from chater_gpt.resilience.budget import GlobalBudgetExhausted
from tests.support.fakes import RecordingSleep
from tests.unit.processing.fakes import RecordingObserver, chat_request, prompt_for, result


class FakeAdmission:
    def __init__(self) -> None:
        self.settled: list[ChatResult] = []
        self.released = 0

    async def settle(self, result: ChatResult) -> None:
        self.settled.append(result)

    async def release(self) -> None:
        self.released += 1


class FakeControl:
    """Refuses with the scripted errors in turn, then admits."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.asked: list[dict[str, Any]] = []
        self.admission = FakeAdmission()

    async def admit(self, **request: Any) -> FakeAdmission:
        self.asked.append(request)
        if self.errors:
            raise self.errors.pop(0)
        return self.admission


class Backend:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[ChatCall] = []

    async def __call__(self, call: ChatCall) -> ChatResult:
        self.calls.append(call)
        if self.error is not None:
            raise self.error
        return result()


def admitted(
    backend: Backend, control: FakeControl | None, gate: PauseGate | None = None
) -> tuple[Admitted, RecordingObserver]:
    observer = RecordingObserver()
    wait = PausedWait(
        gate or PauseGate(),
        "budget",
        waits_on=GlobalBudgetExhausted,
        max_wait=5.0,
        default_wait=1.0,
        sleep=RecordingSleep(),
    )
    return Admitted(backend, control, wait, observer), observer  # type: ignore[arg-type]


async def test_an_admitted_call_settles_its_reservation_with_the_tokens_used() -> None:
    backend, control = Backend(), FakeControl()
    stage, observer = admitted(backend, control)
    request = chat_request("k", user="ada@example.com", app_code="shop", max_tokens=10)
    prompt = prompt_for(request, prompt_tokens=42)
    assert await stage(prompt) == result()
    assert backend.calls == [prompt.call]
    assert control.asked == [
        {
            "key": "k",
            "user_email": "ada@example.com",
            "app_code": "shop",
            "model": "gpt-4o-mini",
            "max_tokens": 10,
            "prompt_tokens": 42,
            "call_model": "gpt-4o-mini",
        }
    ]
    assert control.admission.settled == [result()]  # its usage, and the model that answered
    assert control.admission.released == 0
    assert observer.named("tokens") == [{"model": "gpt-4o-mini", "prompt": 5, "completion": 1}]


async def test_a_failed_call_releases_its_reservation() -> None:
    control = FakeControl()
    stage, observer = admitted(Backend(BackendUnavailable("down")), control)
    with pytest.raises(BackendUnavailable):
        await stage(prompt_for())
    assert control.admission.released == 1
    assert control.admission.settled == []
    assert observer.events == []


async def test_a_refused_request_never_reaches_the_backend() -> None:
    backend = Backend()
    stage, _observer = admitted(backend, FakeControl(BudgetExhausted("user budget spent")))
    with pytest.raises(BudgetExhausted):
        await stage(prompt_for())
    assert backend.calls == []


async def test_a_spent_global_budget_waits_paused_then_goes_on() -> None:
    seen: list[frozenset[str]] = []
    gate = PauseGate(on_change=seen.append)
    control = FakeControl(
        GlobalBudgetExhausted("spent", retry_after=0.0), GlobalBudgetExhausted("spent")
    )
    stage, _observer = admitted(Backend(), control, gate)
    assert await stage(prompt_for()) == result()
    assert len(control.asked) == 3
    assert seen == [frozenset({"budget"}), frozenset()]  # paused, then lifted


async def test_without_admission_control_the_call_is_only_counted() -> None:
    backend = Backend()
    stage, observer = admitted(backend, None)
    assert await stage(prompt_for()) == result()
    assert len(backend.calls) == 1
    assert [event for event, _ in observer.events] == ["tokens"]


async def test_the_model_called_is_admitted_beside_the_model_requested() -> None:
    # A larger-context fallback: the tenant policy sees the request's model, the money
    # budget prices the call's.
    control = FakeControl()
    stage, _observer = admitted(Backend(), control)
    prompt = prompt_for()
    larger = replace(prompt, call=replace(prompt.call, model="gpt-4o"))
    await stage(larger)
    assert (control.asked[0]["model"], control.asked[0]["call_model"]) == ("gpt-4o-mini", "gpt-4o")
