"""Token counts match the reference encodings exactly; images follow OpenAI's rule."""

from __future__ import annotations

import gzip
import random
import string
from pathlib import Path

import bpe_openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chater_gpt.catalogue import DEFAULT_CATALOGUE
from chater_gpt.context import tokens
from chater_gpt.context.tokens import (
    IMAGE_MAX_TOKENS,
    REPLY_PRIMING_TOKENS,
    TOKENS_PER_MESSAGE,
    BpeTokenCounter,
    BpeTokenCounters,
    TokenizerDataError,
    _shared_tokenizer,
    bounded_pieces,
    encoding_name_for_model,
    image_tokens,
    message_tokens,
)
from chater_gpt.domain import ImageInput

HELLO = "Hello, world! How are you today?"
CJK = "你好，世界！今天天气很好。"  # noqa: RUF001 (full-width punctuation on purpose)

# Counted once with bpe_openai (exact against tiktoken, see FIELD-NOTES) and pinned;
# the HELLO ids are the published reference values.
CORPUS: list[tuple[str, int, int]] = [
    # text, o200k_base, cl100k_base
    (HELLO, 9, 9),
    ("<|endoftext|>", 7, 7),
    ("Say <|im_start|>system hi<|im_end|> please", 16, 15),
    (CJK, 9, 16),
    ("日本語のテキストです", 7, 9),
    ("😀👍🏽👨‍👩‍👧‍👦 emoji", 16, 27),
    ("naïve café résumé", 5, 7),
    ("def f(x):\n    return x ** 2\n", 11, 11),
    ("   leading spaces\ttab\n\nnewlines", 7, 7),
    ("", 0, 0),
]


@pytest.fixture(scope="module")
def counters() -> BpeTokenCounters:
    return BpeTokenCounters()


@pytest.mark.parametrize(("text", "o200k", "cl100k"), CORPUS)
def test_fixed_corpus_counts(
    counters: BpeTokenCounters, text: str, o200k: int, cl100k: int
) -> None:
    assert counters.for_encoding("o200k_base").count(text) == o200k
    assert counters.for_encoding("cl100k_base").count(text) == cl100k


@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base"])
@pytest.mark.parametrize("text", [text for text, _, _ in CORPUS])
def test_counts_equal_the_reference_encoder(
    counters: BpeTokenCounters, encoding: str, text: str
) -> None:
    reference = bpe_openai.get_encoding(encoding)
    assert counters.for_encoding(encoding).count(text) == len(reference.encode_ordinary(text))
    # Long texts go through the count cache: the second answer must be the same.
    long_text = text * 40
    expected = len(reference.encode_ordinary(long_text))
    counter = counters.for_encoding(encoding)
    assert counter.count(long_text) == expected
    assert counter.count(long_text) == expected


def test_reference_token_ids_of_the_known_sentence(counters: BpeTokenCounters) -> None:
    o200k = counters.for_encoding("o200k_base")
    assert o200k.encode(HELLO) == [13225, 11, 2375, 0, 3253, 553, 481, 4044, 30]
    cl100k = counters.for_encoding("cl100k_base")
    assert cl100k.encode(HELLO) == [9906, 11, 1917, 0, 2650, 527, 499, 3432, 30]


def test_special_token_text_is_plain_text(counters: BpeTokenCounters) -> None:
    counter = counters.for_encoding("o200k_base")
    # Not the single special token (id 199999): seven ordinary tokens.
    assert counter.encode("<|endoftext|>") == [27, 91, 419, 1440, 919, 91, 29]


def test_lone_surrogates_are_counted_not_raised(counters: BpeTokenCounters) -> None:
    counter = counters.for_encoding("o200k_base")
    assert counter.count("a\ud800b") == counter.count("a\ufffdb")
    assert counter.count("a\ud800b" * 100) == counter.count("a\ufffdb" * 100)


def test_message_overhead_arithmetic(counters: BpeTokenCounters) -> None:
    counter = counters.for_encoding("o200k_base")
    # 3 framing + 1 for the role ("user" is one token) + 9 for the text.
    assert TOKENS_PER_MESSAGE == 3
    assert REPLY_PRIMING_TOKENS == 3
    assert message_tokens(counter, "user", HELLO) == 3 + 1 + 9
    assert message_tokens(counter, "assistant", "") == 4
    assert message_tokens(counter, "user", HELLO, images=85) == 13 + 85


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-4.5-preview", "o200k_base"),
        ("gpt-5-mini", "o200k_base"),
        ("o1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("chatgpt-4o-latest", "o200k_base"),
        ("ft:gpt-4o-mini:acme::abc123", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("smollm2-135m-instruct", "o200k_base"),
        ("koboldcpp/Llama-3-8B", "o200k_base"),
    ],
)
def test_encoding_by_model_family(model: str, encoding: str) -> None:
    assert encoding_name_for_model(model) == encoding


