"""Settings → the backend stack: one guarded backend per configured provider (the raw
backend wrapped by `resilience.guards.guarded_stack`: retries, breaker, rate-limit
wait, timeout), the model router over them (by the catalogue's provider of each
model), and the fallback chain (FALLBACK_MODELS, across providers, then
FALLBACK_BACKEND)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chater_gpt.backends.base import LLMBackend
from chater_gpt.backends.fallback import FallbackBackend, FallbackHook, FallbackLink
from chater_gpt.backends.openai_direct import OpenAIDirectBackend
from chater_gpt.backends.router import ModelRouter, UsageCount, pinned_models
from chater_gpt.catalogue import Provider
from chater_gpt.config import (
    DEFAULT_OPENAI_BASE_URL,
    BackendKind,
    Settings,
)
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
    if kind is BackendKind.ANTHROPIC:
        return _anthropic(settings)
    if kind is BackendKind.GEMINI:
        return _gemini(settings)
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


def _anthropic(settings: Settings) -> LLMBackend:
    options: dict[str, Any] = {
        "api_key": settings.anthropic_api_key,
        "base_url": settings.anthropic_base_url,
        "timeout": settings.timeout,
        "api_version": settings.anthropic_api_version or None,
    }
    if settings.anthropic_client == "aiohttp":
        from chater_gpt.backends.anthropic_direct import AnthropicDirectBackend

        return AnthropicDirectBackend(**options)
    from chater_gpt.backends.anthropic import AnthropicBackend

    return AnthropicBackend(**options)


def _gemini(settings: Settings) -> LLMBackend:
    options: dict[str, Any] = {
        "api_key": settings.gemini_api_key,
        "base_url": settings.gemini_base_url,
        "timeout": settings.timeout,
        "api_version": settings.gemini_api_version or None,
    }
    if settings.gemini_client == "aiohttp":
        from chater_gpt.backends.gemini_direct import GeminiDirectBackend

        return GeminiDirectBackend(**options)
    # Imported here, as the SDKs are: a deployment loads only the client it uses.
    from chater_gpt.backends.gemini import GeminiBackend

    return GeminiBackend(**options)


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
    count_usage: UsageCount | None = None,
) -> BackendStack:
    rates = stores.rates
    config = guard_config(settings)
    guarded: dict[BackendKind, LLMBackend] = {}
    breakers: dict[str, Breaker] = {}
    by_name: dict[str, LLMBackend] = {}
    for kind in configured_providers(settings):
        raw = raw_backend(kind, settings)
        store = stores.breaker_state(raw.name)
        guard = guarded_stack(raw, config, hooks, rates=rates, breaker_store=store)
        breakers[raw.name] = guard.breaker
        by_name[raw.name] = guard.backend
        guarded[kind] = guard.backend
    router = ModelRouter(
        {Provider(kind.value): backend for kind, backend in guarded.items()},
        default=Provider(settings.llm_backend.value),
        catalogue=settings.catalogue,
        pinned=default_backend_models(settings),
        count_usage=count_usage,
    )
    links = [FallbackLink(router)]
    links += [FallbackLink(router, model) for model in settings.fallback_models]
    if settings.fallback_backend not in (None, settings.llm_backend):
        links.append(FallbackLink(guarded[settings.fallback_backend]))
    backend: LLMBackend = (
        router if len(links) == 1 else FallbackBackend(links, on_fallback=on_fallback)
    )
    return BackendStack(backend=backend, breakers=breakers, guarded=by_name)


def configured_providers(settings: Settings) -> list[BackendKind]:
    """LLM_BACKEND, FALLBACK_BACKEND, then every provider with a configuration of its own:
    OpenAI with a key or a base URL of its own, Anthropic and Gemini with a key,
    KoboldCPP with a URL. The model router sends each model to its provider's backend."""
    openai = bool(_secret(settings.openai_api_key)) or (
        settings.openai_base_url != DEFAULT_OPENAI_BASE_URL
    )
    candidates = [
        (settings.llm_backend, True),
        (settings.fallback_backend, True),
        (BackendKind.OPENAI, openai),
        (BackendKind.ANTHROPIC, bool(_secret(settings.anthropic_api_key))),
        (BackendKind.GEMINI, bool(_secret(settings.gemini_api_key))),
        (BackendKind.KOBOLDCPP, bool(settings.koboldcpp_api_url)),
    ]
    kinds = [kind for kind, configured in candidates if kind is not None and configured]
    return list(dict.fromkeys(kinds))


def default_backend_models(settings: Settings) -> frozenset[str]:
    """Models LLM_BACKEND serves whatever the catalogue says (as before the catalogue):
    configured ones whose provider is not configured; with KoboldCPP (one loaded model,
    whatever the name), MODEL and VISION_MODEL."""
    configured = {Provider(kind.value) for kind in configured_providers(settings)}
    named = [
        settings.model,
        settings.vision_model,
        *settings.fallback_models,
        *(route.model for route in settings.routes if route.model),
        *settings.context_fallback_models.values(),
    ]
    pinned = pinned_models(settings.catalogue, configured, named)
    if settings.llm_backend is BackendKind.KOBOLDCPP:
        pinned |= {settings.model, settings.vision_model}
    return pinned


def _secret(value: Any) -> str:
    return value.get_secret_value() if value is not None else ""
