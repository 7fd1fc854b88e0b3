"""Conservative token counts for models whose tokenizer is not public: Claude and Gemini.

Anthropic and Google publish no tokenizer for their current models, so their tokens are
bounded from above, never guessed: an over-count only trims history earlier (and
reserves more budget, settled to the real usage afterwards); an under-count could
overflow the window at the provider. The bound is in UTF-8 bytes of the text, taken in
the longest of its raw, NFC and NFKC forms (a tokenizer that normalizes first counts
the normalized text; NFKC can turn one character into up to 18):

- Gemini: 1 token per byte. Google's own SDK counts Gemini 2.x and 3.0 with the Gemma 3
  SentencePiece model and later models with Gemma 4's tokenizer (google-genai's local
  tokenizer); SentencePiece with byte fallback spends at most one token per byte of its
  input (Gemma 4's tokenizer is assumed to keep that property: no offline copy to check).
- Claude: 3 tokens per byte. Claude's tokenizer is not byte-level BPE: it writes word
  and case markers into the text (`⟨bow⟩`, `⟨eow⟩`, `⟨shift⟩`, `⟨caps⟩`) and falls back
  to bytes of the lower-cased form, so a text can cost more tokens than bytes: `Ⱥ` (2
  bytes, lower-cased to 3) is 6 tokens. The factor is the largest measured on ctok 1.3.0
  (an offline reconstruction of Claude's counts, checked against 2.3 million recorded
  `count_tokens` answers with no under-count), over every character of the Basic
  Multilingual Plane alone and repeated, for the Claude 3 to Opus 4.6 and Opus 4.7+
  vocabularies. Real text costs far less: 0.3 to 0.8 tokens per byte on the corpus of
  tests/unit/context/test_estimate.py, so the bound over-counts English about 9 times.
  `PROVIDER_TOKEN_COUNTS` asks the provider for exact counts instead (provider_tokens.py).

Images follow each provider's published rule (see `anthropic_image_tokens` and
`gemini_image_tokens`); an image of unknown size (a remote URL) counts as the largest.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from chater_gpt.domain import ImageInput

OPENAI = "openai"
ANTHROPIC = "anthropic"
GEMINI = "gemini"

CLAUDE_TOKENS_PER_BYTE = 3
GEMINI_TOKENS_PER_BYTE = 1

# Anthropic's vision page: tokens = width * height / 750, after scaling the image down
# to its model's long edge; up to Opus 4.6 that is 1568 px and "~1,600 tokens", from
# Opus 4.7 on 2576 px and about 3.75 megapixels (5,000 tokens).
CLAUDE_PIXELS_PER_TOKEN = 750
CLAUDE_LONG_EDGE, CLAUDE_MAX_IMAGE_TOKENS = 1568, 1600
CLAUDE_HIRES_LONG_EDGE, CLAUDE_HIRES_MAX_IMAGE_TOKENS = 2576, 5000
_CLAUDE_HIRES_FROM = (4, 7)

# Gemini's token page: an image whose sides are both at most 384 px is 258 tokens; a
# larger one is cut into 768x768 tiles of 258 tokens each, after being scaled to fit
# 3072x3072 (Vertex AI's image understanding page). From Gemini 3 on an image costs
# what its media resolution allows: 1,120 tokens at the default (high) for images;
# the estimate takes the larger of both rules there.
GEMINI_TILE_TOKENS = 258
_GEMINI_SMALL, _GEMINI_TILE, _GEMINI_BOX = 384, 768, 3072
GEMINI_MAX_TILED_TOKENS = GEMINI_TILE_TOKENS * (_GEMINI_BOX // _GEMINI_TILE) ** 2
GEMINI_3_IMAGE_TOKENS = 1120

_VERSION = re.compile(r"(\d+)(?:[-.](\d)(?!\d))?")


def provider_for_model(model: str) -> str:
    """The provider a model's name says (`claude-*` Anthropic, `gemini-*` Google), else
    "openai": OpenAI's encodings count every other model, as they always have."""
    name = model.strip().lower()
    if "claude" in name:
        return ANTHROPIC
    if "gemini" in name:
        return GEMINI
    return OPENAI


def model_version(model: str, family: str) -> tuple[int, int] | None:
    """(major, minor) of `claude-opus-4-7`, `claude-3-5-sonnet-20241022`, `gemini-2.5-pro`;
    None when the name carries none. Dates (8 digits) are not versions."""
    name = model.strip().lower()
    start = name.find(family)
    if start < 0:
        return None
    for match in _VERSION.finditer(name, start + len(family)):
        if len(match.group(1)) <= 2:
            return int(match.group(1)), int(match.group(2) or 0)
    return None


