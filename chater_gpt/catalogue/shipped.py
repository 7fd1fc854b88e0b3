"""The models shipped in the catalogue, with their list prices (USD per million tokens:
input, output, cached input) and windows. Overridable and extendable by
MODEL_CATALOGUE_FILE (see `chater_gpt.catalogue.file`): prices change, and a price
here is only as good as the day it was read.

Standard (pay-as-you-go, non-batch, global) rates; the long-context tier where a model
has one (`LongContext`). Not counted anywhere here: batch/flex discounts, priority
surcharges, Anthropic's cache *writes* (charged here at the input price; the API
charges 1.25x for a 5-minute write), Gemini's cache storage per hour, tool fees.

Sources, read 2026-11-26 through the stored copies the project's search tool keeps
(not live pages; re-check before relying on a number):
- OpenAI: developers.openai.com/api/docs/pricing and the per-model pages
  (developers.openai.com/api/docs/models/<id>); cross-checked with the pricing tables
  of the openai_responses (hex.pm, 2025-06-03) and adk-model (docs.rs, 2026-03) SDKs.
- Anthropic: platform.claude.com/docs/en/about-claude/pricing (model pricing, cache
  hits) and platform.claude.com/docs/en/models/<model>/overview (windows, max output).
- Google: ai.google.dev/gemini-api/docs/pricing and ai.google.dev/gemini-api/docs/models
  (input/output token limits); Vertex's model pages for the 3.x windows.
Rows marked "unsure" were read from third-party pages only, or have a field (window,
cached price) no source gave; they are the best reading, not a quote.
"""

from __future__ import annotations

import dataclasses
from datetime import date

from chater_gpt.catalogue.model import LongContext, ModelInfo, PriceChange, Prices, Provider

OPENAI, ANTHROPIC, GEMINI = Provider.OPENAI, Provider.ANTHROPIC, Provider.GEMINI


def _m(
    provider: Provider,
    window: int,
    max_output: int | None,
    prices: tuple[float, float, float | None],
    *,
    vision: bool = True,
    json: bool = True,
    long: tuple[int, tuple[float, float, float | None]] | None = None,
) -> ModelInfo:
    return ModelInfo(
        provider=provider,
        context_window=window,
        max_output=max_output,
        vision=vision,
        json=json,
        prices=Prices(*prices),
        long_context=None if long is None else LongContext(long[0], Prices(*long[1])),
    )


_1M = 1_048_576  # Gemini's "1M": its input limit (the output limit is its own)

