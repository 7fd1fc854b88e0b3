from __future__ import annotations

from typing import Any

import pytest

from chater_gpt.backends.base import LLMBackend
from chater_gpt.config import BackendKind, Settings, load_settings
from chater_gpt.errors import BackendError, BackendRejected, ModelNotAllowed
from chater_gpt.resilience.guards import GuardHooks
from chater_gpt.storage.stores import StorageConfig, Stores, open_stores
from chater_gpt.wiring.backends import (
    build_backend_stack,
    configured_providers,
    default_backend_models,
)
from tests.support.fakes import ScriptedBackend, call


def settings(**overrides: Any) -> Settings:
    return load_settings(
        {
            "bootstrap_server": "127.0.0.1:9",
            "openai_base_url": "http://127.0.0.1:9/v1",
            "koboldcpp_api_url": "http://127.0.0.1:9",
            "max_retries": 1,
            "breaker_fail_max": 2,
            "requests_per_minute": 1_000_000,
            **overrides,
        }
    )


def in_memory() -> Stores:
    return open_stores(StorageConfig())


def raw_factory(backends: dict[BackendKind, ScriptedBackend]) -> Any:
    """The given backends; every other configured provider gets a quiet one of its own."""

    def make(kind: BackendKind, _settings: Settings) -> LLMBackend:
        return backends.setdefault(kind, ScriptedBackend(kind.value))

    return make


async def test_retries_then_breaker_then_fallback_backend() -> None:
    openai = ScriptedBackend("openai", [BackendError("500", retry_after=0.0)] * 2)
    kobold = ScriptedBackend("koboldcpp")
    states: list[tuple[str, str]] = []
    stack = build_backend_stack(
        settings(fallback_backend="koboldcpp"),
        in_memory(),
        raw_backend=raw_factory({BackendKind.OPENAI: openai, BackendKind.KOBOLDCPP: kobold}),
        hooks=GuardHooks(on_breaker_state=lambda name, state: states.append((name, state))),
    )
    result = await stack.backend.complete(call())
    assert len(openai.calls) == 2  # first attempt + one retry
    assert result.backend == "koboldcpp"
    assert stack.breaker_states() == {"openai": "open", "koboldcpp": "closed"}
    assert states == [("openai", "open")]
    second = await stack.backend.complete(call())  # the open breaker spares openai
    assert second.backend == "koboldcpp"
    assert len(openai.calls) == 2
    await stack.aclose()
    assert openai.closed == kobold.closed == 1


async def test_fallback_models_on_the_primary() -> None:
    openai = ScriptedBackend("openai", [BackendError("503", retry_after=0.0)] * 2)
    waits: list[float] = []
    stack = build_backend_stack(
        settings(fallback_models="gpt-4o", breaker_fail_max=5),
        in_memory(),
        raw_backend=raw_factory({BackendKind.OPENAI: openai}),
        hooks=GuardHooks(on_rate_wait=waits.append),
    )
    result = await stack.backend.complete(call("gpt-4o-mini"))
    assert result.model == "gpt-4o"
    assert len(waits) == 3  # every attempt took its rate-limit turn
    # One breaker per configured provider (KOBOLDCPP_API_URL is set in these settings).
    assert list(stack.breakers) == ["openai", "koboldcpp"]


async def test_without_fallbacks_errors_pass_through_unretried_when_not_retryable() -> None:
    openai = ScriptedBackend("openai", [BackendRejected("400")])
    stack = build_backend_stack(
        settings(), in_memory(), raw_backend=raw_factory({BackendKind.OPENAI: openai})
    )
    with pytest.raises(BackendRejected):
        await stack.backend.complete(call())
    assert len(openai.calls) == 1


