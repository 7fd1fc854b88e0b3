"""The Claude and Gemini estimate is an upper bound: of Claude's counts as reconstructed
offline (pinned), of the scripted servers' documented counting rules, of the providers'
published image rules; and it cuts and dispatches as a counter must."""

from __future__ import annotations

import base64
import functools
import io
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from chater_gpt.backends.anthropic_wire import messages_body
from chater_gpt.backends.gemini import request_of
from chater_gpt.context.builder import ContextBuilder
from chater_gpt.context.counters import ModelTokenCounters
from chater_gpt.context.estimate import (
    CLAUDE_TOKENS_PER_BYTE,
    GEMINI_3_IMAGE_TOKENS,
    GEMINI_MAX_TILED_TOKENS,
    EstimatedTokenCounter,
    anthropic_image_tokens,
    estimate_rule,
    gemini_image_tokens,
    model_version,
    provider_for_model,
    utf8_bound,
)
from chater_gpt.context.tokens import REPLY_PRIMING_TOKENS, BpeTokenCounter, message_tokens
from chater_gpt.domain import ChatCall, ImageInput, Turn
from chater_gpt.errors import ContextTooLong
from tests.support import scripted_anthropic, scripted_gemini

CLAUDE_MODELS = ("claude-3-5-haiku-20241022", "claude-sonnet-4-5", "claude-opus-4-7")
GEMINI_MODELS = ("gemini-2.5-flash", "gemini-3-pro-preview", "gemini-flash-latest")

# Claude's content tokens for one user message, counted with ctok 1.3.0 (an offline
# reconstruction of Claude's `count_tokens`, MIT; it needs Python 3.12, so its counts
# are pinned here) for its three families: Claude 3 to Opus 4.6, Opus 4.7, Opus 4.8+.
# The message frame around them is 7, 11 and 6 tokens.
CLAUDE_FRAMES = (7, 11, 6)
CLAUDE_CORPUS: list[tuple[str, int, int, int]] = [
    ("Hello, world! How are you today?", 9, 11, 11),
    (
        (
            "The quick brown fox jumps over the lazy dog. It was the best "
            "of times, it was the worst of times; it was the age of wisdom."
        ),
        32,
        43,
        43,
    ),
    (
        (
            "def fibonacci(n: int) -> int:\n    if n < 2:\n        re"
            "turn n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n"
        ),
        40,
        53,
        53,
    ),
    (
        (
            "for (let i = 0; i < arr.length; i++) { if (ar"
            "r[i] === null) continue; sum += arr[i] * 2; }"
        ),
        39,
        45,
        45,
    ),
    (
        (
            '{"type": "food_processing", "items": [{"name": "apple", "'
            'kcal": 52.1}, {"name": "rice", "kcal": 130}], "ok": true}'
        ),
        48,
        56,
        56,
    ),
    ("你好，世界！今天天气很好。我们去公园散步吧。", 24, 24, 23),  # noqa: RUF001
    ("日本語のテキストです。東京は大きな都市です。", 20, 20, 19),
    ("안녕하세요, 세계! 오늘 날씨가 좋네요.", 27, 27, 26),
    ("Привет, мир! Как дела? Всё хорошо.", 20, 20, 20),
    ("مرحبا بالعالم! كيف حالك اليوم؟", 23, 23, 23),
    ("😀👍🏽👨\u200d👩\u200d👧\u200d👦 emoji 🇺🇸🎉🔥 ✨", 41, 43, 42),
    (
        ("3.14159265358979 2718281828 1,234,567.89 0xDEADBEEF 2026-11-25T12:00:00Z 192.168.0.1"),
        53,
        54,
        53,
    ),
    (("          \t\t\t\n\n\n\n    lots   of    whitespace        runs   \n"), 13, 17, 17),
    ("naïve café résumé Ångström Æsir œuvre façade", 19, 21, 21),
    ("<|endoftext|> <|im_start|>system hi<|im_end|>", 23, 25, 25),
    ("Ⱥ Ⱦ ǅ ÀÉÎ İ ẞ Ֆ ﷺ ﬁ Ω", 48, 48, 48),
    ("ȺȾȺȾ\tȺ\tȾ.Ⱥ0Ⱦ", 43, 38, 38),
    (
        (
            "SELECT id, name FROM users WHERE email LIKE '%@"
            "example.com' ORDER BY created_at DESC LIMIT 10;"
        ),
        27,
        47,
        47,
    ),
    (
        ("https://example.com/path/to/page?query=value&other=123#fragment user@example.com"),
        26,
        28,
        28,
    ),
    ("A B C D E F G H I J K L M N O P Q R S T U V W X Y Z", 26, 29, 29),
    ("1 2 3 4 5 6 7 8 9 0 11 22 333 4444 55555", 32, 32, 31),
    (
        ("aAaAaAaAaAaAaAaAaAaA NASA likes tokenizers HTTPServerError camelCaseIdentifier"),
        33,
        47,
        47,
    ),
    ("a", 1, 1, 1),
    ("A", 1, 1, 1),
    ("Ⱥ", 6, 6, 6),  # the worst character found: 3 tokens per byte
    ("6", 2, 2, 1),
    ("ZJ", 2, 4, 4),
]


