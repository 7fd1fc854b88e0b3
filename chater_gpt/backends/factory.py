"""Turns configuration into the backend the service calls.

Per backend, from the outside in:

    RetryingBackend (MAX_RETRIES, backoff, Retry-After)
      -> BreakerBackend (breaker admits the attempt, then the REQUESTS_PER_MINUTE wait)
        -> TimeoutBackend (TIMEOUT per attempt)
          -> the raw backend (OpenAI or KoboldCPP)

then the fallback chain over them: the requested model, FALLBACK_MODELS on the
same backend, then FALLBACK_BACKEND. The rate-limit wait sits after the breaker,
so requests held by an open breaker do not use up turns; and outside the timeout,
so waiting for a turn never counts against an attempt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from chater_gpt.backends.base import LLMBackend
from chater_gpt.backends.fallback import FallbackBackend, FallbackHook, FallbackLink
from chater_gpt.backends.openai_direct import OpenAIDirectBackend
from chater_gpt.config import BackendKind, Settings
from chater_gpt.resilience.breaker import Breaker, BreakerBackend, StateListener
from chater_gpt.resilience.rate_limit import Pacer
from chater_gpt.resilience.retry import RetryHook, RetryingBackend, RetryPolicy, TimeoutBackend
from chater_gpt.storage.keys import backend_scope_name
from chater_gpt.storage.rates import Rate, RateStore
from chater_gpt.storage.stores import Stores


@dataclass
class BackendStack:
    """The composed backend plus what metrics and readiness need to see."""

    backend: LLMBackend
    breakers: dict[str, Breaker] = field(default_factory=dict)

    def breaker_states(self) -> dict[str, str]:
        return {name: breaker.state for name, breaker in self.breakers.items()}

    async def aclose(self) -> None:
        await self.backend.aclose()


def build_raw_backend(kind: BackendKind, settings: Settings) -> LLMBackend:
    if kind is BackendKind.KOBOLDCPP:
        from chater_gpt.backends.koboldcpp import KoboldCppBackend

        return KoboldCppBackend(
            base_url=settings.koboldcpp_api_url,
            api_key=settings.koboldcpp_api_key,
            timeout=settings.timeout,
        )
    if settings.openai_client == "aiohttp":
        return OpenAIDirectBackend(
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
            timeout=settings.timeout,
        )
    # Imported here: the SDK costs ~50 MB of memory, which the aiohttp client does not need.
    from chater_gpt.backends.openai import OpenAIBackend

    return OpenAIBackend(
        api_key=settings.openai_api_key,
        base_url=settings.openai_base_url,
        timeout=settings.timeout,
    )


def guard_backend(
    raw: LLMBackend,
    settings: Settings,
    *,
    breaker: Breaker,
    rates: RateStore,
    on_retry: RetryHook | None = None,
    on_rate_wait: Callable[[float], None] | None = None,
    rate_period: float = 60.0,
) -> LLMBackend:
    """retries(breaker(rate-limit wait, timeout(raw)))."""
    pacer = Pacer(
        rates,
        Rate(settings.requests_per_minute, rate_period),
        scope=backend_scope_name(raw.name),
        on_wait=on_rate_wait,
    )
    guarded = BreakerBackend(TimeoutBackend(raw, settings.timeout), breaker, pace=pacer.wait_turn)
    policy = RetryPolicy(
        max_retries=settings.max_retries, retry_after_cap=settings.retry_after_cap_seconds
    )
    return RetryingBackend(guarded, policy, on_retry=on_retry)


def build_breaker(name: str, settings: Settings, stores: Stores) -> Breaker:
    return Breaker(
        name,
        fail_max=settings.breaker_fail_max,
        reset_seconds=settings.breaker_reset_seconds,
        store=stores.breaker_state(name),
        # A probe holds its claim at most this long if its replica dies mid-call.
        probe_ttl=2 * settings.timeout + 10,
    )


def build_backend_stack(
    settings: Settings,
    stores: Stores,
    *,
    on_retry: RetryHook | None = None,
    on_breaker_state: StateListener | None = None,
    on_fallback: FallbackHook | None = None,
    on_rate_wait: Callable[[float], None] | None = None,
    raw_backend: Callable[[BackendKind, Settings], LLMBackend] = build_raw_backend,
) -> BackendStack:
    rates = stores.rates
    kinds = [settings.llm_backend]
    if settings.fallback_backend is not None and settings.fallback_backend not in kinds:
        kinds.append(settings.fallback_backend)
    guarded: list[LLMBackend] = []
    breakers: dict[str, Breaker] = {}
    for kind in kinds:
        raw = raw_backend(kind, settings)
        breaker = build_breaker(raw.name, settings, stores)
        if on_breaker_state is not None:
            breaker.add_listener(on_breaker_state)
        breakers[raw.name] = breaker
        guarded.append(
            guard_backend(
                raw,
                settings,
                breaker=breaker,
                rates=rates,
                on_retry=on_retry,
                on_rate_wait=on_rate_wait,
            )
        )
    primary = guarded[0]
    links = [FallbackLink(primary)]
    links += [FallbackLink(primary, model) for model in settings.fallback_models]
    links += [FallbackLink(backend) for backend in guarded[1:]]
    backend: LLMBackend = (
        primary if len(links) == 1 else FallbackBackend(links, on_fallback=on_fallback)
    )
    return BackendStack(backend=backend, breakers=breakers)


def build_backend(settings: Settings, stores: Stores) -> LLMBackend:
    """The composed backend only (see `build_backend_stack` for the breakers too)."""
    return build_backend_stack(settings, stores).backend