async def test_the_money_budgets_are_wired_with_prices() -> None:
    from chater_gpt.errors import BudgetExhausted
    from chater_gpt.wiring import build_admission

    control = build_admission(
        settings(daily_cost_limit_usd=100.0, user_daily_cost_limit_usd=0.001), in_memory()
    )
    admit: dict[str, Any] = {
        "key": "k",
        "user_email": "ada@example.com",
        "app_code": None,
        "model": "gpt-4o-mini",
        "max_tokens": 1000,
        "prompt_tokens": 1000,
    }
    first = await control.admit(**admit)
    assert first.reserved_cost_usd == 0.00075  # 1000 at $0.15/M + 1000 at $0.60/M
    with pytest.raises(BudgetExhausted) as caught:
        await control.admit(**admit)
    assert "money" in caught.value.message


def test_the_money_budgets_price_with_the_catalogue() -> None:
    from chater_gpt.wiring import build_prices

    prices = build_prices(settings())
    assert prices.cost_usd("gpt-4o", 1_000_000, 0) == 2.5
    assert prices.cost_usd("gpt-4o-mini-2024-07-18", 0, 1_000_000) == 0.6  # a dated snapshot
    assert prices.cost_usd("local-llama", 10, 10) == 0.0  # unpriced


async def test_token_counters_per_provider_and_the_endpoints_when_asked() -> None:
    from chater_gpt.context.counters import ModelTokenCounters
    from chater_gpt.context.estimate import EstimatedTokenCounter
    from chater_gpt.context.provider_tokens import AnthropicCountTokens, GeminiCountTokens
    from chater_gpt.context.server_tokens import ServerTokenCounters
    from chater_gpt.context.tokens import BpeTokenCounter
    from chater_gpt.wiring import provider_count_endpoints, token_counters

    counters = token_counters(settings())
    assert isinstance(counters, ModelTokenCounters)
    assert not counters.needs_prefetch
    assert isinstance(counters.for_model("gpt-4o-mini"), BpeTokenCounter)
    assert isinstance(counters.for_model("claude-sonnet-4-5"), EstimatedTokenCounter)
    assert isinstance(token_counters(settings(tokenizer="koboldcpp")), ServerTokenCounters)

    keys = {"anthropic_api_key": "sk-ant", "gemini_api_key": "g-key"}
    assert provider_count_endpoints(settings(provider_token_counts=False, **keys)) == {}
    endpoints = provider_count_endpoints(settings(**keys))  # on by default
    assert isinstance(endpoints["anthropic"], AnthropicCountTokens)
    assert isinstance(endpoints["gemini"], GeminiCountTokens)
    only_claude = provider_count_endpoints(
        settings(provider_token_counts=True, anthropic_api_key="sk-ant")
    )
    assert set(only_claude) == {"anthropic"}  # no key, no endpoint: the estimate counts
    counters = token_counters(settings(provider_token_counts=True, **keys))
    assert isinstance(counters, ModelTokenCounters)
    assert counters.needs_prefetch
    await counters.aclose()


# --- routing by model (the model catalogue) ---------------------------------------------

KEYS = {"anthropic_api_key": "sk-ant-test", "gemini_api_key": "AIza-test"}


def test_every_provider_with_a_configuration_gets_a_backend_of_its_own() -> None:
    assert configured_providers(settings()) == [BackendKind.OPENAI, BackendKind.KOBOLDCPP]
    assert configured_providers(settings(**KEYS, koboldcpp_api_url=None)) == [
        BackendKind.OPENAI,
        BackendKind.ANTHROPIC,
        BackendKind.GEMINI,
    ]
    local = settings(llm_backend="koboldcpp", openai_base_url="https://api.openai.com/v1")
    assert configured_providers(local) == [BackendKind.KOBOLDCPP]


async def test_each_model_reaches_its_providers_backend_and_is_priced() -> None:
    backends: dict[BackendKind, ScriptedBackend] = {}
    stack = build_backend_stack(settings(**KEYS), in_memory(), raw_backend=raw_factory(backends))
    for model, kind in [
        ("gpt-4o-mini", BackendKind.OPENAI),
        ("claude-haiku-4-5", BackendKind.ANTHROPIC),
        ("gemini-2.5-flash", BackendKind.GEMINI),
        ("smollm2-135m-instruct", BackendKind.OPENAI),  # unknown: LLM_BACKEND serves it
    ]:
        result = await stack.backend.complete(call(model))
        assert backends[kind].calls[-1].model == model
        assert result.provider == kind.value
        expected = settings().catalogue.cost_usd(model, 3, 2)  # the fake's usage
        assert result.cost_usd == pytest.approx(expected)
    assert result.cost_usd == 0.0  # the unknown model


