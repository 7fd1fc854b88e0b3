"""The one wait helper: retries while the reason holds, paused exactly while someone waits."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from chater_gpt.errors import BackendUnavailable, CircuitOpen
from chater_gpt.kafka.pipeline import PauseGate
from chater_gpt.processing.waiting import PausedWait
from chater_gpt.resilience.budget import GlobalBudgetExhausted
from tests.unit.processing.fakes import RecordingSleep


class Pauses:
    """A pauser that records every call (PauseGate would hide the repeated ones)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def pause(self, reason: str) -> None:
        self.calls.append(("pause", reason))

    def resume(self, reason: str) -> None:
        self.calls.append(("resume", reason))


class Flaky:
    """Raises `errors` in turn, then answers "done"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.tries = 0

    async def __call__(self) -> str:
        self.tries += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def breaker_wait(pauser: Pauses | PauseGate, sleep: RecordingSleep) -> PausedWait:
    return PausedWait(
        pauser, "breaker", waits_on=CircuitOpen, max_wait=5.0, min_wait=0.2, sleep=sleep
    )


async def test_an_attempt_that_succeeds_at_once_neither_waits_nor_pauses() -> None:
    pauses, sleep = Pauses(), RecordingSleep()
    assert await breaker_wait(pauses, sleep).run(Flaky()) == "done"
    assert pauses.calls == []
    assert sleep.delays == []


async def test_one_waiter_pauses_once_and_resumes_when_answered() -> None:
    pauses, sleep = Pauses(), RecordingSleep()
    attempt = Flaky(CircuitOpen("open"), CircuitOpen("open"), CircuitOpen("open"))
    assert await breaker_wait(pauses, sleep).run(attempt) == "done"
    assert attempt.tries == 4
    assert pauses.calls == [("pause", "breaker"), ("resume", "breaker")]


async def test_the_pause_is_lifted_when_the_waiter_fails_otherwise() -> None:
    gate = PauseGate()
    wait = breaker_wait(gate, RecordingSleep())
    with pytest.raises(BackendUnavailable):
        await wait.run(Flaky(CircuitOpen("open"), BackendUnavailable("down")))
    assert gate.reasons == frozenset()
    assert wait.waiting == 0


async def test_the_pause_is_lifted_when_the_waiter_is_cancelled() -> None:
    gate = PauseGate()
    wait = breaker_wait(gate, RecordingSleep())

    async def never_closes() -> str:
        raise CircuitOpen("open")

    task = asyncio.create_task(wait.run(never_closes))
    for _ in range(5):
        await asyncio.sleep(0)
    assert gate.reasons == frozenset({"breaker"})
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gate.reasons == frozenset()


async def test_the_pause_lasts_until_the_last_waiter_leaves() -> None:
    pauses = Pauses()
    wait = breaker_wait(pauses, RecordingSleep())
    closed = {"first": asyncio.Event(), "second": asyncio.Event()}

    def until_closed(name: str) -> Callable[[], Awaitable[str]]:
        async def attempt() -> str:
            if not closed[name].is_set():
                raise CircuitOpen("open")
            return name

        return attempt

    first = asyncio.create_task(wait.run(until_closed("first")))
    second = asyncio.create_task(wait.run(until_closed("second")))
    for _ in range(5):
        await asyncio.sleep(0)
    assert wait.waiting == 2
    closed["first"].set()
    assert await first == "first"
    assert ("resume", "breaker") not in pauses.calls  # "second" still waits
    closed["second"].set()
    assert await second == "second"
    assert pauses.calls == [("pause", "breaker"), ("pause", "breaker"), ("resume", "breaker")]


@pytest.mark.parametrize(
    ("retry_after", "slept"),
    [(None, 0.2), (0.0, 0.2), (0.05, 0.2), (3.0, 3.0), (60.0, 5.0)],
)
async def test_a_breaker_wait_sleeps_its_retry_after_within_bounds(
    retry_after: float | None, slept: float
) -> None:
    sleep = RecordingSleep()
    await breaker_wait(Pauses(), sleep).run(Flaky(CircuitOpen("open", retry_after=retry_after)))
    assert sleep.delays == [slept]


@pytest.mark.parametrize(("retry_after", "slept"), [(None, 1.0), (0.5, 0.5), (3600.0, 5.0)])
async def test_a_budget_wait_sleeps_until_the_reset_a_while_at_a_time(
    retry_after: float | None, slept: float
) -> None:
    sleep, pauses = RecordingSleep(), Pauses()
    wait = PausedWait(
        pauses,
        "budget",
        waits_on=GlobalBudgetExhausted,
        max_wait=5.0,
        default_wait=1.0,
        sleep=sleep,
    )
    attempt = Flaky(GlobalBudgetExhausted("spent", retry_after=retry_after))
    assert await wait.run(attempt) == "done"
    assert sleep.delays == [slept]
    assert pauses.calls == [("pause", "budget"), ("resume", "budget")]


async def test_other_errors_are_not_waited_on() -> None:
    pauses, sleep = Pauses(), RecordingSleep()
    with pytest.raises(BackendUnavailable):
        await breaker_wait(pauses, sleep).run(Flaky(BackendUnavailable("down")))
    assert pauses.calls == []
    assert sleep.delays == []
