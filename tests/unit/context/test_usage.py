"""A call's usage counted by the service when its backend reported none (a stream
without usage), and the router pricing what was counted."""

from __future__ import annotations

import dataclasses

from chater_gpt.backends.router import ModelRouter
from chater_gpt.catalogue import DEFAULT_CATALOGUE, Provider
from chater_gpt.context.tokens import REPLY_PRIMING_TOKENS, BpeTokenCounters, message_tokens
from chater_gpt.context.usage import UsageCounter
from chater_gpt.domain import ChatCall, ChatResult
from tests.support.fakes import ScriptedBackend

MODEL = "gpt-4o-mini"
CALL = ChatCall(
    model=MODEL,
    messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Name a yellow fruit."}]},
    ],
    max_tokens=20,
    temperature=0,
)


def unreported(text: str) -> ChatResult:
    return ChatResult(
        text=text,
        model=MODEL,
        prompt_tokens=0,
        completion_tokens=0,
        finish_reason="stop",
        backend="koboldcpp",
        usage_reported=False,
    )


async def test_the_prompt_and_the_answer_are_counted_in_the_models_tokens() -> None:
    counters = BpeTokenCounters()
    counted = await UsageCounter(counters)(CALL, unreported("A banana."))
    counter = counters.for_model(MODEL)
    prompt = REPLY_PRIMING_TOKENS + sum(
        message_tokens(counter, role, text)
        for role, text in (("system", "Be brief."), ("user", "Name a yellow fruit."))
    )
    assert (counted.prompt_tokens, counted.completion_tokens) == (
        prompt,
        counter.count("A banana."),
    )
    assert counted.usage_reported is False  # counted, not reported


async def test_a_reported_usage_is_kept() -> None:
    reported = dataclasses.replace(
        unreported("x"), prompt_tokens=7, completion_tokens=3, usage_reported=True
    )
    assert await UsageCounter(BpeTokenCounters())(CALL, reported) is reported


class Unreporting(ScriptedBackend):
    async def complete(self, call: ChatCall) -> ChatResult:
        result = await super().complete(call)
        return dataclasses.replace(
            result, prompt_tokens=0, completion_tokens=0, usage_reported=False
        )


async def test_the_router_prices_what_was_counted() -> None:
    routed = ModelRouter(
        {Provider.OPENAI: Unreporting("openai")},
        default=Provider.OPENAI,
        catalogue=DEFAULT_CATALOGUE,
        count_usage=UsageCounter(BpeTokenCounters()),
    )
    result = await routed.complete(CALL)
    assert result.prompt_tokens > 0
    assert result.completion_tokens > 0
    price = DEFAULT_CATALOGUE.lookup(MODEL)
    assert price is not None
    assert result.cost_usd == price.cost_usd(result.prompt_tokens, result.completion_tokens, 0)
    assert result.cost_usd > 0
