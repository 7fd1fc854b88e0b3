"""Exact, offline token counts: the encoding per model family, the chat-format
overhead, and OpenAI's published rule for image parts.

Counting goes through a small `TokenCounter` protocol so that a local server's own
tokenizer (llama.cpp `/tokenize`, KoboldCPP `/api/extra/tokencount`) can be plugged
in later; today every model is counted with a BPE encoding from `bpe_openai`, which
ships the exact `cl100k_base` and `o200k_base` tables (no download, unlike tiktoken).
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Iterable
from typing import Protocol

from bpe_openai import _bindings as bpe

from chater_gpt.domain import ImageInput

# The chat format as OpenAI's cookbook documents it ("How to count tokens with
# tiktoken", gpt-3.5-turbo-0613 and later, gpt-4*, gpt-4o*): every message costs
# 3 tokens of framing plus its role and content, and the reply is primed with 3.
TOKENS_PER_MESSAGE = 3
REPLY_PRIMING_TOKENS = 3

O200K = "o200k_base"
CL100K = "cl100k_base"

# Order matters: the first matching prefix wins ("gpt-4o" before "gpt-4").
_ENCODING_BY_PREFIX: tuple[tuple[str, str], ...] = (
    ("gpt-4o", O200K),
    ("chatgpt-4o", O200K),
    ("gpt-4.1", O200K),
    ("gpt-4.5", O200K),
    ("gpt-5", O200K),
    ("o1", O200K),
    ("o3", O200K),
    ("o4", O200K),
    ("gpt-4", CL100K),
    ("gpt-3.5", CL100K),
    ("gpt-35", CL100K),
    ("text-embedding-", CL100K),
)

# The model's own context window, where it is known (input + output, in tokens).
_WINDOW_BY_PREFIX: tuple[tuple[str, int], ...] = (
    ("gpt-4o", 128_000),
    ("chatgpt-4o", 128_000),
    ("gpt-4.1", 1_047_576),
    ("gpt-4.5", 128_000),
    ("gpt-5", 400_000),
    ("gpt-4-turbo", 128_000),
    ("gpt-4-1106", 128_000),
    ("gpt-4-0125", 128_000),
    ("gpt-4-32k", 32_768),
    ("gpt-4", 8_192),
    ("gpt-3.5-turbo", 16_385),
    ("gpt-35-turbo", 16_385),
    ("o1-mini", 128_000),
    ("o1", 200_000),
    ("o3", 200_000),
    ("o4", 200_000),
)

# Image parts (OpenAI vision guide, gpt-4o / gpt-4.1 family).
IMAGE_BASE_TOKENS = 85
IMAGE_TILE_TOKENS = 170
_IMAGE_BOX = 2048
_IMAGE_SHORT_SIDE = 768
_IMAGE_TILE = 512
# The worst case of the high-detail rule: a 768x2048 image after scaling, 2x4 tiles.
IMAGE_MAX_TOKENS = IMAGE_BASE_TOKENS + IMAGE_TILE_TOKENS * 8


def _base_model(model: str) -> str:
    """`ft:gpt-4o-mini:org::id` and `openai/gpt-4o` count like `gpt-4o-mini`."""
    name = model.strip().lower()
    if name.startswith("ft:"):
        name = name[3:].split(":", 1)[0]
    return name.rsplit("/", 1)[-1]


def encoding_name_for_model(model: str) -> str:
    """The BPE encoding of a model; unknown and local models get o200k_base, the closest."""
    name = _base_model(model)
    for prefix, encoding in _ENCODING_BY_PREFIX:
        if name.startswith(prefix):
            return encoding
    return O200K


def model_context_window(model: str) -> int | None:
    """The model's own window, or None when unknown (then CONTEXT_WINDOW alone applies)."""
    name = _base_model(model)
    for prefix, window in _WINDOW_BY_PREFIX:
        if name.startswith(prefix):
            return window
    return None


def image_tokens(image: ImageInput) -> int:
    """Tokens of one image part by OpenAI's published rule.

    low: a flat 85. high/auto: fit into 2048x2048, scale the shortest side down to
    768, then 170 per 512-px tile plus 85. "auto" is counted as high, the larger.
    A remote URL has no known size (the service does not fetch it), so it is
    counted as the worst case of the high rule: over-counting only trims history
    earlier, under-counting could overflow the window.
    """
    if image.detail == "low":
        return IMAGE_BASE_TOKENS
    if not image.width or not image.height:
        return IMAGE_MAX_TOKENS
    width, height = float(image.width), float(image.height)
    if max(width, height) > _IMAGE_BOX:
        scale = _IMAGE_BOX / max(width, height)
        width, height = width * scale, height * scale
    if min(width, height) > _IMAGE_SHORT_SIDE:
        scale = _IMAGE_SHORT_SIDE / min(width, height)
        width, height = width * scale, height * scale
    tiles = math.ceil(width / _IMAGE_TILE) * math.ceil(height / _IMAGE_TILE)
    return IMAGE_BASE_TOKENS + IMAGE_TILE_TOKENS * tiles