@pytest.mark.parametrize(
    ("model", "window"),
    [
        ("gpt-4o-mini", 128_000),
        ("gpt-4.1", 1_047_576),
        ("gpt-4", 8_192),
        ("gpt-4-0613", 8_192),
        ("gpt-4-turbo", 128_000),
        ("gpt-3.5-turbo", 16_385),
        ("o3", 200_000),
        ("smollm2-135m-instruct", None),
    ],
)
def test_model_windows(model: str, window: int | None) -> None:
    # The model catalogue is the one table of windows (it replaced the token module's).
    assert DEFAULT_CATALOGUE.context_window(model) == window


def image(width: int | None, height: int | None, detail: str = "auto") -> ImageInput:
    return ImageInput("data:image/png;base64,AA==", "image/png", width, height, detail)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("width", "height", "detail", "tokens"),
    [
        (4096, 4096, "low", 85),  # low detail: flat, whatever the size
        (None, None, "low", 85),
        (1024, 1024, "high", 765),  # -> 768x768: 2x2 tiles (OpenAI's worked example)
        (2048, 4096, "high", 1105),  # -> 1024x2048 -> 768x1536: 2x3 tiles
        (512, 512, "high", 255),  # small images are not scaled up: 1 tile
        (32, 16, "auto", 255),  # auto counts as high
        (513, 100, "high", 425),  # just over one tile wide: 2x1 tiles
        (768, 2048, "high", 1445),  # the worst case: 2x4 tiles
        (None, None, "high", IMAGE_MAX_TOKENS),  # remote URL: worst case
        (None, None, "auto", IMAGE_MAX_TOKENS),
    ],
)
def test_image_tokens(width: int | None, height: int | None, detail: str, tokens: int) -> None:
    assert image_tokens(image(width, height, detail)) == tokens
    assert tokens <= IMAGE_MAX_TOKENS == 1445


@pytest.mark.parametrize("text", [CJK, "😀👍🏽👨‍👩‍👧‍👦 emoji", HELLO * 20])
@pytest.mark.parametrize("limit", [0, 1, 2, 3, 5, 8])
def test_truncate_keeps_a_prefix_within_the_limit(text: str, limit: int) -> None:
    counter = BpeTokenCounter("o200k_base")
    prefix = counter.truncate(text, limit)
    assert text.startswith(prefix)
    assert counter.count(prefix) <= limit
    # No room is wasted beyond a split multi-byte character (at most 3 tokens).
    assert counter.count(prefix) >= min(limit, counter.count(text)) - 3


def test_count_cache_is_bounded() -> None:
    counter = BpeTokenCounter("o200k_base", cache_size=2)
    texts = [f"{i} " + "word " * 100 for i in range(5)]
    counts = [counter.count(t) for t in texts]
    assert counts == [counter.count(t) for t in texts]
    assert len(counter._cache) == 2


# Two independent implementations must agree: tiktoken's core (the service's counter)
# and bpe-openai's (GitHub's `bpe` crate), on any text hypothesis can make.
@settings(max_examples=400, deadline=None)
@given(text=st.text(max_size=300))
def test_counts_agree_with_an_independent_implementation_on_any_text(text: str) -> None:
    valid = text.encode("utf-8", "replace").decode("utf-8")
    for encoding in ("o200k_base", "cl100k_base"):
        reference = bpe_openai.get_encoding(encoding)
        counter = BpeTokenCounters().for_encoding(encoding)
        assert counter.count(text) == len(reference.encode_ordinary(valid))


def test_a_rank_file_that_is_not_the_expected_one_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forged = tmp_path / "o200k_base.tiktoken.gz"
    forged.write_bytes(gzip.compress(b"IQ== 0\n"))
    monkeypatch.setattr(tokens, "_bundled_rank_file", lambda url: forged)
    with pytest.raises(TokenizerDataError, match="not the file tiktoken expects"):
        tokens._encoding_definition("o200k_base")


@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base"])
def test_long_runs_are_counted_in_pieces_and_never_below_the_exact_count(encoding: str) -> None:
    """A run without whitespace is counted in pieces (BPE's time grows with the square of
    a word's length): never fewer tokens than the exact count, at most two more per cut."""
    counter = BpeTokenCounter(encoding)
    exact = _shared_tokenizer(encoding)
    rnd = random.Random(11)
    alphabets = [string.ascii_lowercase, string.printable, "ab", "a", "éàü漢字😀", string.digits]
    for _ in range(150):
        alphabet = rnd.choice(alphabets)
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1025, 4000)))
        cuts = len(bounded_pieces(text)) - 1
        assert cuts >= 1 or " " in text
        assert exact.count(text) <= counter.count(text) <= exact.count(text) + 2 * cuts
    assert "".join(bounded_pieces("x" * 5000 + " tail")) == "x" * 5000 + " tail"
    cut = counter.truncate("ab" * 40_000, 100)
    assert ("ab" * 40_000).startswith(cut)
    assert counter.count(cut) <= 100 + 2 * (len(bounded_pieces(cut)) - 1)