def claude() -> EstimatedTokenCounter:
    rule = estimate_rule("anthropic", "claude-opus-4-7")
    assert rule is not None
    return EstimatedTokenCounter(rule)


def gemini() -> EstimatedTokenCounter:
    rule = estimate_rule("gemini", "gemini-2.5-flash")
    assert rule is not None
    return EstimatedTokenCounter(rule)


@pytest.mark.parametrize(("text", "v3", "v47", "v48"), CLAUDE_CORPUS)
def test_the_claude_bound_covers_the_reconstructed_counts(
    text: str, v3: int, v47: int, v48: int
) -> None:
    counter = claude()
    assert counter.count(text) >= max(v3, v47, v48)
    # A whole message, as the builder counts it, covers the provider's frame too.
    prompt = message_tokens(counter, "user", text) + REPLY_PRIMING_TOKENS
    for content, frame in zip((v3, v47, v48), CLAUDE_FRAMES, strict=True):
        assert prompt >= content + frame


def test_real_text_is_far_below_the_claude_bound() -> None:
    """What the bound costs: real text is 0.3 to 0.8 tokens a byte on Claude."""
    ratios = [max(row[1:]) / len(row[0].encode()) for row in CLAUDE_CORPUS[:15]]
    assert max(ratios) <= 0.8 < CLAUDE_TOKENS_PER_BYTE


@pytest.mark.parametrize(
    ("text", "bound"),
    [
        ("", 0),
        ("hello", 5),
        ("naïve", 6),
        ("\ufdfa", 33),  # NFKC spells it out in 18 letters
        ("\u0958", 6),  # NFC decomposes it: 3 bytes become 6
        ("a\ud800b", 5),  # a lone surrogate counts as U+FFFD's 3 bytes
    ],
)
def test_utf8_bound(text: str, bound: int) -> None:
    assert utf8_bound(text) == bound


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200))
def test_the_bound_covers_every_form_of_any_text(text: str) -> None:
    import unicodedata

    for form in ("NFC", "NFD", "NFKC", "NFKD"):
        if form in ("NFC", "NFKC"):
            normal = unicodedata.normalize(form, text)
            assert utf8_bound(text) >= len(normal.encode("utf-8", "surrogatepass"))
    assert gemini().count(text) == utf8_bound(text)
    assert claude().count(text) == 3 * utf8_bound(text)
    # Never below OpenAI's count either: a byte-level BPE needs at least one byte a token.
    assert gemini().count(text) >= BpeTokenCounter("o200k_base").count(text)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=120), limit=st.integers(0, 400))
def test_truncate_keeps_the_longest_prefix_within_the_limit(text: str, limit: int) -> None:
    for counter in (claude(), gemini()):
        prefix = counter.truncate(text, limit)
        assert text.startswith(prefix)
        assert counter.count(prefix) <= limit
        if prefix != text:
            assert counter.count(text[: len(prefix) + 1]) > limit


# --- images -----------------------------------------------------------------------------


def image(width: int | None, height: int | None) -> ImageInput:
    return ImageInput("data:image/png;base64,AA==", "image/png", width, height)


