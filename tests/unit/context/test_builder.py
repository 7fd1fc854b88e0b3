"""The context builder: fits the window, keeps what must be kept, drops oldest first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import bpe_openai
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from chater_gpt.context.builder import TRUNCATION_MARKER, BuiltContext, ContextBuilder
from chater_gpt.context.tokens import bounded_pieces, encoding_name_for_model
from chater_gpt.domain import ImageInput, Turn
from chater_gpt.errors import ContextTooLong

MODELS = ["gpt-4o-mini", "gpt-4", "smollm2-135m-instruct"]
REFERENCE = {name: bpe_openai.get_encoding(name) for name in ("o200k_base", "cl100k_base")}


def ref_count(model: str, text: str) -> int:
    """Exact, but for runs of over MAX_RUN_CHARS non-space characters: counted in pieces,
    plus one token per cut (`tokens.bounded_pieces`, an upper bound)."""
    encoder = REFERENCE[encoding_name_for_model(model)]
    pieces = bounded_pieces(text)
    return sum(len(encoder.encode_ordinary(piece)) for piece in pieces) + len(pieces) - 1


def ref_image(part: dict[str, Any], images: Sequence[ImageInput]) -> int:
    # The test images are all 1024x1024 high (765) or low (85), see `images_st`.
    return 85 if part["image_url"]["detail"] == "low" else 765


def recount(model: str, messages: Sequence[Any], images: Sequence[ImageInput] = ()) -> int:
    """The prompt's tokens by the cookbook's rule, with the reference encoder."""
    total = 3
    for message in messages:
        total += 3 + ref_count(model, message["role"])
        content = message["content"]
        if isinstance(content, str):
            total += ref_count(model, content)
            continue
        for part in content:
            if part["type"] == "text":
                total += ref_count(model, part["text"])
            else:
                total += ref_image(part, images)
    return total


def text_of(message: Any) -> str:
    content = message["content"]
    return content if isinstance(content, str) else content[0]["text"]


def kept_or_cut(produced: str, original: str) -> bool:
    if produced == original:
        return True
    return produced.endswith(TRUNCATION_MARKER) and original.startswith(
        produced.removesuffix(TRUNCATION_MARKER)
    )


words = st.sampled_from(["hello ", "你好", "😀 ", "<|endoftext|>", "naïve ", "\n", "x"])
texts = st.one_of(
    st.text(max_size=40),
    st.builds(lambda w, n: w * n, words, st.integers(1, 600)),
)
pairs = st.lists(st.tuples(texts, texts), max_size=8)
images_st = st.lists(
    st.builds(
        lambda detail: ImageInput("data:image/png;base64,AA==", "image/png", 1024, 1024, detail),
        st.sampled_from(["low", "high"]),
    ),
    max_size=2,
)


def as_turns(exchanges: list[tuple[str, str]]) -> list[Turn]:
    return [t for u, a in exchanges for t in (Turn("user", u), Turn("assistant", a))]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.sampled_from(MODELS),
    system_prompt=texts,
    history=pairs,
    context=pairs,
    legacy_context=st.one_of(st.none(), texts.filter(str.strip)),
    user_message=texts,
    images=images_st,
    window=st.integers(256, 8000),
    max_tokens=st.integers(1, 1500),
)
def test_built_context_properties(
    model: str,
    system_prompt: str,
    history: list[tuple[str, str]],
    context: list[tuple[str, str]],
    legacy_context: str | None,
    user_message: str,
    images: list[ImageInput],
    window: int,
    max_tokens: int,
) -> None:
    stored = as_turns(history)
    # The legacy string context is one assistant turn; it comes without a question.
    supplied = [Turn("assistant", legacy_context)] if legacy_context else as_turns(context)
    builder = ContextBuilder(context_window=window)
    budget = builder.window_for(model) - max_tokens
    try:
        built = builder.build(
            model=model,
            system_prompt=system_prompt,
            history=stored,
            supplied_context=tuple(supplied),
            user_message=user_message,
            images=tuple(images),
            max_tokens=max_tokens,
        )
    except ContextTooLong:
        event("context too long")
        # Only when the window cannot hold even the framing, the images and two
        # minimal cut messages (one token of text + the marker each).
        marker = ref_count(model, TRUNCATION_MARKER)
        minimum = (
            3 + 8 + 8 + sum(ref_image({"image_url": {"detail": i.detail}}, []) for i in images)
        )
        assert budget < minimum + 2 * (marker + 1) + 1
        return

    event(f"truncated={built.truncated} dropped={bool(built.dropped_turns)}")
    messages = built.messages
    # Never more than the window, counted independently.
    assert recount(model, messages, images) == built.prompt_tokens <= budget
    # The system prompt and the current message are always there (maybe cut).
    start = 0
    if system_prompt:
        assert messages[0]["role"] == "system"
        assert kept_or_cut(text_of(messages[0]), system_prompt)
        start = 1
    assert messages[-1]["role"] == "user"
    assert kept_or_cut(text_of(messages[-1]), user_message)
    if images:
        assert [p["image_url"]["detail"] for p in messages[-1]["content"][1:]] == [
            i.detail for i in images
        ]
    # The earlier turns kept are the newest ones, in order, cut at an exchange
    # (a run of answers, history's last and the legacy context, is one message).
    earlier = stored + supplied
    middle = [Turn(m["role"], m["content"]) for m in messages[start:-1]]
    kept = earlier[built.dropped_turns :]
    if middle and len(kept) == len(middle) + 1:
        assert kept[-2].role == kept[-1].role == "assistant"
        kept = [*kept[:-2], Turn("assistant", f"{kept[-2].content}\n\n{kept[-1].content}")]
    assert middle == kept
    # Roles alternate after the system prompt and end with the new user message;
    # only a question-less legacy context may open with the assistant.
    roles = [t.role for t in middle] + ["user"]
    if roles[0] == "assistant":
        assert built.dropped_turns == 0
        assert legacy_context
        assert not history
        roles = roles[1:]
    assert roles == ["user", "assistant"] * (len(roles) // 2) + ["user"]
    # Oldest first and no more than needed: the newest dropped exchange did not fit.
    if built.dropped_turns:
        first = built.dropped_turns - 1
        while first > 0 and earlier[first].role != "user":
            first -= 1
        exchange = earlier[first : built.dropped_turns]
        extra = sum(3 + ref_count(model, t.role) + ref_count(model, t.content) for t in exchange)
        assert built.prompt_tokens + extra > budget


def test_runs_of_one_role_are_merged_so_roles_alternate() -> None:
    built = build(
        ContextBuilder(8000),
        history=[Turn("user", "q1"), Turn("assistant", "a1")],
        supplied_context=(Turn("assistant", "legacy answer"),),
    )
    assert [(m["role"], m["content"]) for m in built.messages[1:]] == [
        ("user", "q1"),
        ("assistant", "a1\n\nlegacy answer"),
        ("user", "Hello, world! How are you today?"),
    ]


def build(builder: ContextBuilder, **overrides: Any) -> BuiltContext:
    request: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "system_prompt": "You are helpful.",
        "history": [],
        "supplied_context": (),
        "user_message": "Hello, world! How are you today?",
        "images": (),
        "max_tokens": 100,
    }
    request.update(overrides)
    return builder.build(**request)


def test_order_system_history_context_question() -> None:
    built = build(
        ContextBuilder(8000),
        history=[Turn("user", "q1"), Turn("assistant", "a1")],
        supplied_context=(Turn("user", "q2"), Turn("assistant", "a2")),
    )
    assert [(m["role"], m["content"]) for m in built.messages] == [
        ("system", "You are helpful."),
        ("user", "q1"),
        ("assistant", "a1"),
        ("user", "q2"),
        ("assistant", "a2"),
        ("user", "Hello, world! How are you today?"),
    ]
    assert built.dropped_turns == 0
    assert not built.truncated


def test_prompt_tokens_follow_the_cookbook_arithmetic() -> None:
    built = build(ContextBuilder(8000))
    # system: 3 + 1 (role) + 4 ("You are helpful."); user: 3 + 1 + 9; reply priming: 3.
    assert built.prompt_tokens == (3 + 1 + 4) + (3 + 1 + 9) + 3 == 24


def test_history_is_dropped_in_whole_exchanges_oldest_first() -> None:
    long = "word " * 300  # 300 tokens
    history = [
        Turn("user", "old question"),
        Turn("assistant", long),
        Turn("user", "new question"),
        Turn("assistant", "short answer"),
    ]
    built = build(ContextBuilder(300), history=history, max_tokens=50)
    assert [m["content"] for m in built.messages[1:-1]] == ["new question", "short answer"]
    assert built.dropped_turns == 2


def test_history_goes_before_supplied_context() -> None:
    long = "word " * 200
    built = build(
        ContextBuilder(300),
        history=[Turn("user", "stored q"), Turn("assistant", long)],
        supplied_context=(Turn("user", "given q"), Turn("assistant", long)),
        max_tokens=50,
    )
    assert [m["content"] for m in built.messages[1:-1]] == ["given q", long]
    assert built.dropped_turns == 2


def test_too_long_message_is_cut_with_a_marker() -> None:
    message = "lorem ipsum " * 2000
    built = build(ContextBuilder(1000), user_message=message, max_tokens=200)
    content = built.messages[-1]["content"]
    assert content.endswith(TRUNCATION_MARKER)
    assert message.startswith(content.removesuffix(TRUNCATION_MARKER))
    assert built.truncated
    # The cut uses the room exactly (token-accurate), not a rough character estimate.
    assert 1000 - 200 - 2 <= built.prompt_tokens <= 1000 - 200


def test_too_long_system_prompt_is_cut_and_the_question_kept_whole() -> None:
    built = build(ContextBuilder(1000), system_prompt="rule " * 5000, max_tokens=200)
    assert built.messages[0]["content"].endswith(TRUNCATION_MARKER)
    assert built.messages[-1]["content"] == "Hello, world! How are you today?"
    assert built.prompt_tokens <= 800


def test_context_too_long_when_max_tokens_leaves_no_room() -> None:
    with pytest.raises(ContextTooLong) as caught:
        build(ContextBuilder(1000), max_tokens=1000)
    assert caught.value.code.value == "context_too_long"
    assert "1000" in caught.value.message


def test_context_too_long_when_images_alone_overflow() -> None:
    remote = ImageInput("https://example.com/a.png", None, None, None, "high")
    with pytest.raises(ContextTooLong):
        build(ContextBuilder(1500), images=(remote,), max_tokens=100)


def test_images_become_content_parts_and_are_counted() -> None:
    pictures = (
        ImageInput("data:image/png;base64,AA==", "image/png", 1024, 1024, "high"),
        ImageInput("https://example.com/b.jpg", None, None, None, "low"),
    )
    built = build(ContextBuilder(8000), images=pictures)
    assert built.messages[-1]["content"] == [
        {"type": "text", "text": "Hello, world! How are you today?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA==", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/b.jpg", "detail": "low"}},
    ]
    assert built.prompt_tokens == 24 + 765 + 85


def test_the_models_own_window_caps_context_window() -> None:
    builder = ContextBuilder(context_window=100_000)
    assert builder.window_for("gpt-4") == 8192
    assert builder.window_for("gpt-4o-mini") == 100_000
    assert builder.window_for("smollm2-135m-instruct") == 100_000
    with pytest.raises(ContextTooLong):
        build(builder, model="gpt-4", max_tokens=8192)


def test_empty_system_prompt_sends_no_system_message() -> None:
    built = build(ContextBuilder(8000), system_prompt="")
    assert [m["role"] for m in built.messages] == ["user"]