class TokenCounter(Protocol):
    """Counts and cuts text in one model's tokens.

    Implementations: `BpeTokenCounter` (exact for OpenAI models, closest for the
    rest) and `server_tokens.ServerTokenCounter` (a local server's own tokenizer).
    """

    def count(self, text: str) -> int:
        """Tokens of `text` as plain text (special-token strings are ordinary text)."""
        ...

    def truncate(self, text: str, max_tokens: int) -> str:
        """A prefix of `text` of at most `max_tokens` tokens (whole characters only)."""
        ...


class TokenCounters(Protocol):
    """Chooses the counter of a model."""

    # True when counts come from elsewhere and must be fetched before a build.
    needs_prefetch: bool

    def for_model(self, model: str) -> TokenCounter: ...

    async def prefetch(self, model: str, texts: Iterable[str]) -> None:
        """Make `count` exact for these texts (a server round trip for a server's tokenizer,
        nothing for a local encoding)."""
        ...


def _valid_utf8(text: str) -> str:
    # Lone surrogates cannot be encoded; count them as U+FFFD, as bpe_openai does.
    return text.encode("utf-8", "replace").decode("utf-8")


class _RustTokenizer(Protocol):
    """The part of `bpe_openai`'s Rust tokenizer used here (it ships no py.typed)."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, tokens: list[int]) -> str: ...

    def count(self, text: str) -> int: ...


class BpeTokenCounter:
    """A `bpe_openai` encoding with a bounded cache of counts of longer texts.

    Stored history is counted again on every request of a conversation; the cache
    (keyed by a 128-bit digest of the text, so it holds no text) makes that a hash
    instead of a BPE pass. Short texts are cheaper to count than to hash.
    """

    _CACHE_MIN_CHARS = 256

    def __init__(self, encoding_name: str, *, cache_size: int = 4096) -> None:
        self.encoding_name = encoding_name
        # The Rust tokenizer itself: the Python `Encoding` wrapper adds a 200k-token
        # cap and per-call bookkeeping the hot path does not need.
        self._tokenizer: _RustTokenizer = bpe.tokenizer_for_encoding(encoding_name)
        self._cache: OrderedDict[bytes, int] = OrderedDict()
        self._cache_size = cache_size

    def count(self, text: str) -> int:
        if len(text) < self._CACHE_MIN_CHARS:
            return self._count(text)
        key = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        counted = self._count(text)
        self._cache[key] = counted
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return counted

    def encode(self, text: str) -> list[int]:
        try:
            return self._tokenizer.encode(text)
        except UnicodeEncodeError:
            return self._tokenizer.encode(_valid_utf8(text))

    def truncate(self, text: str, max_tokens: int) -> str:
        tokens = self.encode(text)
        if len(tokens) <= max_tokens:
            return text
        keep = max(max_tokens, 0)
        # A cut can split a multi-byte character across tokens; back off until the
        # prefix decodes (at most 3 tokens: a UTF-8 character has at most 4 bytes).
        while keep > 0:
            try:
                return self._tokenizer.decode(tokens[:keep])
            except ValueError:
                keep -= 1
        return ""

    def _count(self, text: str) -> int:
        try:
            return self._tokenizer.count(text)
        except UnicodeEncodeError:
            return self._tokenizer.count(_valid_utf8(text))


class BpeTokenCounters:
    """One `BpeTokenCounter` per encoding, loaded on first use (~50 ms each)."""

    needs_prefetch = False

    def __init__(self, *, cache_size: int = 4096) -> None:
        self._cache_size = cache_size
        self._counters: dict[str, BpeTokenCounter] = {}

    def for_model(self, model: str) -> TokenCounter:
        return self.for_encoding(encoding_name_for_model(model))

    async def prefetch(self, model: str, texts: Iterable[str]) -> None:
        return None  # local encodings count on demand

    def for_encoding(self, encoding_name: str) -> BpeTokenCounter:
        counter = self._counters.get(encoding_name)
        if counter is None:
            counter = BpeTokenCounter(encoding_name, cache_size=self._cache_size)
            self._counters[encoding_name] = counter
        return counter


def message_tokens(counter: TokenCounter, role: str, text: str, images: int = 0) -> int:
    """One chat message: framing + role + text (+ the tokens of its image parts)."""
    return TOKENS_PER_MESSAGE + counter.count(role) + counter.count(text) + images