@pytest.mark.parametrize(
    ("width", "height", "hires", "tokens"),
    [
        (200, 200, False, 54),  # the vision page's table: ~54
        (1000, 1000, False, 1334),  # ~1334
        (1092, 1092, False, 1590),  # ~1590
        (4000, 4000, False, 1600),  # scaled to 1568x1568, capped at ~1,600
        (None, None, False, 1600),  # a remote URL: the largest
        (2000, 2000, True, 5000),  # 5,334 by area, capped at 3.75 MP
        (2576, 1000, True, 3435),
        (None, None, True, 5000),
    ],
)
def test_anthropic_image_rule(
    width: int | None, height: int | None, hires: bool, tokens: int
) -> None:
    assert anthropic_image_tokens(image(width, height), hires=hires) == tokens


@pytest.mark.parametrize(
    ("width", "height", "version", "tokens"),
    [
        (384, 384, (2, 5), 258),  # within 384 px: one image token block
        (385, 100, (2, 5), 258),  # one 768-px tile
        (1000, 1000, (2, 0), 4 * 258),
        (6144, 3072, (2, 5), 8 * 258),  # fitted into 3072 px: 4x2 tiles
        (None, None, (2, 5), GEMINI_MAX_TILED_TOKENS),
        (100, 100, (3, 0), GEMINI_3_IMAGE_TOKENS),
        (100, 100, None, GEMINI_3_IMAGE_TOKENS),  # unknown version: the larger rule
        (None, None, None, GEMINI_MAX_TILED_TOKENS),
    ],
)
def test_gemini_image_rule(
    width: int | None, height: int | None, version: tuple[int, int] | None, tokens: int
) -> None:
    assert gemini_image_tokens(image(width, height), version=version) == tokens


@settings(max_examples=300, deadline=None)
@given(width=st.integers(1, 8000), height=st.integers(1, 8000))
def test_image_rules_cover_the_scripted_servers(width: int, height: int) -> None:
    for model in CLAUDE_MODELS:
        assert claude_counter(model).image_tokens(image(width, height)) >= (
            scripted_anthropic.image_tokens(width, height)
        )
    if max(width, height) <= 3072:  # the scripted server does not fit large images first
        for model in GEMINI_MODELS:
            assert gemini_counter(model).image_tokens(image(width, height)) >= (
                scripted_gemini.image_tokens(width, height)
            )


def claude_counter(model: str) -> Any:
    return ModelTokenCounters().for_model(model)


def gemini_counter(model: str) -> Any:
    return ModelTokenCounters().for_model(model)


# --- which counter ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "provider", "family"),
    [
        ("gpt-4o-mini", "openai", None),
        ("smollm2-135m-instruct", "openai", None),
        ("claude-3-5-sonnet-20241022", "anthropic", "claude"),
        ("claude-sonnet-4-20250514", "anthropic", "claude"),
        ("claude-haiku-4-5", "anthropic", "claude"),
        ("claude-opus-4-7", "anthropic", "claude-hires"),
        ("claude-sonnet-5", "anthropic", "claude-hires"),
        ("anthropic/claude-latest", "anthropic", "claude-hires"),
        ("gemini-2.5-flash", "gemini", "gemini-2"),
        ("models/gemini-1.5-pro-002", "gemini", "gemini-2"),
        ("gemini-3.5-flash", "gemini", "gemini-3"),
        ("gemini-flash-latest", "gemini", "gemini"),
    ],
)
def test_provider_and_family_by_name(model: str, provider: str, family: str | None) -> None:
    assert provider_for_model(model) == provider
    rule = estimate_rule(provider, model)
    assert (rule.name if rule else None) == family
    counter = ModelTokenCounters().for_model(model)
    assert isinstance(counter, BpeTokenCounter if family is None else EstimatedTokenCounter)


def test_versions_skip_dates() -> None:
    assert model_version("claude-sonnet-4-20250514", "claude") == (4, 0)
    assert model_version("claude-3-7-sonnet-20250219", "claude") == (3, 7)
    assert model_version("gemini-2.0-flash-001", "gemini") == (2, 0)
    assert model_version("claude-latest", "claude") is None


