"""The model catalogue behind the running service: one service, three providers. A request
naming a GPT, a Claude and a Gemini model each reaches its own provider's server, and
each reply names that provider and a cost equal to the catalogue's price times the
server's usage; a fallback chain across providers answers from the next provider when
the first ones are down."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chater_gpt.catalogue import DEFAULT_CATALOGUE
from tests.integration.conftest import SettingsFactory, Topics
from tests.support.scripted_anthropic import ScriptedAnthropic
from tests.support.scripted_gemini import ScriptedGemini
from tests.support.scripted_openai import ScriptedOpenAI
from tests.support.service_runner import (
    ReplyCollector,
    envelope,
    produce_requests,
    running_service,
)

ANTHROPIC_KEY = "sk-ant-test-CATALOGUE-0123456789"
GEMINI_KEY = "AIza-test-CATALOGUE-0123456789"
GPT, CLAUDE, GEMINI = "gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-flash"


@pytest.fixture
def anthropic() -> Iterator[ScriptedAnthropic]:
    with ScriptedAnthropic(api_key=ANTHROPIC_KEY) as server:
        yield server


@pytest.fixture
def gemini() -> Iterator[ScriptedGemini]:
    with ScriptedGemini(api_key=GEMINI_KEY) as server:
        yield server


def three_providers(anthropic: ScriptedAnthropic, gemini: ScriptedGemini) -> dict[str, object]:
    """OpenAI (the scripted server, LLM_BACKEND) plus Anthropic and Gemini by their keys."""
    return {
        "anthropic_base_url": anthropic.base_url,
        "anthropic_api_key": ANTHROPIC_KEY,
        "gemini_base_url": gemini.base_url,
        "gemini_api_key": GEMINI_KEY,
        # The completion path alone (the count endpoints: test_provider_token_counts.py).
        "provider_token_counts": False,
    }


def expected_cost(reply: dict[str, object]) -> float:
    usage = reply["usage"]
    assert isinstance(usage, dict)
    model = reply["model"]
    assert isinstance(model, str)
    return DEFAULT_CATALOGUE.cost_usd(model, usage["prompt_tokens"], usage["completion_tokens"])


async def test_gpt_claude_and_gemini_requests_reach_their_providers_and_are_priced(
    make_settings: SettingsFactory,
    topics: Topics,
    scripted: ScriptedOpenAI,
    anthropic: ScriptedAnthropic,
    gemini: ScriptedGemini,
    replies: ReplyCollector,
) -> None:
    settings = make_settings(
        **three_providers(anthropic, gemini), model=GPT, allowed_models=f"{CLAUDE},{GEMINI}"
    )
    async with running_service(settings):
        produce_requests(
            settings.bootstrap_server,
            topics.request,
            [
                envelope("to-gpt", message="hello gpt", model=GPT),
                envelope("to-claude", message="hello claude", model=CLAUDE),
                envelope("to-gemini", message="hello gemini", model=GEMINI),
                envelope("to-nobody", message="hello", model="gpt-5.2-unknown"),
            ],
        )
        got = await replies.await_keys({"to-gpt", "to-claude", "to-gemini", "to-nobody"}, 30)

    for key, model, provider, server in [
        ("to-gpt", GPT, "openai", scripted),
        ("to-claude", CLAUDE, "anthropic", anthropic),
        ("to-gemini", GEMINI, "gemini", gemini),
    ]:
        reply = got[key][0].value
        assert (reply["model"], reply["provider"]) == (model, provider), key
        assert reply["usage"]["prompt_tokens"] > 0
        assert reply["cost"] > 0
        assert reply["cost"] == pytest.approx(expected_cost(reply), rel=1e-6), key
        assert len(server.requests) == 1, key  # each server saw only its own model
    assert scripted.requests[0].body["model"] == GPT
    assert anthropic.requests[0].body["model"] == CLAUDE
    assert gemini.requests[0].model == GEMINI
    # A model the catalogue does not know, and the configuration does not allow: refused.
    assert got["to-nobody"][0].value["error"]["code"] == "model_not_allowed"


async def test_a_claude_model_without_an_anthropic_key_is_refused_naming_the_provider(
    make_settings: SettingsFactory,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
) -> None:
    settings = make_settings(allowed_models=CLAUDE)  # allowed, but no ANTHROPIC_API_KEY
    async with running_service(settings):
        produce_requests(
            settings.bootstrap_server,
            topics.request,
            [envelope("c-1", message="hello", model=CLAUDE)],
        )
        error = (await replies.await_keys({"c-1"}, 30))["c-1"][0].value["error"]

    assert error["code"] == "model_not_allowed"
    assert error["retryable"] is False
    assert "anthropic" in error["message"]
    assert "ANTHROPIC_API_KEY" in error["message"]
    assert scripted.requests == []


@pytest.mark.parametrize("anthropic_outage", [529, 503])
async def test_a_fallback_chain_across_providers_answers_from_the_next_provider(
    make_settings: SettingsFactory,
    topics: Topics,
    scripted: ScriptedOpenAI,
    anthropic: ScriptedAnthropic,
    gemini: ScriptedGemini,
    replies: ReplyCollector,
    anthropic_outage: int,
) -> None:
    scripted.outage_status = 503
    anthropic.outage_status = anthropic_outage
    settings = make_settings(
        **three_providers(anthropic, gemini), model=GPT, fallback_models=f"{CLAUDE},{GEMINI}"
    )
    async with running_service(settings):
        produce_requests(
            settings.bootstrap_server,
            topics.request,
            [envelope("f-1", message="anyone there?", user_email="ada@example.com")],
        )
        reply = (await replies.await_keys({"f-1"}, 30))["f-1"][0].value

    assert reply["response"] == "echo: anyone there?"
    assert (reply["model"], reply["provider"]) == (GEMINI, "gemini")
    assert reply["cost"] == pytest.approx(expected_cost(reply), rel=1e-6)
    assert scripted.calls == 1  # GPT first (MAX_RETRIES=0), then Claude, then Gemini
    assert anthropic.calls == 1
    assert [request.model for request in gemini.requests] == [GEMINI]
