"""Counting with a local server's tokenizer: asked once per text, cached, and the
closest encoding takes over when the server cannot count."""

from __future__ import annotations

import aiohttp

from chater_gpt.context.builder import ContextBuilder
from chater_gpt.context.server_tokens import ServerTokenCounter, ServerTokenCounters
from chater_gpt.context.tokens import BpeTokenCounters
from chater_gpt.domain import Turn


class WordCounter:
    """A server whose tokenizer counts words, and records what it was asked."""

    def __init__(self, *, fail: bool = False) -> None:
        self.asked: list[str] = []
        self.fail = fail

    async def count(self, text: str) -> int:
        self.asked.append(text)
        if self.fail:
            raise aiohttp.ClientConnectionError("no tokenizer here")
        return len(text.split())

    async def aclose(self) -> None:
        pass


async def test_counts_come_from_the_server_once_per_text() -> None:
    server = WordCounter()
    counter = ServerTokenCounter(server, BpeTokenCounters().for_encoding("o200k_base"))
    text = "one two three four five"
    await counter.prefetch([text, "six seven"])
    await counter.prefetch([text])  # cached: not asked again
    assert counter.count(text) == 5
    assert counter.count("six seven") == 2
    assert sorted(server.asked) == sorted([text, "six seven"])


async def test_the_closest_encoding_counts_what_the_server_could_not() -> None:
    server = WordCounter(fail=True)
    encoding = BpeTokenCounters().for_encoding("o200k_base")
    counter = ServerTokenCounter(server, encoding)
    text = "Hello, world! How are you today?"
    await counter.prefetch([text])
    assert counter.count(text) == 9 == encoding.count(text)
    await counter.prefetch(["another text"])
    assert server.asked == [text]  # after a failure the server is not asked on every request


async def test_the_builder_prefetches_what_it_will_count() -> None:
    server = WordCounter()
    builder = ContextBuilder(8000, counters=ServerTokenCounters(server))
    history = [Turn("user", "first question here"), Turn("assistant", "first answer")]
    await builder.prefetch(
        model="smollm2",
        system_prompt="Be brief.",
        history=history,
        supplied_context=(),
        user_message="second question",
    )
    built = builder.build(
        model="smollm2",
        system_prompt="Be brief.",
        history=history,
        supplied_context=(),
        user_message="second question",
        max_tokens=100,
    )
    assert set(server.asked) == {
        "Be brief.",
        "first question here",
        "first answer",
        "second question",
    }
    words = 2 + 3 + 2 + 2  # what the server counted
    # Plus, per message, 3 tokens of overhead and its role (1 token); plus 3 of priming.
    assert built.prompt_tokens == words + 4 * (3 + 1) + 3