def test_the_catalogue_names_the_provider() -> None:
    """A provider hint wins over the name (the catalogue will know `my-proxy-model`)."""
    counters = ModelTokenCounters(provider_of={"house-model": "anthropic"}.get)
    assert isinstance(counters.for_model("house-model"), EstimatedTokenCounter)
    assert isinstance(counters.for_model("claude-opus-4-7"), EstimatedTokenCounter)
    assert isinstance(counters.for_model("gpt-4o"), BpeTokenCounter)
    assert isinstance(counters.counter_for_provider("gemini"), EstimatedTokenCounter)
    assert isinstance(counters.counter_for_provider("openai", "gpt-4o"), BpeTokenCounter)
    assert not counters.needs_prefetch


# --- the builder against the scripted servers' counting rules ---------------------------


@functools.cache
def png_url(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


words = st.sampled_from(
    ["hello ", "你好", "😀 ", "Ⱥ", "naïve ", "\n", "x", "    ", '{"k": 1}, ', "12345 "]
)
texts = st.one_of(
    st.text(max_size=40),
    st.builds(lambda w, n: w * n, words, st.integers(1, 300)),
)
said = texts.map(lambda text: text + " ok")  # never blank: the APIs refuse blank turns
pairs = st.lists(st.tuples(said, said), max_size=6)
sizes = st.sampled_from([(32, 16), (384, 384), (800, 600), (1600, 1200), (3000, 500)])


def built_call(model: str, window: int, data: Any) -> tuple[ChatCall, int] | None:
    system_prompt = data.draw(texts)
    history = [t for u, a in data.draw(pairs) for t in (Turn("user", u), Turn("assistant", a))]
    shapes = data.draw(st.lists(sizes, max_size=2))
    images = [ImageInput(png_url(w, h), "image/png", w, h) for w, h in shapes]
    try:
        built = ContextBuilder(window).build(
            model=model,
            system_prompt=system_prompt,
            history=history,
            supplied_context=(),
            user_message=data.draw(said),
            images=tuple(images),
            max_tokens=64,
        )
    except ContextTooLong:
        event("context too long")
        return None
    event(f"dropped={bool(built.dropped_turns)} truncated={built.truncated} images={len(images)}")
    call = ChatCall(model=model, messages=built.messages, max_tokens=64, temperature=0.0)
    return call, built.prompt_tokens


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=st.sampled_from(CLAUDE_MODELS), window=st.integers(4000, 200_000), data=st.data())
def test_claude_prompts_cover_the_scripted_anthropic_count(
    model: str, window: int, data: Any
) -> None:
    built = built_call(model, window, data)
    if built is not None:
        call, prompt_tokens = built
        body = messages_body(call, send_temperature=False)
        assert scripted_anthropic.count_input_tokens(body) <= prompt_tokens


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=st.sampled_from(GEMINI_MODELS), window=st.integers(4000, 200_000), data=st.data())
def test_gemini_prompts_cover_the_scripted_gemini_count(model: str, window: int, data: Any) -> None:
    built = built_call(model, window, data)
    if built is not None:
        call, prompt_tokens = built
        contents, config = request_of(call)
        body: dict[str, Any] = {
            "contents": [c.model_dump(mode="json", exclude_none=True) for c in contents]
        }
        if config.system_instruction is not None:
            system = config.system_instruction
            assert not isinstance(system, str | list)
            body["systemInstruction"] = system.model_dump(mode="json", exclude_none=True)
        assert scripted_gemini.count_prompt_tokens(body) <= prompt_tokens


def test_scripted_counts_are_far_below_the_bound() -> None:
    """chars/4 (the scripted servers, Google's "about 4 characters a token") is 12 times
    under the Claude bound for ASCII: the margin the estimate pays for safety."""
    text = "The quick brown fox jumps over the lazy dog. " * 20
    assert claude().count(text) == 12 * math.ceil(len(text) / 4)


def test_long_non_ascii_bounds_are_cached_and_bounded() -> None:
    rule = estimate_rule("gemini", "gemini-2.5-flash")
    assert rule is not None
    counter = EstimatedTokenCounter(rule, cache_size=2)
    texts = [f"{i} " + "\uff0cnaïve 你好 " * 100 for i in range(4)]  # a full-width comma: NFKC
    counts = [counter.count(text) for text in texts]
    assert counts == [counter.count(text) for text in texts] == [utf8_bound(t) for t in texts]
    assert len(counter._cache) == 2
    assert counter.count("x" * 1000) == 1000  # ASCII is not cached: its length is its bound
    assert len(counter._cache) == 2
