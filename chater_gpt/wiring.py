"""Settings → parts: the backend stack the service calls.

Per configured backend kind (LLM_BACKEND, then FALLBACK_BACKEND), the raw backend
(OpenAI or KoboldCPP) wrapped in its guards (`resilience.guards.guarded_stack`:
retries, breaker, rate-limit wait, timeout); then the fallback chain over them: the
requested model, FALLBACK_MODELS on the same backend, then FALLBACK_BACKEND.
"""

from __future__ import annotations

from collections.abc import Callable

from chater_gpt.backends.base import LLMBackend
from chater_gpt.backends.fallback import FallbackBackend, FallbackHook, FallbackLink
from chater_gpt.backends.openai_direct import OpenAIDirectBackend
from chater_gpt.config import BackendKind, Settings
from chater_gpt.resilience.breaker import Breaker
from chater_gpt.resilience.guards import BackendStack, GuardConfig, GuardHooks, guarded_stack
from chater_gpt.storage.stores import Stores

RawBackendFactory = Callable[[BackendKind, Settings], LLMBackend]


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


def guard_config(settings: Settings) -> GuardConfig:
    return GuardConfig(
        timeout=settings.timeout,
        max_retries=settings.max_retries,
        retry_after_cap=settings.retry_after_cap_seconds,
        requests_per_minute=settings.requests_per_minute,
        breaker_fail_max=settings.breaker_fail_max,
        breaker_reset_seconds=settings.breaker_reset_seconds,
    )


def build_backend_stack(
    settings: Settings,
    stores: Stores,
    *,
    hooks: GuardHooks | None = None,
    on_fallback: FallbackHook | None = None,
    raw_backend: RawBackendFactory = build_raw_backend,
) -> BackendStack:
    rates = stores.rates
    config = guard_config(settings)
    kinds = [settings.llm_backend]
    if settings.fallback_backend is not None and settings.fallback_backend not in kinds:
        kinds.append(settings.fallback_backend)
    guarded: list[LLMBackend] = []
    breakers: dict[str, Breaker] = {}
    by_name: dict[str, LLMBackend] = {}
    for kind in kinds:
        raw = raw_backend(kind, settings)
        store = stores.breaker_state(raw.name)
        guard = guarded_stack(raw, config, hooks, rates=rates, breaker_store=store)
        breakers[raw.name] = guard.breaker
        by_name[raw.name] = guard.backend
        guarded.append(guard.backend)
    primary = guarded[0]
    links = [FallbackLink(primary)]
    links += [FallbackLink(primary, model) for model in settings.fallback_models]
    links += [FallbackLink(backend) for backend in guarded[1:]]
    backend: LLMBackend = (
        primary if len(links) == 1 else FallbackBackend(links, on_fallback=on_fallback)
    )
    return BackendStack(backend=backend, breakers=breakers, guarded=by_name)
