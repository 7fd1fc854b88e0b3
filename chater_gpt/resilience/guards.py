"""The guards around one raw backend, and the only resilience module that knows backends.

Per backend, from the outside in (`guarded_stack`):

    RetryingBackend (max_retries, backoff, Retry-After)
      -> BreakerBackend (the breaker admits the attempt, then the requests-per-minute wait)
        -> TimeoutBackend (timeout per attempt)
          -> the raw backend (OpenAI or KoboldCPP)

The rate-limit wait sits after the breaker, so requests held by an open breaker do
not use up turns; and outside the timeout, so waiting for a turn never counts
against an attempt. The dependency is one-way: this module imports the
`LLMBackend` protocol from `backends.base`; no backend imports resilience. The
fallback chain over guarded backends and the choice of raw backends from
`Settings` are wiring (`chater_gpt.wiring`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from chater_gpt.backends.base import LLMBackend
from chater_gpt.domain import BreakerState, ChatCall, ChatResult, DeltaSink
from chater_gpt.errors import BackendTimeout
from chater_gpt.resilience.breaker import Breaker, StateListener
from chater_gpt.resilience.rate_limit import Pacer
from chater_gpt.resilience.retry import RetryPolicy, Sleep, call_with_retries
from chater_gpt.storage.breaker_state import BreakerStateStore
from chater_gpt.storage.keys import backend_scope_name
from chater_gpt.storage.rates import Rate, RateStore

T = TypeVar("T")

# Called before each retry with the backend name, the attempt that failed (1-based)
# and its error; for metrics. Must be cheap and never raise.
RetryHook = Callable[[str, int, BaseException], None]


@dataclass(frozen=True, slots=True)
class GuardConfig:
    """The numbers the guards of one backend need (from TIMEOUT, MAX_RETRIES, ...)."""

    timeout: float
    max_retries: int
    retry_after_cap: float
    requests_per_minute: int
    breaker_fail_max: int
    breaker_reset_seconds: float
    rate_period: float = 60.0

    @property
    def probe_ttl(self) -> float:
        """How long a half-open probe holds its claim at most, if its replica dies mid-call."""
        return 2 * self.timeout + 10


@dataclass(frozen=True, slots=True)
class GuardHooks:
    """Metrics callbacks; each must be cheap and never raise."""

    on_retry: RetryHook | None = None
    on_breaker_state: StateListener | None = None
    on_rate_wait: Callable[[float], None] | None = None


@dataclass(frozen=True, slots=True)
class Guarded:
    """One guarded backend and its breaker (for readiness and metrics)."""

    backend: LLMBackend
    breaker: Breaker


def guarded_stack(
    raw: LLMBackend,
    config: GuardConfig,
    hooks: GuardHooks | None = None,
    *,
    rates: RateStore,
    breaker_store: BreakerStateStore | None = None,
) -> Guarded:
    """retries(breaker(rate-limit wait, timeout(raw))), the breaker named after `raw`."""
    hooks = hooks or GuardHooks()
    breaker = Breaker(
        raw.name,
        fail_max=config.breaker_fail_max,
        reset_seconds=config.breaker_reset_seconds,
        store=breaker_store,
        probe_ttl=config.probe_ttl,
    )
    if hooks.on_breaker_state is not None:
        breaker.add_listener(hooks.on_breaker_state)
    pacer = Pacer(
        rates,
        Rate(config.requests_per_minute, config.rate_period),
        scope=backend_scope_name(raw.name),
        on_wait=hooks.on_rate_wait,
    )
    guarded = BreakerBackend(TimeoutBackend(raw, config.timeout), breaker, pace=pacer.wait_turn)
    policy = RetryPolicy(max_retries=config.max_retries, retry_after_cap=config.retry_after_cap)
    return Guarded(RetryingBackend(guarded, policy, on_retry=hooks.on_retry), breaker)


@dataclass
class BackendStack:
    """The composed backend plus what metrics and readiness need to see."""

    backend: LLMBackend
    breakers: dict[str, Breaker] = field(default_factory=dict)
    # Each guarded backend by name, for the breaker prober (its `ping` is the probe).
    guarded: dict[str, LLMBackend] = field(default_factory=dict)

    def breaker_states(self) -> dict[str, BreakerState]:
        return {name: breaker.state for name, breaker in self.breakers.items()}

    async def aclose(self) -> None:
        await self.backend.aclose()


class RetryingBackend:
    """An `LLMBackend` whose calls go through the retry policy."""

    def __init__(
        self,
        inner: LLMBackend,
        policy: RetryPolicy,
        *,
        sleep: Sleep = asyncio.sleep,
        on_retry: RetryHook | None = None,
    ) -> None:
        self._inner = inner
        self._policy = policy
        self._sleep = sleep
        self._on_retry = on_retry

    @property
    def name(self) -> str:
        return self._inner.name

    async def complete(self, call: ChatCall) -> ChatResult:
        hook = self._on_retry

        def report(attempt: int, exc: BaseException) -> None:
            if hook is not None:
                hook(self._inner.name, attempt, exc)

        return await call_with_retries(
            lambda: self._inner.complete(call), self._policy, sleep=self._sleep, on_retry=report
        )

    async def stream(self, call: ChatCall, on_delta: DeltaSink) -> ChatResult:
        """Retried as `complete` is, until the first delta: a failure after it is raised
        as is (the caller has seen text a new attempt would repeat)."""
        started = False

        async def relay(text: str) -> None:
            nonlocal started
            started = True
            await on_delta(text)

        def report(attempt: int, exc: BaseException) -> None:
            if self._on_retry is not None:
                self._on_retry(self._inner.name, attempt, exc)

        return await call_with_retries(
            lambda: self._inner.stream(call, relay),
            self._policy,
            sleep=self._sleep,
            on_retry=report,
            may_retry=lambda: not started,
        )

    async def ping(self) -> None:
        await self._inner.ping()  # a probe is one attempt: its failure is the answer

    async def aclose(self) -> None:
        await self._inner.aclose()


class BreakerBackend:
    """An `LLMBackend` guarded by a breaker; `pace` (the rate-limit wait) runs once admitted."""

    def __init__(
        self,
        inner: LLMBackend,
        breaker: Breaker,
        *,
        pace: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._inner = inner
        self._breaker = breaker
        self._pace = pace

    @property
    def name(self) -> str:
        return self._inner.name

    async def complete(self, call: ChatCall) -> ChatResult:
        async def attempt() -> ChatResult:
            if self._pace is not None:
                await self._pace()
            return await self._inner.complete(call)

        return await self._breaker.call(attempt)

    async def stream(self, call: ChatCall, on_delta: DeltaSink) -> ChatResult:
        # A failure inside the stream counts as any other: the backend is unwell.
        async def attempt() -> ChatResult:
            if self._pace is not None:
                await self._pace()
            return await self._inner.stream(call, on_delta)

        return await self._breaker.call(attempt)

    async def ping(self) -> None:
        # Through the breaker (an open one makes this its half-open probe), without the
        # rate-limit wait: the model list spends none of the requests-per-minute quota.
        await self._breaker.call(self._inner.ping)

    async def aclose(self) -> None:
        await self._inner.aclose()


class TimeoutBackend:
    """Bounds each attempt by `seconds`; an attempt that runs out becomes `BackendTimeout`.

    It sits inside the breaker (so timeouts count as failures) and inside the
    rate-limit wait (so waiting for a turn never eats into an attempt's time).
    """

    def __init__(self, inner: LLMBackend, seconds: float) -> None:
        self._inner = inner
        self._seconds = seconds

    @property
    def name(self) -> str:
        return self._inner.name

    async def complete(self, call: ChatCall) -> ChatResult:
        return await self._bounded(self._inner.complete(call))

    async def stream(self, call: ChatCall, on_delta: DeltaSink) -> ChatResult:
        # The whole stream within the attempt's time, as a completion's answer is.
        return await self._bounded(self._inner.stream(call, on_delta))

    async def ping(self) -> None:
        await self._bounded(self._inner.ping())

    async def _bounded(self, attempt: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self._seconds):
                return await attempt
        except TimeoutError as exc:
            raise BackendTimeout(
                f"the {self._inner.name} backend did not answer within {self._seconds:g} s"
            ) from exc

    async def aclose(self) -> None:
        await self._inner.aclose()
