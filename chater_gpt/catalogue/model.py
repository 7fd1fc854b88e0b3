"""The catalogue's types and its lookup: model name → `ModelInfo` (provider, context
window, capabilities, prices), and a call's cost in USD from its usage.

Lookup (`ModelCatalogue.lookup`): the exact name, else the longest known name the
model starts with, followed by `-`, `@` or `:` (dated snapshots and aliases:
`gpt-4o-2024-08-06` and `gpt-4o-latest` are `gpt-4o`; `claude-sonnet-4-5-20250929`
is `claude-sonnet-4-5`; `claude-3-5-sonnet@20240620` is `claude-3-5-sonnet`). Case is
ignored, a fine-tune (`ft:gpt-4o-mini:org::id`) is its base model and a provider or
resource prefix (`openai/gpt-4o`, `models/gemini-2.5-flash`) is dropped. A name that
only *starts* like a known one (`gpt-5.4` is not `gpt-5`) is unknown: an unknown
model has no provider (the default backend serves it), no window of its own, and
costs nothing.

Prices may change on a known day (an introductory price ending, a cut): a model's
`price_changes` say from which UTC day on which prices apply, so a call is priced at
the list price of the day it is made, and a daily money budget never spans two prices
of one model.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from types import MappingProxyType

TOKENS_PER_PRICE_UNIT = 1_000_000  # prices are USD per million tokens
_SNAPSHOT_SEPARATORS = ("-", "@", ":")
_MEMO_LIMIT = 4096


class Provider(StrEnum):
    """Who serves a model: the backend its calls are routed to."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"
    KOBOLDCPP = "koboldcpp"  # a local server (it serves its one loaded model)


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per million tokens. `cached_input`: prompt tokens read from the provider's
    prompt cache (OpenAI's cached tokens, Anthropic's cache reads, Gemini's cached
    content); None when the provider has no discount for them (the input price)."""

    input: float
    output: float
    cached_input: float | None = None

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_prompt_tokens: int) -> float:
        prompt = max(prompt_tokens, 0)
        cached = min(max(cached_prompt_tokens, 0), prompt)
        cached_price = self.input if self.cached_input is None else self.cached_input
        micro = (
            (prompt - cached) * self.input
            + cached * cached_price
            + max(completion_tokens, 0) * self.output
        )
        return micro / TOKENS_PER_PRICE_UNIT


@dataclass(frozen=True, slots=True)
class LongContext:
    """A second price tier: a call whose prompt is over `above` tokens pays `prices` for
    all its tokens (Gemini Pro over 200k, Claude Haiku 5.5 over 100k, ...)."""

    above: int
    prices: Prices


@dataclass(frozen=True, slots=True)
class PriceChange:
    """From the UTC day `effective` on, the model's list prices are `prices`; its
    long-context tier becomes `long_context` when given, else stays as it was."""

    effective: date
    prices: Prices
    long_context: LongContext | None = None


def utc_today() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True, slots=True)
class ModelInfo:
    provider: Provider
    context_window: int  # prompt + completion, in tokens
    max_output: int | None = None
    vision: bool = True  # takes images
    json: bool = True  # answers in JSON natively (JSON mode, structured output)
    prices: Prices | None = None  # None: unknown, the model costs nothing here
    long_context: LongContext | None = None
    price_changes: tuple[PriceChange, ...] = ()  # by effective day, earliest first

    def tiers_on(self, day: date) -> tuple[Prices | None, LongContext | None]:
        """The prices and the long-context tier in force on `day`."""
        prices, long_context = self.prices, self.long_context
        for change in self.price_changes:
            if change.effective > day:
                break
            prices = change.prices
            long_context = change.long_context or long_context
        return prices, long_context

    def cost_usd(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        cached_prompt_tokens: int = 0,
        *,
        day: date | None = None,
    ) -> float:
        """At the prices of `day` (UTC; today when not given)."""
        prices, long_context = self.tiers_on(day or utc_today())
        if long_context is not None and prompt_tokens > long_context.above:
            prices = long_context.prices
        if prices is None:
            return 0.0
        return prices.cost(prompt_tokens, completion_tokens, cached_prompt_tokens)


def base_name(model: str) -> str:
    """`ft:gpt-4o-mini:org::id` → `gpt-4o-mini`; `openai/gpt-4o` → `gpt-4o`; lower case."""
    name = model.strip().lower()
    if name.startswith("ft:"):
        name = name[3:].split(":", 1)[0]
    return name.rsplit("/", 1)[-1]


class ModelCatalogue:
    """An immutable table of models, looked up by exact name or snapshot prefix."""

    def __init__(self, models: Mapping[str, ModelInfo]) -> None:
        self._models = MappingProxyType({name.lower(): info for name, info in models.items()})
        # Longest first: the first prefix that matches is the longest.
        self._by_length = sorted(self._models, key=len, reverse=True)
        self._memo: dict[str, str | None] = {}

    def __deepcopy__(self, memo: dict[int, object]) -> ModelCatalogue:
        return self  # immutable: a copy is the same table

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.resolve(model) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)

    @property
    def models(self) -> Mapping[str, ModelInfo]:
        return self._models

    def resolve(self, model: str) -> str | None:
        """The catalogue's name for `model` (exact, else its longest snapshot prefix)."""
        if model in self._memo:
            return self._memo[model]
        found = self._resolve(model)
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        self._memo[model] = found
        return found

    def _resolve(self, model: str) -> str | None:
        for name in dict.fromkeys((model.strip().lower(), base_name(model))):
            if name in self._models:
                return name
        name = base_name(model)
        for known in self._by_length:
            if name.startswith(known) and name[len(known) : len(known) + 1] in (
                _SNAPSHOT_SEPARATORS
            ):
                return known
        return None

    def lookup(self, model: str) -> ModelInfo | None:
        name = self.resolve(model)
        return None if name is None else self._models[name]

    def provider_of(self, model: str) -> Provider | None:
        info = self.lookup(model)
        return None if info is None else info.provider

    def context_window(self, model: str) -> int | None:
        """The model's own window, or None when unknown (CONTEXT_WINDOW alone applies)."""
        info = self.lookup(model)
        return None if info is None else info.context_window

    def cost_usd(
        self,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        cached_prompt_tokens: int = 0,
        *,
        day: date | None = None,
    ) -> float:
        """What a call costs in USD at the model's list prices of `day` (UTC; today when
        not given); 0.0 for a model the catalogue does not know or prices.
        `cached_prompt_tokens` (part of `prompt_tokens`) are charged at the cached-input
        price. For a worst case, pass the prompt's tokens and `max_tokens` as the
        completion."""
        info = self.lookup(model)
        if info is None:
            return 0.0
        return info.cost_usd(prompt_tokens, completion_tokens, cached_prompt_tokens, day=day)

    def with_models(self, models: Mapping[str, ModelInfo]) -> ModelCatalogue:
        """A catalogue with `models` added, replacing entries of the same name."""
        return ModelCatalogue({**self._models, **{k.lower(): v for k, v in models.items()}})
