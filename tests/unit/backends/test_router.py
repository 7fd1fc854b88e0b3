"""The model router: each call to its model's provider, the provider and the cost named
on the result; unknown models to the default backend; an unconfigured provider is an
error reply; fallback chains across providers."""

from __future__ import annotations

import dataclasses

import pytest

from chater_gpt.backends.fallback import FallbackBackend, FallbackLink
from chater_gpt.backends.router import ModelRouter, pinned_models, warn_blind
from chater_gpt.catalogue import DEFAULT_CATALOGUE, Provider
from chater_gpt.domain import ChatCall, ChatResult, ResponseFormat
from chater_gpt.errors import (
    BackendError,
    CircuitOpen,
    ErrorCode,
    InvalidRequest,
    ModelNotAllowed,
)
from chater_gpt.json_output import json_instruction
from tests.support.fakes import ScriptedBackend, call


class UsageBackend(ScriptedBackend):
    """Answers as `model` (a dated snapshot, say) with a fixed usage, cached tokens too."""

    def __init__(self, name: str, model: str | None = None) -> None:
        super().__init__(name)
        self.model = model

    async def complete(self, call: ChatCall) -> ChatResult:
        result = await super().complete(call)
        return dataclasses.replace(
            result,
            model=self.model or call.model,
            prompt_tokens=10_000,
            completion_tokens=2_000,
            cached_prompt_tokens=4_000,
        )


def router(**backends: ScriptedBackend) -> ModelRouter:
    return ModelRouter(
        {Provider(name): backend for name, backend in backends.items()},
        default=Provider.OPENAI,
        catalogue=DEFAULT_CATALOGUE,
    )


async def test_each_model_goes_to_its_providers_backend() -> None:
    openai, anthropic, gemini = (ScriptedBackend(n) for n in ("openai", "anthropic", "gemini"))
    routed = router(openai=openai, anthropic=anthropic, gemini=gemini)
    for model, backend in [
        ("gpt-4o-mini", openai),
        ("claude-sonnet-4-5-20250929", anthropic),
        ("gemini-2.5-flash", gemini),
    ]:
        result = await routed.complete(call(model))
        assert backend.calls[-1].model == model  # passed on as asked
        assert result.provider == backend.name


async def test_a_model_unknown_to_the_catalogue_goes_to_the_default_backend() -> None:
    openai, anthropic = ScriptedBackend("openai"), ScriptedBackend("anthropic")
    result = await router(openai=openai, anthropic=anthropic).complete(call("smollm2-135m"))
    assert [c.model for c in openai.calls] == ["smollm2-135m"]
    assert (result.provider, result.cost_usd) == ("openai", 0.0)


async def test_a_model_of_a_provider_not_configured_is_a_clear_error() -> None:
    openai = ScriptedBackend("openai")
    with pytest.raises(ModelNotAllowed) as caught:
        await router(openai=openai).complete(call("gemini-2.5-pro"))
    error = caught.value
    assert error.code is ErrorCode.MODEL_NOT_ALLOWED
    assert error.retryable is False
    assert "gemini" in error.message
    assert "GEMINI_API_KEY" in error.message
    assert openai.calls == []


def with_image(model: str) -> ChatCall:
    parts = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
    ]
    return dataclasses.replace(call(model), messages=[{"role": "user", "content": parts}])


async def test_images_to_a_model_that_reads_none_are_refused_before_any_call() -> None:
    openai = ScriptedBackend("openai")
    routed = router(openai=openai)
    for ask in (routed.complete(with_image("o3-mini")), routed.stream(with_image("gpt-4"), _drop)):
        with pytest.raises(InvalidRequest) as caught:
            await ask
        assert caught.value.code is ErrorCode.INVALID_REQUEST
        assert caught.value.retryable is False
        assert "reads no images" in caught.value.message
    assert openai.calls == []
    # A vision model takes them; a text-only model takes text; an unknown model is not
    # judged (the default backend's server knows what it reads).
    for model in ("gpt-4o-mini", "smollm2-135m"):
        await routed.complete(with_image(model))
    await routed.complete(call("o3-mini"))
    assert [c.model for c in openai.calls] == ["gpt-4o-mini", "smollm2-135m", "o3-mini"]


async def _drop(text: str) -> None:
    pass


