"""The service's own half-open probe: an idle open breaker closes once the backend
answers again, without waiting for a request."""

from __future__ import annotations

import asyncio

import pytest

from chater_gpt.domain import BreakerState
from chater_gpt.errors import BackendError, BackendTimeout, BackendUnavailable
from chater_gpt.resilience.breaker import Breaker
from chater_gpt.resilience.guards import BreakerBackend, RetryingBackend, TimeoutBackend
from chater_gpt.resilience.prober import BreakerProber
from chater_gpt.resilience.retry import RetryPolicy
from tests.support.fakes import FakeClock, ScriptedBackend, call

RESET = 30


def guarded(clock: FakeClock, backend: ScriptedBackend) -> tuple[Breaker, RetryingBackend]:
    breaker = Breaker("fake", fail_max=2, reset_seconds=RESET, clock=clock)
    stack = RetryingBackend(
        BreakerBackend(TimeoutBackend(backend, 1.0), breaker),
        RetryPolicy(max_retries=3, retry_after_cap=1.0),
    )
    return breaker, stack


async def opened(clock: FakeClock) -> tuple[Breaker, RetryingBackend, ScriptedBackend]:
    backend = ScriptedBackend(outcomes=[BackendUnavailable("down")] * 2)
    breaker, stack = guarded(clock, backend)
    for _ in range(2):
        with pytest.raises(BackendError):
            await BreakerBackend(TimeoutBackend(backend, 1.0), breaker).complete(call())
    assert breaker.state is BreakerState.OPEN
    return breaker, stack, backend


async def test_an_idle_open_breaker_is_probed_once_due_and_closes() -> None:
    clock = FakeClock()
    breaker, stack, backend = await opened(clock)
    prober = BreakerProber({"fake": breaker}, {"fake": stack}, interval=1)

    await prober.probe_open_breakers()
    assert backend.pings == 0  # not due: the breaker refused the call itself

    clock.advance(RESET)
    await prober.probe_open_breakers()
    assert backend.pings == 1
    assert breaker.state is BreakerState.CLOSED
    assert len(backend.calls) == 2  # the probe was a ping, not a completion


async def test_a_failed_probe_keeps_it_open_for_another_reset_period() -> None:
    clock = FakeClock()
    breaker, stack, backend = await opened(clock)
    backend.ping_outcomes.extend([BackendUnavailable("still down")] * 5)
    prober = BreakerProber({"fake": breaker}, {"fake": stack}, interval=1)

    clock.advance(RESET)
    await prober.probe_open_breakers()
    assert (backend.pings, breaker.state) == (1, BreakerState.OPEN)  # one try, not retried
    clock.advance(RESET - 1)
    await prober.probe_open_breakers()
    assert backend.pings == 1  # the failed probe restarted the reset period
    clock.advance(1)
    await prober.probe_open_breakers()
    assert backend.pings == 2


async def test_a_closed_breaker_is_never_probed() -> None:
    backend = ScriptedBackend()
    breaker, stack = guarded(FakeClock(), backend)
    await BreakerProber({"fake": breaker}, {"fake": stack}, interval=1).probe_open_breakers()
    assert backend.pings == 0


async def test_a_ping_that_hangs_is_a_timeout() -> None:
    class Hanging(ScriptedBackend):
        async def ping(self) -> None:
            await asyncio.sleep(10)

    with pytest.raises(BackendTimeout):
        await TimeoutBackend(Hanging(), 0.01).ping()


async def test_the_probe_takes_no_rate_limit_turn() -> None:
    turns: list[int] = []

    async def pace() -> None:
        turns.append(1)

    backend = ScriptedBackend()
    breaker = Breaker("fake", fail_max=2, reset_seconds=RESET, clock=FakeClock())
    await BreakerBackend(backend, breaker, pace=pace).ping()
    assert (backend.pings, turns) == (1, [])
