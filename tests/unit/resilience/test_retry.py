from __future__ import annotations

import asyncio
import random

import pytest

from chater_gpt.domain import ChatCall, ChatResult
from chater_gpt.errors import (
    BackendAuthError,
    BackendError,
    BackendRateLimited,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    CircuitOpen,
)
from chater_gpt.resilience.guards import RetryingBackend, TimeoutBackend
from chater_gpt.resilience.retry import RetryPolicy
from tests.unit.resilience.fakes import RecordingSleep, ScriptedBackend, call

POLICY = RetryPolicy(max_retries=3, retry_after_cap=5.0, backoff_initial=0.5, jitter=0.0)


def retrying(
    backend: ScriptedBackend, policy: RetryPolicy = POLICY
) -> tuple[RetryingBackend, RecordingSleep, list[tuple[str, int, str]]]:
    sleep = RecordingSleep()
    retries: list[tuple[str, int, str]] = []
    wrapped = RetryingBackend(
        backend,
        policy,
        sleep=sleep,
        on_retry=lambda name, attempt, exc: retries.append((name, attempt, type(exc).__name__)),
    )
    return wrapped, sleep, retries


async def test_server_errors_are_retried_with_growing_backoff() -> None:
    backend = ScriptedBackend(outcomes=[BackendError("500"), BackendError("502")])
    wrapped, sleep, retries = retrying(backend)
    result = await wrapped.complete(call())
    assert result.text == "ok from fake"
    assert len(backend.calls) == 3
    assert sleep.delays == [0.5, 1.0]
    assert retries == [("fake", 1, "BackendError"), ("fake", 2, "BackendError")]


async def test_gives_up_after_max_retries_with_the_last_error() -> None:
    backend = ScriptedBackend(outcomes=[BackendUnavailable("down")] * 3 + [BackendTimeout("slow")])
    wrapped, sleep, _ = retrying(backend)
    with pytest.raises(BackendTimeout):
        await wrapped.complete(call())
    assert len(backend.calls) == 4  # first attempt + MAX_RETRIES
    assert len(sleep.delays) == 3


async def test_retry_after_replaces_the_backoff_and_is_capped() -> None:
    backend = ScriptedBackend(
        outcomes=[
            BackendRateLimited("429", retry_after=1.0),
            BackendError("503", retry_after=60.0),
        ]
    )
    wrapped, sleep, _ = retrying(backend)
    await wrapped.complete(call())
    assert sleep.delays == [1.0, 5.0]


@pytest.mark.parametrize(
    "error",
    [BackendRejected("400"), BackendAuthError("401"), CircuitOpen("open", retry_after=3)],
)
async def test_client_errors_and_open_breaker_are_not_retried(error: BackendError) -> None:
    backend = ScriptedBackend(outcomes=[error])
    wrapped, sleep, retries = retrying(backend)
    with pytest.raises(type(error)):
        await wrapped.complete(call())
    assert len(backend.calls) == 1
    assert sleep.delays == []
    assert retries == []


async def test_zero_retries_means_one_attempt() -> None:
    backend = ScriptedBackend(outcomes=[BackendError("500")])
    wrapped, _, _ = retrying(backend, RetryPolicy(max_retries=0, retry_after_cap=5))
    with pytest.raises(BackendError):
        await wrapped.complete(call())
    assert len(backend.calls) == 1


def test_backoff_is_capped_and_jittered() -> None:
    policy = RetryPolicy(max_retries=10, retry_after_cap=5, backoff_max=4.0, jitter=0.5)
    rng = random.Random(7)
    delays = [policy.delay(n, BackendError("x"), rng) for n in range(1, 8)]
    assert all(0.5 <= d <= 4.5 for d in delays)
    assert delays[-1] >= 4.0  # capped at backoff_max plus jitter


class _Hanging:
    def __init__(self) -> None:
        self.calls = 0

    @property
    def name(self) -> str:
        return "hanging"

    async def complete(self, call: ChatCall) -> ChatResult:
        self.calls += 1
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        pass


async def test_each_attempt_times_out_and_timeouts_are_retried() -> None:
    hanging = _Hanging()
    sleep = RecordingSleep()
    wrapped = RetryingBackend(
        TimeoutBackend(hanging, 0.01), RetryPolicy(max_retries=2, retry_after_cap=1), sleep=sleep
    )
    with pytest.raises(BackendTimeout) as caught:
        await wrapped.complete(call())
    assert hanging.calls == 3
    assert caught.value.retryable
