"""Routing by model: `ModelRouter` is the `LLMBackend` that sends each call to the
backend of its model's provider (the model catalogue says which), and names the
provider and the cost on the result.

- A model the catalogue knows goes to its provider's backend; one the catalogue does
  not know (a local model, a compatible server's own names) goes to the default
  backend (LLM_BACKEND).
- `pinned` models go to the default backend whatever the catalogue says: the
  configuration's own models whose provider is not configured (as before the
  catalogue, e.g. MODEL=gpt-4o-mini on a KoboldCPP server, which answers any name).
- A model of a provider that is not configured is answered `model_not_allowed`
  (not retryable), naming the provider and the setting it needs.
- A call with images to a model the catalogue lists as reading none is answered
  `invalid_request` before any backend is called (the provider would refuse it, and
  bill nothing, with a less clear 400).
- A JSON answer asked of a model the catalogue lists as without a JSON mode (`json:
  false`) is asked for in words: the call goes without the native `response_format`
  (which the provider would refuse) and with `json_output.json_instruction` as a system
  message; the processing checks (and repairs) the answer as for any model.

Cost: the catalogue's list price of the model that answered (else the one asked
for), times the usage the backend reported (cached prompt tokens at the cached
price); 0 when the model is unknown or served by another provider than the
catalogue's (a pinned model: a local server is not billed at OpenAI's prices).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from types import MappingProxyType

from chater_gpt.backends.base import LLMBackend
from chater_gpt.catalogue import ModelCatalogue, Provider
from chater_gpt.domain import ChatCall, ChatResult, DeltaSink, ResponseFormat, content_parts
from chater_gpt.errors import InvalidRequest, ModelNotAllowed
from chater_gpt.json_output import json_instruction

log = logging.getLogger(__name__)

# What each provider needs to be configured (for the error message and the logs).
PROVIDER_SETTING = {
    Provider.OPENAI: "OPENAI_API_KEY or OPENAI_BASE_URL",
    Provider.ANTHROPIC: "ANTHROPIC_API_KEY",
    Provider.GEMINI: "GEMINI_API_KEY",
    Provider.KOBOLDCPP: "KOBOLDCPP_API_URL",
}


# A result's usage counted by the service (`context.usage.UsageCounter`).
UsageCount = Callable[[ChatCall, ChatResult], Awaitable[ChatResult]]


class ModelRouter:
    def __init__(
        self,
        backends: Mapping[Provider, LLMBackend],
        *,
        default: Provider,
        catalogue: ModelCatalogue,
        pinned: Collection[str] = (),
        count_usage: UsageCount | None = None,
    ) -> None:
        if default not in backends:
            raise ValueError("the default provider needs a backend")
        self._backends = MappingProxyType(dict(backends))
        self._default = default
        self._catalogue = catalogue
        self._pinned = frozenset(pinned)
        self._count_usage = count_usage

    @property
    def name(self) -> str:
        return self._backends[self._default].name

    @property
    def providers(self) -> frozenset[Provider]:
        return frozenset(self._backends)

    @property
    def backends(self) -> tuple[LLMBackend, ...]:
        """Each backend once (a backend may serve more than one provider)."""
        return tuple({id(b): b for b in self._backends.values()}.values())

    def provider_for(self, model: str) -> Provider:
        """The provider whose backend answers `model`; raises ModelNotAllowed when the
        catalogue's provider for it is not configured."""
        if model in self._pinned:
            return self._default
        provider = self._catalogue.provider_of(model)
        if provider is None:
            return self._default
        if provider not in self._backends:
            raise ModelNotAllowed(
                f"model {model!r} is served by {provider.value}, which is not configured "
                f"here ({PROVIDER_SETTING[provider]})"
            )
        return provider

    def backend_for(self, model: str) -> LLMBackend:
        return self._backends[self.provider_for(model)]

    def _routed(self, call: ChatCall) -> tuple[Provider, ChatCall]:
        """The call's provider, and the call as that model can take it."""
        provider = self.provider_for(call.model)
        info = None if call.model in self._pinned else self._catalogue.lookup(call.model)
        if info is None:
            return provider, call
        if not info.vision and _has_images(call):
            raise InvalidRequest(
                f"model {call.model!r} reads no images (the model catalogue): send images "
                "to a vision model"
            )
        if not info.json and call.response_format is not None:
            call = _json_in_words(call, call.response_format)
        return provider, call

    async def complete(self, call: ChatCall) -> ChatResult:
        provider, call = self._routed(call)
        result = await self._backends[provider].complete(call)
        return await self._priced(provider, call, result)

    async def stream(self, call: ChatCall, on_delta: DeltaSink) -> ChatResult:
        provider, call = self._routed(call)
        result = await self._backends[provider].stream(call, on_delta)
        return await self._priced(provider, call, result)

    async def _priced(self, provider: Provider, call: ChatCall, result: ChatResult) -> ChatResult:
        # A backend that reported no usage (a stream without it): counted, then priced.
        if not result.usage_reported and self._count_usage is not None:
            result = await self._count_usage(call, result)
        return dataclasses.replace(
            result, provider=provider.value, cost_usd=self._cost(provider, call.model, result)
        )

    def _cost(self, provider: Provider, requested: str, result: ChatResult) -> float:
        info = self._catalogue.lookup(result.model) or self._catalogue.lookup(requested)
        if info is None or info.provider is not provider:
            return 0.0
        return info.cost_usd(
            result.prompt_tokens, result.completion_tokens, result.cached_prompt_tokens
        )

    async def ping(self) -> None:
        await self._backends[self._default].ping()

    async def aclose(self) -> None:
        for backend in self.backends:
            await backend.aclose()


def pinned_models(
    catalogue: ModelCatalogue,
    configured: Collection[Provider],
    named: Iterable[str],
) -> frozenset[str]:
    """Of the models the configuration names, those the catalogue gives to a provider
    that is not configured: the default backend keeps serving them."""
    return frozenset(
        model
        for model in named
        if (provider := catalogue.provider_of(model)) is not None and provider not in configured
    )


def warn_unrouted(catalogue: ModelCatalogue, pinned: Iterable[str], default: Provider) -> None:
    """At start-up, one warning per pinned model the catalogue gives to another provider:
    the default backend serves it, as before the catalogue."""
    for model in sorted(pinned):
        provider = catalogue.provider_of(model)
        if provider is not None and provider is not default:
            log.warning(
                "model %s is a %s model and %s is not set: %s serves it",
                model,
                provider.value,
                PROVIDER_SETTING[provider],
                default.value,
            )


def warn_blind(catalogue: ModelCatalogue, photo_models: Iterable[str]) -> None:
    """At start-up, one warning per model meant for photos (VISION_MODEL, a photo
    route's) that the catalogue lists as reading no images: its photos will be refused."""
    for model in sorted(set(photo_models)):
        info = catalogue.lookup(model)
        if info is not None and not info.vision:
            log.warning(
                "model %s reads no images (model catalogue): photos sent to it are refused", model
            )


def _json_in_words(call: ChatCall, fmt: ResponseFormat) -> ChatCall:
    instruction = {"role": "system", "content": json_instruction(fmt)}
    messages = [*call.messages]
    at = next((i for i, m in enumerate(messages) if m.get("role") != "system"), len(messages))
    messages.insert(at, instruction)  # after the system prompt, before the conversation
    return dataclasses.replace(call, messages=messages, response_format=None)


def _has_images(call: ChatCall) -> bool:
    return any(content_parts(message.get("content"))[1] for message in call.messages)
