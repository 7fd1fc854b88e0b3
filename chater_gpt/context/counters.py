"""The counter of each model, by its provider: OpenAI's exact encodings, the conservative
estimate for Claude and Gemini (estimate.py), or, when configured, the provider's own
token-count endpoint with the estimate as its fallback (provider_tokens.py).

Which provider a model belongs to is asked of `provider_of` (the model catalogue, once
there is one); a model it does not know falls back to what the name says
(`estimate.provider_for_model`: `claude-*`, `gemini-*`, else OpenAI's encodings).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from chater_gpt.context.estimate import EstimatedTokenCounter, estimate_rule, provider_for_model
from chater_gpt.context.provider_tokens import ModelCountEndpoint, ProviderCountClient
from chater_gpt.context.server_tokens import ServerTokenCounter
from chater_gpt.context.tokens import BpeTokenCounters, TokenCounter

ProviderOf = Callable[[str], str | None]

# How long the estimate counts alone after a provider's endpoint failed.
ENDPOINT_RETRY_AFTER_SECONDS = 60.0


class ModelTokenCounters:
    """A `TokenCounters` over every provider (see the module doc)."""

    def __init__(
        self,
        *,
        openai: BpeTokenCounters | None = None,
        provider_of: ProviderOf | None = None,
        endpoints: Mapping[str, ProviderCountClient] | None = None,
    ) -> None:
        self._openai = openai or BpeTokenCounters()
        self._provider_of = provider_of
        self._endpoints = dict(endpoints or {})
        self._estimates: dict[str, EstimatedTokenCounter] = {}
        self._exact: dict[tuple[str, str], ServerTokenCounter] = {}
        # Prefetching matters only when some provider's counts come from its endpoint.
        self.needs_prefetch = bool(self._endpoints)

    def provider(self, model: str) -> str:
        known = self._provider_of(model) if self._provider_of is not None else None
        return known or provider_for_model(model)

    def for_model(self, model: str) -> TokenCounter:
        return self.counter_for_provider(self.provider(model), model)

    def counter_for_provider(self, provider: str, model: str = "") -> TokenCounter:
        """The counter of `model` as served by `provider` ("openai", "anthropic", "gemini";
        any other provider counts with OpenAI's encodings, as local models always have)."""
        rule = estimate_rule(provider, model)
        if rule is None:
            return self._openai.for_model(model)
        estimate = self._estimates.get(rule.name)
        if estimate is None:
            estimate = self._estimates[rule.name] = EstimatedTokenCounter(rule)
        client = self._endpoints.get(provider)
        if client is None or not model:
            return estimate
        exact = self._exact.get((provider, model))
        if exact is None:
            exact = ServerTokenCounter(
                ModelCountEndpoint(client, model),
                estimate,
                retry_after=ENDPOINT_RETRY_AFTER_SECONDS,
            )
            self._exact[(provider, model)] = exact
        return exact

    async def prefetch(self, model: str, texts: Iterable[str]) -> None:
        counter = self.for_model(model)
        if isinstance(counter, ServerTokenCounter):
            # The endpoints refuse empty and blank messages; the estimate counts those.
            await counter.prefetch(text for text in texts if text.strip())

    async def aclose(self) -> None:
        for client in self._endpoints.values():
            await client.aclose()