SHIPPED_MODELS: dict[str, ModelInfo] = {
    # --- OpenAI -------------------------------------------------------------------------
    "gpt-4o": _m(OPENAI, 128_000, 16_384, (2.50, 10.00, 1.25)),
    "gpt-4o-2024-05-13": _m(OPENAI, 128_000, 4_096, (5.00, 15.00, None)),  # first snapshot
    "chatgpt-4o-latest": _m(OPENAI, 128_000, 16_384, (5.00, 15.00, None)),
    "gpt-4o-mini": _m(OPENAI, 128_000, 16_384, (0.15, 0.60, 0.075)),
    "gpt-4.1": _m(OPENAI, 1_047_576, 32_768, (2.00, 8.00, 0.50)),
    "gpt-4.1-mini": _m(OPENAI, 1_047_576, 32_768, (0.40, 1.60, 0.10)),
    "gpt-4.1-nano": _m(OPENAI, 1_047_576, 32_768, (0.10, 0.40, 0.025)),
    "gpt-4.5-preview": _m(OPENAI, 128_000, 16_384, (75.00, 150.00, 37.50)),  # retired
    "gpt-5": _m(OPENAI, 400_000, 128_000, (1.25, 10.00, 0.125)),
    "gpt-5-mini": _m(OPENAI, 400_000, 128_000, (0.25, 2.00, 0.025)),
    "gpt-5-nano": _m(OPENAI, 400_000, 128_000, (0.05, 0.40, 0.005)),
    "gpt-5.1": _m(OPENAI, 400_000, 128_000, (1.25, 10.00, 0.125)),
    # gpt-5.4: prompts over 272k tokens at twice the input and 1.5x the output price.
    "gpt-5.4": _m(
        OPENAI, 1_050_000, 128_000, (2.50, 15.00, 0.25), long=(272_000, (5.00, 22.50, 0.50))
    ),
    "o1": _m(OPENAI, 200_000, 100_000, (15.00, 60.00, 7.50)),
    "o1-mini": _m(OPENAI, 128_000, 65_536, (1.10, 4.40, 0.55), vision=False, json=False),
    "o1-pro": _m(OPENAI, 200_000, 100_000, (150.00, 600.00, None)),
    "o3": _m(OPENAI, 200_000, 100_000, (2.00, 8.00, 0.50)),  # after the 2025-06 price cut
    "o3-mini": _m(OPENAI, 200_000, 100_000, (1.10, 4.40, 0.55), vision=False),
    "o3-pro": _m(OPENAI, 200_000, 100_000, (20.00, 80.00, None)),
    "o4-mini": _m(OPENAI, 200_000, 100_000, (1.10, 4.40, 0.275)),
    # Legacy, kept so that their windows stay known (and their calls priced).
    "gpt-4-turbo": _m(OPENAI, 128_000, 4_096, (10.00, 30.00, None)),
    "gpt-4-1106": _m(OPENAI, 128_000, 4_096, (10.00, 30.00, None), vision=False),
    "gpt-4-0125": _m(OPENAI, 128_000, 4_096, (10.00, 30.00, None), vision=False),
    "gpt-4": _m(OPENAI, 8_192, 8_192, (30.00, 60.00, None), vision=False, json=False),
    "gpt-4-32k": _m(OPENAI, 32_768, 32_768, (60.00, 120.00, None), vision=False, json=False),
    "gpt-3.5-turbo": _m(OPENAI, 16_385, 4_096, (0.50, 1.50, None), vision=False),
    "gpt-35-turbo": _m(OPENAI, 16_385, 4_096, (0.50, 1.50, None), vision=False),  # Azure
    # --- Anthropic (cached input = "cache hits and refreshes") ---------------------------
    # JSON: by instruction, natively (structured output) for a strict schema.
    "claude-3-haiku": _m(ANTHROPIC, 200_000, 4_096, (0.25, 1.25, 0.03)),
    "claude-3-opus": _m(ANTHROPIC, 200_000, 4_096, (15.00, 75.00, 1.50)),  # retired
    "claude-3-5-haiku": _m(ANTHROPIC, 200_000, 8_192, (0.80, 4.00, 0.08)),
    "claude-3-5-sonnet": _m(ANTHROPIC, 200_000, 8_192, (3.00, 15.00, 0.30)),  # retired
    "claude-3-7-sonnet": _m(ANTHROPIC, 200_000, 64_000, (3.00, 15.00, 0.30)),
    "claude-opus-4": _m(ANTHROPIC, 200_000, 32_000, (15.00, 75.00, 1.50)),
    "claude-opus-4-1": _m(ANTHROPIC, 200_000, 32_000, (15.00, 75.00, 1.50)),
    # Sonnet 4 and 4.5: 200k without the 1M-context beta (which would bill over 200k at 2x).
    "claude-sonnet-4": _m(ANTHROPIC, 200_000, 64_000, (3.00, 15.00, 0.30)),
    "claude-sonnet-4-5": _m(ANTHROPIC, 200_000, 64_000, (3.00, 15.00, 0.30)),
    "claude-haiku-4-5": _m(ANTHROPIC, 200_000, 64_000, (1.00, 5.00, 0.10)),
    "claude-opus-4-5": _m(ANTHROPIC, 200_000, 64_000, (5.00, 25.00, 0.50)),
    "claude-opus-4-6": _m(ANTHROPIC, 1_000_000, 128_000, (5.00, 25.00, 0.50)),
    "claude-sonnet-4-6": _m(ANTHROPIC, 1_000_000, 64_000, (3.00, 15.00, 0.30)),
    # Opus 4.7 and 4.8: prices from the pricing page; windows and max output unsure.
    "claude-opus-4-7": _m(ANTHROPIC, 1_000_000, 128_000, (5.00, 25.00, 0.50)),
    "claude-opus-4-8": _m(ANTHROPIC, 1_000_000, 128_000, (5.00, 25.00, 0.50)),
    "claude-sonnet-5": _m(ANTHROPIC, 1_000_000, 128_000, (2.00, 10.00, 0.20)),
    "claude-opus-5": _m(ANTHROPIC, 1_000_000, 128_000, (5.00, 25.00, 0.50)),
    # Sonnet 5.5: cache hits cut from $0.20 to $0.10 on 2026-10-07.
    "claude-sonnet-5-5": _m(ANTHROPIC, 1_000_000, 128_000, (2.00, 10.00, 0.10)),
    "claude-opus-5-5": _m(ANTHROPIC, 1_000_000, 128_000, (4.00, 20.00, 0.20)),
    # Haiku 5.5: a prompt (input + cache reads and writes) over 100k tokens pays 5x.
    "claude-haiku-5-5": _m(
        ANTHROPIC, 1_000_000, 128_000, (0.10, 0.50, 0.01), long=(100_000, (0.50, 2.50, 0.05))
    ),
    # --- Google Gemini (Gemini Developer API; cached input = context-cache reads) -------
    "gemini-2.0-flash": _m(GEMINI, _1M, 8_192, (0.10, 0.40, 0.025)),  # deprecated
    "gemini-2.0-flash-lite": _m(GEMINI, _1M, 8_192, (0.075, 0.30, None)),  # deprecated
    # 2.5 Pro, 3 Pro, 3.1 Pro: prompts over 200k tokens pay the higher tier.
    "gemini-2.5-pro": _m(
        GEMINI, _1M, 65_536, (1.25, 10.00, 0.125), long=(200_000, (2.50, 15.00, 0.25))
    ),
    "gemini-2.5-flash": _m(GEMINI, _1M, 65_536, (0.30, 2.50, 0.03)),
    "gemini-2.5-flash-lite": _m(GEMINI, _1M, 65_536, (0.10, 0.40, 0.01)),
    # `gemini-3-pro-preview` and `gemini-3-flash-preview` resolve to these.
    "gemini-3-pro": _m(
        GEMINI, _1M, 65_536, (2.00, 12.00, 0.20), long=(200_000, (4.00, 18.00, 0.40))
    ),
    "gemini-3-flash": _m(GEMINI, _1M, 65_536, (0.50, 3.00, 0.05)),
    # 3.1: prices from third-party copies of the pricing page; cached prices unsure.
    "gemini-3.1-pro": _m(
        GEMINI, _1M, 65_536, (2.00, 12.00, 0.20), long=(200_000, (4.00, 18.00, 0.40))
    ),
    "gemini-3.1-flash-lite": _m(GEMINI, _1M, 65_536, (0.25, 1.50, 0.025)),
    # 3.8 Flash: an introductory price through 2026-12-31, the list price from 2027-01-01.
    "gemini-3.8-flash": dataclasses.replace(
        _m(GEMINI, _1M, 65_536, (0.75, 3.75, 0.075)),
        price_changes=(PriceChange(date(2027, 1, 1), Prices(1.50, 7.50, 0.15)),),
    ),
}
