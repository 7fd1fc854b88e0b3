"""PROVIDER_TOKEN_COUNTS against the scripted Anthropic and Gemini servers: the request
each endpoint documents, the exact counts used by the context builder, each text asked
once, and the conservative estimate when the endpoint fails."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from chater_gpt.context.builder import ContextBuilder
from chater_gpt.context.counters import ModelTokenCounters
from chater_gpt.context.provider_tokens import AnthropicCountTokens, GeminiCountTokens
from chater_gpt.domain import Turn
from tests.support import scripted_anthropic
from tests.support.scripted_anthropic import ScriptedAnthropic
from tests.support.scripted_common import Fault
from tests.support.scripted_gemini import ScriptedGemini

pytestmark = [pytest.mark.integration]

ANTHROPIC_KEY = "sk-ant-test-SCRIPTED-0123456789"
GEMINI_KEY = "AIza-test-SCRIPTED-0123456789"
CLAUDE = "claude-haiku-5-5"
GEMINI = "gemini-3.5-flash"


@pytest.fixture
def claude_server() -> Iterator[ScriptedAnthropic]:
    with ScriptedAnthropic(api_key=ANTHROPIC_KEY, models={CLAUDE}) as server:
        yield server


@pytest.fixture
def gemini_server() -> Iterator[ScriptedGemini]:
    with ScriptedGemini(api_key=GEMINI_KEY, models={GEMINI}) as server:
        yield server


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


async def test_anthropic_count_tokens(claude_server: ScriptedAnthropic) -> None:
    client = AnthropicCountTokens(claude_server.base_url, ANTHROPIC_KEY)
    try:
        assert await client.count(CLAUDE, "hello there") == 3 + 4 + math.ceil(11 / 4)
    finally:
        await client.aclose()
    (request,) = claude_server.requests
    assert request.path == "/v1/messages/count_tokens"
    assert request.body == {
        "model": CLAUDE,
        "messages": [{"role": "user", "content": "hello there"}],
    }
    assert lower(request.headers)["x-api-key"] == ANTHROPIC_KEY
    assert lower(request.headers)["anthropic-version"] == "2023-06-01"


async def test_gemini_count_tokens(gemini_server: ScriptedGemini) -> None:
    client = GeminiCountTokens(gemini_server.base_url, GEMINI_KEY)
    try:
        assert await client.count(f"models/{GEMINI}", "hello there") == math.ceil(11 / 4)
    finally:
        await client.aclose()
    (request,) = gemini_server.requests
    assert request.path == f"/v1/models/{GEMINI}:countTokens"
    assert request.body == {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}
    assert lower(request.headers)["x-goog-api-key"] == GEMINI_KEY


async def test_the_builder_counts_with_the_endpoint_once_per_text(
    claude_server: ScriptedAnthropic,
) -> None:
    client = AnthropicCountTokens(claude_server.base_url, ANTHROPIC_KEY)
    builder = ContextBuilder(100_000, counters=ModelTokenCounters(endpoints={"anthropic": client}))
    history = [Turn("user", "first question here"), Turn("assistant", "a long answer " * 20)]
    texts = ["Be brief.", "first question here", "a long answer " * 20, "second question"]
    try:
        for _ in range(2):
            await builder.prefetch(
                model=CLAUDE,
                system_prompt="Be brief.",
                history=history,
                supplied_context=(),
                user_message="second question",
            )
        built = builder.build(
            model=CLAUDE,
            system_prompt="Be brief.",
            history=history,
            supplied_context=(),
            user_message="second question",
            max_tokens=100,
        )
    finally:
        await client.aclose()
    asked = sorted(r.body["messages"][0]["content"] for r in claude_server.requests)
    assert asked == sorted(texts)  # each text once, though prefetched twice
    counted = sum(3 + 4 + math.ceil(len(text) / 4) for text in texts)
    roles = 3 * (len("system") + len("user") + len("assistant") + len("user"))
    assert built.prompt_tokens == counted + 4 * 3 + roles + 3
    # What the provider would count for the whole prompt is below it.
    body = {"system": "Be brief.", "messages": [dict(m) for m in built.messages[1:]]}
    assert scripted_anthropic.count_input_tokens(body) < built.prompt_tokens


@pytest.mark.parametrize("fault", [Fault(status=500), Fault(status=429), Fault(status=401)])
async def test_a_failing_endpoint_leaves_the_estimate(
    gemini_server: ScriptedGemini, fault: Fault
) -> None:
    gemini_server.fail_next(fault)
    client = GeminiCountTokens(gemini_server.base_url, GEMINI_KEY)
    counters = ModelTokenCounters(endpoints={"gemini": client})
    try:
        await counters.prefetch(GEMINI, ["hello there"])
        await counters.prefetch(GEMINI, ["hello again"])  # resting: not asked
    finally:
        await counters.aclose()
    assert gemini_server.calls == 1
    assert counters.for_model(GEMINI).count("hello there") == len("hello there")
