"""Anthropic and Gemini behind the running service: a chat request on Kafka is answered
by the configured provider's official SDK against a server that speaks its published
API, with the provider's usage in the reply; its failures follow the same retry,
breaker and fallback policy as OpenAI's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.conftest import SettingsFactory, Topics
from tests.support.scripted_anthropic import ScriptedAnthropic
from tests.support.scripted_common import Fault
from tests.support.scripted_gemini import ScriptedGemini
from tests.support.service_runner import (
    ReplyCollector,
    envelope,
    produce_requests,
    running_service,
)

ANTHROPIC_KEY = "sk-ant-test-PROVIDERS-0123456789"
GEMINI_KEY = "AIza-test-PROVIDERS-0123456789"
CLAUDE = "claude-haiku-5-5"
GEMINI = "gemini-3-flash"


@pytest.fixture
def anthropic() -> Iterator[ScriptedAnthropic]:
    with ScriptedAnthropic(api_key=ANTHROPIC_KEY) as server:
        yield server


@pytest.fixture
def gemini() -> Iterator[ScriptedGemini]:
    with ScriptedGemini(api_key=GEMINI_KEY) as server:
        yield server


def anthropic_settings(server: ScriptedAnthropic) -> dict[str, object]:
    return {
        "llm_backend": "anthropic",
        "anthropic_base_url": server.base_url,
        "anthropic_api_key": ANTHROPIC_KEY,
        "model": CLAUDE,
        "vision_model": CLAUDE,
        # The completion path alone (the count endpoints: test_provider_token_counts.py).
        "provider_token_counts": False,
    }


def gemini_settings(server: ScriptedGemini) -> dict[str, object]:
    return {
        "gemini_base_url": server.base_url,
        "gemini_api_key": GEMINI_KEY,
        "provider_token_counts": False,
    }


@pytest.mark.parametrize("client", ["sdk", "aiohttp"])
async def test_a_chat_request_is_answered_by_claude_with_its_usage(
    make_settings: SettingsFactory,
    topics: Topics,
    anthropic: ScriptedAnthropic,
    replies: ReplyCollector,
    client: str,
) -> None:
    settings = make_settings(
        **anthropic_settings(anthropic), system_prompt="Be brief.", anthropic_client=client
    )
    async with running_service(settings):
        produce_requests(
            settings.bootstrap_server,
            topics.request,
            [envelope("c-1", message="hello claude", user_email="ada@example.com")],
        )
        reply = (await replies.await_keys({"c-1"}, timeout=30))["c-1"][0].value

    assert reply["response"] == "echo: hello claude"
    assert reply["model"] == CLAUDE
    assert reply["finish_reason"] == "stop"
    (request,) = anthropic.requests
    assert request.body["system"] in ("Be brief.", [{"type": "text", "text": "Be brief."}])
    assert request.body["messages"][-1]["role"] == "user"
    usage = reply["usage"]
    assert usage["prompt_tokens"] > 0
    assert usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.parametrize("client", ["sdk", "aiohttp"])
async def test_a_chat_request_is_answered_by_gemini_with_its_usage(
    make_settings: SettingsFactory,
    topics: Topics,
    gemini: ScriptedGemini,
    replies: ReplyCollector,
    client: str,
) -> None:
    settings = make_settings(
        llm_backend="gemini",
        model=GEMINI,
        vision_model=GEMINI,
        gemini_client=client,
        **gemini_settings(gemini),
    )
    async with running_service(settings):
        produce_requests(
            settings.bootstrap_server,
            topics.request,
            [envelope("g-1", message="hello gemini", user_email="ada@example.com")],
        )
        reply = (await replies.await_keys({"g-1"}, timeout=30))["g-1"][0].value

    assert reply["response"] == "echo: hello gemini"
    assert reply["finish_reason"] == "stop"
    (request,) = gemini.requests
    assert request.model == GEMINI
    assert request.headers.get("x-goog-api-key") == GEMINI_KEY
    usage = reply["usage"]
    assert usage["prompt_tokens"] > 0
    assert usage["completion_tokens"] > 0


async def test_anthropic_overloaded_is_retried_and_answered(
    make_settings: SettingsFactory,
    topics: Topics,
    anthropic: ScriptedAnthropic,
    replies: ReplyCollector,
) -> None:
    anthropic.fail_next(Fault(status=529))
    settings = make_settings(**anthropic_settings(anthropic), max_retries=2)
    async with running_service(settings):
        produce_requests(settings.bootstrap_server, topics.request, [envelope("o-1", message="x")])
        reply = (await replies.await_keys({"o-1"}, timeout=30))["o-1"][0].value

    assert reply["response"] == "echo: x"
    assert anthropic.calls == 2  # the 529, then the answer


async def test_a_rejected_key_is_answered_with_the_auth_error_and_never_retried(
    make_settings: SettingsFactory,
    topics: Topics,
    gemini: ScriptedGemini,
    replies: ReplyCollector,
) -> None:
    gemini.fail_next(Fault(status=403))
    settings = make_settings(
        llm_backend="gemini", model=GEMINI, max_retries=3, **gemini_settings(gemini)
    )
    async with running_service(settings):
        produce_requests(settings.bootstrap_server, topics.request, [envelope("a-1", message="x")])
        reply = (await replies.await_keys({"a-1"}, timeout=30))["a-1"][0].value

    assert reply["error"]["code"] == "backend_auth_error"
    assert reply["error"]["retryable"] is False
    assert gemini.calls == 1
    assert GEMINI_KEY not in reply["error"]["message"]
