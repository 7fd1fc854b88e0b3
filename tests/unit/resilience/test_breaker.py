from __future__ import annotations

import asyncio

import pytest

from chater_gpt.errors import BackendAuthError, BackendError, BackendRejected, CircuitOpen
from chater_gpt.resilience.breaker import Breaker
from chater_gpt.resilience.guards import BreakerBackend
from tests.unit.resilience.fakes import FakeClock, ScriptedBackend, call


def state_of(breaker: Breaker) -> str:
    return breaker.state  # a call: mypy must not narrow the state between asserts


def make(clock: FakeClock, backend: ScriptedBackend) -> tuple[Breaker, BreakerBackend, list[str]]:
    breaker = Breaker("fake", fail_max=3, reset_seconds=30, clock=clock, probe_wait=0.5)
    states: list[str] = []
    breaker.add_listener(lambda name, state: states.append(f"{name}:{state}"))
    return breaker, BreakerBackend(backend, breaker), states


async def fail(guarded: BreakerBackend, times: int) -> None:
    for _ in range(times):
        with pytest.raises(BackendError):
            await guarded.complete(call())


async def test_opens_after_fail_max_and_stops_calling_the_backend() -> None:
    clock = FakeClock()
    backend = ScriptedBackend(outcomes=[BackendError("500")] * 3)
    breaker, guarded, states = make(clock, backend)
    await fail(guarded, 2)
    assert state_of(breaker) == "closed"
    await fail(guarded, 1)
    assert state_of(breaker) == "open"
    assert states == ["fake:open"]
    clock.advance(10)
    with pytest.raises(CircuitOpen) as caught:
        await guarded.complete(call())
    assert caught.value.retry_after == pytest.approx(20)
    assert len(backend.calls) == 3  # the open breaker did not call it


async def test_a_success_resets_the_failure_count() -> None:
    backend = ScriptedBackend(
        outcomes=[BackendError("500")] * 2 + ["ok"] + [BackendError("500")] * 2
    )
    breaker, guarded, _ = make(FakeClock(), backend)
    await fail(guarded, 2)
    await guarded.complete(call())
    await fail(guarded, 2)
    assert state_of(breaker) == "closed"


@pytest.mark.parametrize("error", [BackendRejected("400"), BackendAuthError("401")])
async def test_client_and_auth_errors_never_trip_it(error: BackendError) -> None:
    backend = ScriptedBackend(outcomes=[error] * 10)
    breaker, guarded, _ = make(FakeClock(), backend)
    await fail(guarded, 10)
    assert state_of(breaker) == "closed"


async def test_half_open_lets_one_probe_through_and_its_success_closes() -> None:
    clock = FakeClock()
    gate = asyncio.Event()
    backend = ScriptedBackend(outcomes=[BackendError("500")] * 3)
    breaker, guarded, states = make(clock, backend)
    await fail(guarded, 3)
    clock.advance(30)

    async def slow_probe() -> str:
        await gate.wait()
        return "probe ok"

    probe = asyncio.create_task(breaker.call(slow_probe))
    await asyncio.sleep(0)
    assert state_of(breaker) == "half_open"
    with pytest.raises(CircuitOpen) as caught:  # a second caller while the probe runs
        await guarded.complete(call())
    assert caught.value.retry_after == 0.5
    gate.set()
    assert await probe == "probe ok"
    assert state_of(breaker) == "closed"
    assert states == ["fake:open", "fake:half_open", "fake:closed"]
    await guarded.complete(call())
    assert len(backend.calls) == 4


async def test_a_failed_probe_opens_it_again_for_a_full_period() -> None:
    clock = FakeClock()
    backend = ScriptedBackend(outcomes=[BackendError("500")] * 4)
    breaker, guarded, _ = make(clock, backend)
    await fail(guarded, 3)
    clock.advance(31)
    await fail(guarded, 1)  # the probe
    assert state_of(breaker) == "open"
    with pytest.raises(CircuitOpen) as caught:
        await guarded.complete(call())
    assert caught.value.retry_after == pytest.approx(30)


async def test_a_cancelled_probe_leaves_it_half_open_for_the_next_probe() -> None:
    clock = FakeClock()
    backend = ScriptedBackend(outcomes=[BackendError("500")] * 3)
    breaker, guarded, _ = make(clock, backend)
    await fail(guarded, 3)
    clock.advance(30)
    probe = asyncio.create_task(breaker.call(asyncio.Event().wait))
    await asyncio.sleep(0)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert state_of(breaker) == "half_open"
    await guarded.complete(call())  # the next probe succeeds
    assert state_of(breaker) == "closed"
