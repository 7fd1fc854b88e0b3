"""The one retry loop around a backend call (`guards.RetryingBackend` applies it).

The SDKs' own retries are off; this is the only place a backend call is repeated.
Retried: `BackendError`s with `retryable=True` (connection errors, timeouts, 408,
429, 5xx). Not retried: everything else, and `CircuitOpen` (the breaker decides
when to try again, not the retry loop). A backend's `Retry-After` replaces the
exponential backoff, capped so one task never sleeps for long.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_base

from chater_gpt.errors import BackendError, ChaterError, CircuitOpen

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, BackendError) and exc.retryable and not isinstance(exc, CircuitOpen)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int
    retry_after_cap: float
    backoff_initial: float = 0.5
    backoff_max: float = 10.0
    # Extra random delay added to each backoff, so replicas do not retry in lockstep.
    jitter: float = 0.5

    def delay(self, failed_attempt: int, exc: BaseException | None, rng: random.Random) -> float:
        """Seconds to wait after `failed_attempt` (1-based) failed with `exc`."""
        retry_after = exc.retry_after if isinstance(exc, ChaterError) else None
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.retry_after_cap)
        backoff = self.backoff_initial * 2.0 ** (failed_attempt - 1)
        return min(backoff, self.backoff_max) + rng.uniform(0, self.jitter)


class _PolicyWait(wait_base):
    def __init__(self, policy: RetryPolicy, rng: random.Random) -> None:
        self._policy = policy
        self._rng = rng

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        return self._policy.delay(retry_state.attempt_number, exc, self._rng)


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Sleep = asyncio.sleep,
    on_retry: Callable[[int, BaseException], None] | None = None,
    rng: random.Random | None = None,
    may_retry: Callable[[], bool] = lambda: True,
) -> T:
    """Run `attempt` until it succeeds, fails for good, or the retries are spent.

    The last error is raised as is (no tenacity `RetryError`), so callers see our codes.
    `may_retry()` False stops retrying whatever the error (a stream that has already
    delivered text: a second attempt would repeat it).
    The first attempt runs outside tenacity: setting up its loop costs more CPU than the
    whole rest of a successful call's bookkeeping, and most calls succeed at once.
    """
    try:
        return await attempt()
    except Exception as exc:
        if policy.max_retries == 0 or not is_retryable(exc) or not may_retry():
            raise
        first_failure: BaseException | None = exc

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            exc = state.outcome.exception()
            if exc is not None:
                on_retry(state.attempt_number, exc)

    retrying = AsyncRetrying(
        sleep=sleep,
        stop=stop_after_attempt(policy.max_retries + 1),
        wait=_PolicyWait(policy, rng or random.Random()),
        retry=retry_if_exception(lambda exc: is_retryable(exc) and may_retry()),
        before_sleep=before_sleep,
        reraise=True,
    )
    # The iterator form: `attempt` may be any callable returning an awaitable (tenacity's
    # `__call__` only awaits functions it recognises as coroutine functions).
    async for try_ in retrying:
        with try_:
            if first_failure is not None:  # replay the first attempt's failure into the loop
                failure, first_failure = first_failure, None
                raise failure
            return await attempt()
    raise AssertionError("tenacity stopped without a result or an error")  # reraise=True