async def test_a_cross_provider_fallback_chain_answers_from_the_next_provider() -> None:
    down = [BackendError("503", retry_after=0.0)] * 2
    backends = {
        BackendKind.OPENAI: ScriptedBackend("openai", down),
        BackendKind.ANTHROPIC: ScriptedBackend("anthropic", down),
    }
    stack = build_backend_stack(
        settings(**KEYS, fallback_models="claude-haiku-4-5,gemini-2.5-flash"),
        in_memory(),
        raw_backend=raw_factory(backends),
    )
    result = await stack.backend.complete(call("gpt-4o-mini"))
    assert (result.model, result.provider) == ("gemini-2.5-flash", "gemini")
    assert [len(backends[k].calls) for k in (BackendKind.OPENAI, BackendKind.ANTHROPIC)] == [2, 2]


async def test_a_model_of_an_unconfigured_provider_is_not_allowed_naming_the_provider() -> None:
    stack = build_backend_stack(settings(), in_memory(), raw_backend=raw_factory({}))
    with pytest.raises(ModelNotAllowed, match=r"anthropic.*ANTHROPIC_API_KEY") as caught:
        await stack.backend.complete(call("claude-haiku-4-5"))
    assert caught.value.retryable is False


async def test_with_koboldcpp_the_configured_models_stay_on_it_as_before() -> None:
    # MODEL=gpt-4o-mini (the default) on a KoboldCPP server that answers any name, with
    # OpenAI as FALLBACK_BACKEND: KoboldCPP first, as before the catalogue; no cost.
    kobold = ScriptedBackend("koboldcpp", [BackendError("503", retry_after=0.0)] * 2)
    backends = {BackendKind.KOBOLDCPP: kobold}
    local = settings(llm_backend="koboldcpp", fallback_backend="openai", breaker_fail_max=5)
    stack = build_backend_stack(local, in_memory(), raw_backend=raw_factory(backends))
    result = await stack.backend.complete(call("gpt-4o-mini"))
    assert len(kobold.calls) == 2
    assert (result.backend, result.provider) == ("openai", "")  # FALLBACK_BACKEND, unrouted
    second = await stack.backend.complete(call("gpt-4o-mini"))
    assert (second.backend, second.provider, second.cost_usd) == ("koboldcpp", "koboldcpp", 0.0)


async def test_a_configured_model_of_an_unconfigured_provider_stays_on_llm_backend() -> None:
    backends: dict[BackendKind, ScriptedBackend] = {}
    routed = settings(fallback_models="claude-haiku-4-5", breaker_fail_max=5)  # no Anthropic key
    stack = build_backend_stack(routed, in_memory(), raw_backend=raw_factory(backends))
    backends[BackendKind.OPENAI].outcomes.extend([BackendError("503", retry_after=0.0)] * 2)
    result = await stack.backend.complete(call("gpt-4o-mini"))
    assert (result.model, result.backend, result.cost_usd) == ("claude-haiku-4-5", "openai", 0.0)
    assert default_backend_models(routed) == {"claude-haiku-4-5"}


async def test_the_chain_never_asks_one_backend_for_one_model_twice() -> None:
    openai = ScriptedBackend("openai", [BackendError("503", retry_after=0.0)] * 2)
    both = settings(llm_backend="koboldcpp", fallback_backend="openai", model="local")
    stack = build_backend_stack(
        both, in_memory(), raw_backend=raw_factory({BackendKind.OPENAI: openai})
    )
    # gpt-4.1 is OpenAI's: the router sends it there; FALLBACK_BACKEND would ask again.
    with pytest.raises(BackendError):
        await stack.backend.complete(call("gpt-4.1"))
    assert len(openai.calls) == 2  # one attempt and one retry, from one link
