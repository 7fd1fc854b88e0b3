"""The response cache around answering: a deterministic prompt (temperature 0, no stored
history) answered before is answered again from the cache, spending no tokens. A failing
cache degrades to answering."""

from __future__ import annotations

import logging

from chater_gpt.domain import ChatResult
from chater_gpt.processing.observer import ProcessorObserver, store_degraded
from chater_gpt.processing.stages import Answer, Prompt, PromptStep
from chater_gpt.storage.cache import CachedAnswer, ResponseCache, cache_key, is_cacheable

log = logging.getLogger(__name__)


class Caching:
    def __init__(
        self, inner: PromptStep, cache: ResponseCache, observer: ProcessorObserver
    ) -> None:
        self._inner = inner
        self._cache = cache
        self._observer = observer

    async def __call__(self, prompt: Prompt) -> Answer:
        cache_id = prompt_cache_id(prompt)
        if cache_id is None:
            return await self._inner(prompt)
        result = await self._cached(cache_id)
        if result is not None:
            self._observer.request_done(
                outcome="cached",
                code="",
                model=result.model,
                backend=result.backend,
                route=prompt.route,
            )
            return Answer(result, cached=True)
        answer = await self._inner(prompt)
        await self._cache_answer(cache_id, answer.result)
        return answer

    async def _cached(self, cache_id: str) -> ChatResult | None:
        try:
            answer = await self._cache.get(cache_id)
        except Exception as exc:
            store_degraded(log, self._observer, "cache", "response cache unavailable", exc)
            return None
        if answer is None:
            self._observer.cache_miss()
            return None
        self._observer.cache_hit()
        # A cached answer spends no tokens and costs nothing: usage and cost are zero.
        return ChatResult(
            answer.text, answer.model, 0, 0, answer.finish_reason, "cache", provider=answer.provider
        )

    async def _cache_answer(self, cache_id: str, result: ChatResult) -> None:
        try:
            await self._cache.put(
                cache_id,
                CachedAnswer(result.text, result.model, result.finish_reason, result.provider),
            )
        except Exception as exc:
            store_degraded(
                log,
                self._observer,
                "cache",
                "could not store the answer in the response cache",
                exc,
            )


def prompt_cache_id(prompt: Prompt) -> str | None:
    """The prompt's cache key, or None when its answer must not be cached."""
    call = prompt.call
    if not is_cacheable(temperature=call.temperature, has_history=prompt.has_history):
        return None
    return cache_key(
        model=call.model,
        messages=call.messages,
        max_tokens=call.max_tokens,
        temperature=call.temperature,
        seed=call.seed,
        response_format=(
            call.response_format.to_openai() if call.response_format is not None else None
        ),
    )
