"""The response cache as a wrapper: a cached answer is the answer, else the inner step's
answer is cached."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from chater_gpt.domain import ChatResult, ResponseFormat
from chater_gpt.processing.caching import Caching, prompt_cache_id
from chater_gpt.processing.stages import Answer, Prompt
from chater_gpt.storage.cache import CachedAnswer, InMemoryResponseCache
from tests.unit.processing.fakes import (
    RecordingObserver,
    chat_request,
    prompt_for,
    result,
)


class Inner:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, prompt: Prompt) -> Answer:
        self.calls += 1
        return Answer(result(f"answer {self.calls}", backend="openai"))


class DownCache:
    async def get(self, key: str) -> CachedAnswer | None:
        raise ConnectionError("down")

    async def put(self, key: str, answer: CachedAnswer) -> None:
        raise ConnectionError("down")


def cache() -> InMemoryResponseCache:
    return InMemoryResponseCache(ttl_seconds=60)


async def test_a_miss_is_answered_and_cached_then_a_hit_is_answered_from_the_cache() -> None:
    inner, observer = Inner(), RecordingObserver()
    caching = Caching(inner, cache(), observer)
    first = await caching(prompt_for(route="photo"))
    assert first == Answer(result("answer 1", backend="openai"))
    again = await caching(prompt_for(route="photo"))
    assert inner.calls == 1
    assert again.cached
    # A cached answer spends no tokens: usage is reported as zero.
    assert again.result == ChatResult("answer 1", "gpt-4o-mini", 0, 0, "stop", "cache")
    assert [event for event, _ in observer.events] == ["cache_miss", "cache_hit", "request_done"]
    assert observer.named("request_done") == [
        {
            "outcome": "cached",
            "code": "",
            "model": "gpt-4o-mini",
            "backend": "cache",
            "route": "photo",
        }
    ]


@pytest.mark.parametrize(
    "prompt",
    [
        prompt_for(chat_request(temperature=0.7)),
        prompt_for(has_history=True),
    ],
    ids=["not deterministic", "with stored history"],
)
async def test_an_uncacheable_prompt_is_always_answered(prompt: Prompt) -> None:
    inner, observer = Inner(), RecordingObserver()
    caching = Caching(inner, cache(), observer)
    await caching(prompt)
    await caching(prompt)
    assert inner.calls == 2
    assert observer.events == []
    assert prompt_cache_id(prompt) is None


def test_the_cache_key_covers_the_answer_format() -> None:
    plain = prompt_for()
    json = prompt_for(chat_request(response_format=ResponseFormat(type="json_object")))
    assert prompt_cache_id(plain) is not None
    assert prompt_cache_id(plain) != prompt_cache_id(json)


async def test_an_unreachable_cache_degrades_to_answering(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inner, observer = Inner(), RecordingObserver()
    with caplog.at_level(logging.WARNING):
        answer = await Caching(inner, DownCache(), observer)(prompt_for())
    assert answer.result.text == "answer 1"
    assert observer.named("store_error") == [{"store": "cache"}, {"store": "cache"}]
    assert "response cache unavailable (ConnectionError)" in caplog.text
    assert "could not store the answer in the response cache (ConnectionError)" in caplog.text


async def test_a_cached_answer_keeps_its_provider_and_costs_nothing() -> None:
    class Routed(Inner):
        async def __call__(self, prompt: Prompt) -> Answer:
            answer = await super().__call__(prompt)
            return Answer(dataclasses.replace(answer.result, provider="gemini", cost_usd=0.25))

    caching = Caching(Routed(), cache(), RecordingObserver())
    first = await caching(prompt_for())
    again = await caching(prompt_for())
    assert (first.result.provider, first.result.cost_usd) == ("gemini", 0.25)
    assert (again.result.provider, again.result.cost_usd, again.cached) == ("gemini", 0.0, True)
