"""`guarded_stack`: retries(breaker(rate-limit wait, timeout(raw))) around one backend."""

from __future__ import annotations

import pytest

from chater_gpt.domain import BreakerState
from chater_gpt.errors import BackendError, CircuitOpen
from chater_gpt.resilience.guards import GuardConfig, GuardHooks, guarded_stack
from chater_gpt.storage.rates import InMemoryRateStore
from tests.support.fakes import ScriptedBackend, call

CONFIG = GuardConfig(
    timeout=5.0,
    max_retries=1,
    retry_after_cap=1.0,
    requests_per_minute=1_000_000,
    breaker_fail_max=2,
    breaker_reset_seconds=60.0,
)


async def test_retries_count_on_the_breaker_and_an_open_breaker_takes_no_rate_turn() -> None:
    raw = ScriptedBackend("openai", [BackendError("500", retry_after=0.0)] * 2)
    retries: list[tuple[str, int]] = []
    states: list[tuple[str, str]] = []
    waits: list[float] = []
    hooks = GuardHooks(
        on_retry=lambda name, attempt, _exc: retries.append((name, attempt)),
        on_breaker_state=lambda name, state: states.append((name, state)),
        on_rate_wait=waits.append,
    )
    guard = guarded_stack(raw, CONFIG, hooks, rates=InMemoryRateStore())
    assert guard.backend.name == guard.breaker.name == "openai"
    with pytest.raises(BackendError):
        await guard.backend.complete(call())
    assert len(raw.calls) == 2  # first attempt + one retry
    assert retries == [("openai", 1)]
    assert guard.breaker.state is BreakerState.OPEN
    assert states == [("openai", BreakerState.OPEN)]
    assert len(waits) == 2  # each attempt took its turn
    with pytest.raises(CircuitOpen):
        await guard.backend.complete(call())
    assert len(raw.calls) == 2
    assert len(waits) == 2  # held by the breaker: no turn used up, not retried


async def test_the_rate_limit_wait_does_not_count_against_the_timeout() -> None:
    # One request per 0.3 s: the second call waits ~0.3 s for its turn, longer than
    # the 0.1 s an attempt may take; the wait sits outside the timeout.
    config = GuardConfig(
        timeout=0.1,
        max_retries=0,
        retry_after_cap=1.0,
        requests_per_minute=1,
        breaker_fail_max=2,
        breaker_reset_seconds=60.0,
        rate_period=0.3,
    )
    raw = ScriptedBackend("koboldcpp")
    waits: list[float] = []
    guard = guarded_stack(
        raw, config, GuardHooks(on_rate_wait=waits.append), rates=InMemoryRateStore()
    )
    await guard.backend.complete(call())
    result = await guard.backend.complete(call())
    assert result.backend == "koboldcpp"
    assert waits[0] == 0.0
    assert waits[1] > config.timeout


async def test_without_hooks_and_closing_reaches_the_raw_backend() -> None:
    raw = ScriptedBackend("openai")
    guard = guarded_stack(raw, CONFIG, rates=InMemoryRateStore())
    assert (await guard.backend.complete(call())).text == "ok from openai"
    await guard.backend.aclose()
    assert raw.closed == 1


def test_a_probe_holds_its_claim_for_two_timeouts_and_ten_seconds() -> None:
    assert CONFIG.probe_ttl == 20.0
