"""Per-model counters with a provider's endpoint: asked once per new text, only for its
own provider's models, and the estimate takes over while the endpoint fails."""

from __future__ import annotations

import aiohttp

from chater_gpt.context.builder import ContextBuilder
from chater_gpt.context.counters import ModelTokenCounters
from chater_gpt.context.estimate import EstimatedTokenCounter
from chater_gpt.context.provider_tokens import ProviderCountClient
from chater_gpt.context.server_tokens import ServerTokenCounter
from chater_gpt.context.tokens import BpeTokenCounter
from chater_gpt.domain import Turn


class WordCounts(ProviderCountClient):
    """An endpoint that counts words (+7 of framing), and records what it was asked."""

    def __init__(self, *, fail: bool = False) -> None:
        super().__init__("http://127.0.0.1:9", {}, timeout=1.0)
        self.asked: list[tuple[str, str]] = []
        self.fail = fail

    async def count(self, model: str, text: str) -> int:
        self.asked.append((model, text))
        if self.fail:
            raise aiohttp.ClientConnectionError("no endpoint here")
        return 7 + len(text.split())


async def test_the_endpoint_counts_its_providers_models_once_per_text() -> None:
    client = WordCounts()
    counters = ModelTokenCounters(endpoints={"anthropic": client})
    assert counters.needs_prefetch
    await counters.prefetch("claude-opus-4-7", ["one two three", "", "   ", "one two three"])
    await counters.prefetch("claude-opus-4-7", ["one two three"])
    await counters.prefetch("gpt-4o-mini", ["not asked"])
    await counters.prefetch("gemini-2.5-flash", ["not asked either"])
    assert client.asked == [("claude-opus-4-7", "one two three")]
    claude = counters.for_model("claude-opus-4-7")
    assert isinstance(claude, ServerTokenCounter)
    assert claude.count("one two three") == 10
    assert claude.count("never fetched") == 3 * len("never fetched")  # the estimate
    assert isinstance(counters.for_model("gpt-4o-mini"), BpeTokenCounter)
    assert isinstance(counters.for_model("gemini-2.5-flash"), EstimatedTokenCounter)
    # Each model has its own counts: another Claude model asks again.
    await counters.prefetch("claude-haiku-4-5", ["one two three"])
    assert client.asked[-1] == ("claude-haiku-4-5", "one two three")


async def test_a_failing_endpoint_leaves_the_estimate() -> None:
    client = WordCounts(fail=True)
    counters = ModelTokenCounters(endpoints={"gemini": client})
    await counters.prefetch("gemini-2.5-flash", ["hello there"])
    await counters.prefetch("gemini-2.5-flash", ["and again"])
    assert client.asked == [("gemini-2.5-flash", "hello there")]  # then it rests a while
    assert counters.for_model("gemini-2.5-flash").count("hello there") == len("hello there")


async def test_after_its_rest_the_endpoint_is_asked_again() -> None:
    client = WordCounts(fail=True)
    estimate = ModelTokenCounters().counter_for_provider("gemini")
    counter = ServerTokenCounter(_Bound(client), estimate, retry_after=0.0)
    await counter.prefetch(["a b"])
    client.fail = False
    await counter.prefetch(["a b"])
    assert len(client.asked) == 2
    assert counter.count("a b") == 9


class _Bound:
    def __init__(self, client: WordCounts) -> None:
        self._client = client

    async def count(self, text: str) -> int:
        return await self._client.count("m", text)

    async def aclose(self) -> None:
        pass


async def test_the_builder_uses_the_endpoint_counts() -> None:
    client = WordCounts()
    builder = ContextBuilder(100_000, counters=ModelTokenCounters(endpoints={"anthropic": client}))
    request = {
        "model": "claude-sonnet-4-5",
        "system_prompt": "Be brief.",
        "history": [Turn("user", "first question here"), Turn("assistant", "an answer")],
        "supplied_context": (),
        "user_message": "second question",
    }
    await builder.prefetch(**request)  # type: ignore[arg-type]
    built = builder.build(**request, max_tokens=100)  # type: ignore[arg-type]
    assert {text for _, text in client.asked} == {
        "Be brief.",
        "first question here",
        "an answer",
        "second question",
    }
    texts = (7 + 2) + (7 + 3) + (7 + 2) + (7 + 2)
    # Per message 3 of framing and the role's estimate (3 per byte), then 3 of priming.
    roles = 3 * (len("system") + len("user") + len("assistant") + len("user"))
    assert built.prompt_tokens == texts + 4 * 3 + roles + 3