def utf8_bound(text: str) -> int:
    """UTF-8 bytes of the longest of the text's raw, NFC and NFKC forms (lone surrogates
    count as the 3 bytes of U+FFFD)."""
    if text.isascii():
        return len(text)  # ASCII is its own NFC and NFKC
    forms = [text]
    forms.extend(
        unicodedata.normalize(form, text)
        for form in ("NFC", "NFKC")
        if not unicodedata.is_normalized(form, text)
    )
    return max(len(form.encode("utf-8", "surrogatepass")) for form in forms)


def anthropic_image_tokens(image: ImageInput, *, hires: bool = True) -> int:
    """Anthropic's rule: scaled to the long edge, then width * height / 750, capped."""
    long_edge, cap = (
        (CLAUDE_HIRES_LONG_EDGE, CLAUDE_HIRES_MAX_IMAGE_TOKENS)
        if hires
        else (CLAUDE_LONG_EDGE, CLAUDE_MAX_IMAGE_TOKENS)
    )
    if not image.width or not image.height:
        return cap
    scale = min(1.0, long_edge / max(image.width, image.height))
    area = (image.width * scale) * (image.height * scale)
    return min(math.ceil(area / CLAUDE_PIXELS_PER_TOKEN), cap)


def gemini_tiled_image_tokens(image: ImageInput) -> int:
    """Gemini 1.x/2.x: 258 for a small image, else 258 per 768-px tile (see above)."""
    if not image.width or not image.height:
        return GEMINI_MAX_TILED_TOKENS
    width, height = float(image.width), float(image.height)
    if max(width, height) > _GEMINI_BOX:
        scale = _GEMINI_BOX / max(width, height)
        width, height = width * scale, height * scale
    if width <= _GEMINI_SMALL and height <= _GEMINI_SMALL:
        return GEMINI_TILE_TOKENS
    return math.ceil(width / _GEMINI_TILE) * math.ceil(height / _GEMINI_TILE) * GEMINI_TILE_TOKENS


def gemini_image_tokens(image: ImageInput, *, version: tuple[int, int] | None = None) -> int:
    """The tiled rule up to Gemini 2.x; from Gemini 3 on (and for an unknown version) the
    larger of it and 1,120, as a bound of both rules."""
    tiled = gemini_tiled_image_tokens(image)
    if version is not None and version[0] < 3:
        return tiled
    return max(tiled, GEMINI_3_IMAGE_TOKENS)


@dataclass(frozen=True, slots=True)
class EstimateRule:
    """How one model family is bounded: tokens per byte of text, tokens per image."""

    name: str
    tokens_per_byte: int
    image_tokens: Callable[[ImageInput], int]


def estimate_rule(provider: str, model: str = "") -> EstimateRule | None:
    """The rule of a Claude or Gemini model (by its version where the image rule depends
    on it; an unknown version gets the larger rule); None for any other provider."""
    if provider == ANTHROPIC:
        version = model_version(model, "claude")
        hires = version is None or version >= _CLAUDE_HIRES_FROM
        return EstimateRule(
            "claude-hires" if hires else "claude",
            CLAUDE_TOKENS_PER_BYTE,
            lambda image: anthropic_image_tokens(image, hires=hires),
        )
    if provider == GEMINI:
        version = model_version(model, "gemini")
        family = "gemini" if version is None else ("gemini-3" if version[0] >= 3 else "gemini-2")
        return EstimateRule(
            family,
            GEMINI_TOKENS_PER_BYTE,
            lambda image: gemini_image_tokens(image, version=version),
        )
    return None


class EstimatedTokenCounter:
    """A `TokenCounter` whose counts are `tokens_per_byte` x `utf8_bound(text)`.

    Normalizing a long non-ASCII text costs about as much as encoding it (13 ms for
    300 kB of CJK), and stored history is counted again on every request, so the bounds
    of longer non-ASCII texts are kept in a bounded cache keyed by a digest (no text).
    """

    _CACHE_MIN_CHARS = 256

    def __init__(self, rule: EstimateRule, *, cache_size: int = 4096) -> None:
        self.rule = rule
        self._factor = rule.tokens_per_byte
        self._cache: OrderedDict[bytes, int] = OrderedDict()
        self._cache_size = cache_size

    def count(self, text: str) -> int:
        if len(text) < self._CACHE_MIN_CHARS or text.isascii():
            return self._factor * utf8_bound(text)
        key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        bound = self._cache.get(key)
        if bound is None:
            bound = self._cache[key] = utf8_bound(text)
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return self._factor * bound

    def truncate(self, text: str, max_tokens: int) -> str:
        """The longest prefix (whole code points) whose count is at most `max_tokens`."""
        if self.count(text) <= max_tokens:
            return text
        # Every code point costs at least `factor`: no longer prefix can fit.
        low, high = 0, min(len(text), max(max_tokens, 0) // self._factor)
        while low < high:
            middle = (low + high + 1) // 2
            if self.count(text[:middle]) <= max_tokens:
                low = middle
            else:
                high = middle - 1
        return text[:low]

    def image_tokens(self, image: ImageInput) -> int:
        return self.rule.image_tokens(image)