async def test_a_json_answer_is_asked_in_words_of_a_model_without_a_json_mode() -> None:
    fmt = ResponseFormat("json_schema", {"type": "object", "required": ["x"]}, "answer")
    system = {"role": "system", "content": "You are terse."}
    asked = dataclasses.replace(
        call("gpt-4"), messages=[system, *call("gpt-4").messages], response_format=fmt
    )
    openai = ScriptedBackend("openai")
    routed = router(openai=openai)
    await routed.complete(asked)  # gpt-4: no JSON mode (the catalogue)
    sent = openai.calls[-1]
    assert sent.response_format is None
    assert sent.messages[0] == system
    assert sent.messages[1] == {"role": "system", "content": json_instruction(fmt)}
    assert list(sent.messages[2:]) == list(call("gpt-4").messages)
    # A model with a JSON mode gets the native field, and the messages as they were.
    await routed.complete(dataclasses.replace(asked, model="gpt-4o"))
    assert openai.calls[-1].response_format == fmt
    assert list(openai.calls[-1].messages) == list(asked.messages)


def test_a_photo_model_that_reads_no_images_is_named_at_start_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("WARNING"):
        warn_blind(DEFAULT_CATALOGUE, ["gpt-4o", "o3-mini", "o3-mini", "local-llava"])
    assert [r.getMessage() for r in caplog.records] == [
        "model o3-mini reads no images (model catalogue): photos sent to it are refused"
    ]


async def test_a_pinned_model_stays_on_the_default_backend_and_costs_nothing() -> None:
    local = UsageBackend("koboldcpp")
    routed = ModelRouter(
        {Provider.KOBOLDCPP: local},
        default=Provider.KOBOLDCPP,
        catalogue=DEFAULT_CATALOGUE,
        pinned={"gpt-4o-mini"},
    )
    result = await routed.complete(call("gpt-4o-mini"))
    assert (result.provider, result.cost_usd) == ("koboldcpp", 0.0)
    assert pinned_models(DEFAULT_CATALOGUE, {Provider.OPENAI}, ["gpt-4o", "claude-haiku-4-5"]) == {
        "claude-haiku-4-5"
    }


async def test_the_cost_is_the_answering_models_price_times_the_usage() -> None:
    # OpenAI answers with the snapshot's name: priced as gpt-4o ($2.50 / $10 / $1.25 cached).
    openai = UsageBackend("openai", model="gpt-4o-2024-08-06")
    result = await router(openai=openai).complete(call("gpt-4o"))
    assert result.cost_usd == pytest.approx((6_000 * 2.50 + 4_000 * 1.25 + 2_000 * 10.0) / 1e6)
    claude = UsageBackend("anthropic")
    priced = await router(openai=openai, anthropic=claude).complete(call("claude-haiku-4-5"))
    assert priced.cost_usd == pytest.approx((6_000 * 1.0 + 4_000 * 0.10 + 2_000 * 5.0) / 1e6)


async def test_a_fallback_chain_crosses_providers_and_names_the_one_that_answered() -> None:
    openai = ScriptedBackend("openai", [BackendError("503")])
    anthropic = ScriptedBackend("anthropic", [CircuitOpen("open")])
    gemini = ScriptedBackend("gemini")
    routed = router(openai=openai, anthropic=anthropic, gemini=gemini)
    seen: list[tuple[str, str]] = []
    chain = FallbackBackend(
        [
            FallbackLink(routed),
            FallbackLink(routed, "claude-haiku-4-5"),
            FallbackLink(routed, "gemini-2.5-flash"),
        ],
        on_fallback=lambda name, model, _exc: seen.append((name, model)),
    )
    result = await chain.complete(call("gpt-4o-mini"))
    assert (result.model, result.provider, result.backend) == (
        "gemini-2.5-flash",
        "gemini",
        "gemini",
    )
    assert seen == [("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5")]
    await chain.aclose()
    assert (openai.closed, anthropic.closed, gemini.closed) == (1, 1, 1)


async def test_when_every_provider_fails_the_first_error_is_the_answer() -> None:
    openai = ScriptedBackend("openai", [BackendError("503")])
    anthropic = ScriptedBackend("anthropic", [BackendError("529")])
    routed = router(openai=openai, anthropic=anthropic)
    chain = FallbackBackend([FallbackLink(routed), FallbackLink(routed, "claude-haiku-4-5")])
    with pytest.raises(BackendError, match="503"):
        await chain.complete(call("gpt-4o-mini"))
