"""OpenAI-style chat calls -> Anthropic Messages API bodies, answers -> ChatResult
(chater_gpt/backends/anthropic_wire.py; pure functions), and the transport errors the SDK
lets through mapped like its own (chater_gpt/backends/anthropic.py)."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from chater_gpt.backends.anthropic import _mapped_errors
from chater_gpt.backends.anthropic_wire import (
    LEADING_USER_TEXT,
    accepts_sampling,
    content_blocks,
    finish_reason,
    image_block,
    messages_body,
    parse_message,
    system_and_messages,
)
from chater_gpt.domain import ChatCall, ChatMessage, ResponseFormat
from chater_gpt.errors import (
    BackendBadResponse,
    BackendError,
    ErrorCode,
    InvalidImage,
    InvalidRequest,
)
from chater_gpt.json_output import json_instruction

CLAUDE = "claude-haiku-5-5"
PNG_URL = "data:image/png;base64,iVBORw0KGgo="
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"weight": {"type": "number"}},
    "required": ["weight"],
    "additionalProperties": False,
}


def call(
    messages: list[ChatMessage],
    *,
    fmt: ResponseFormat | None = None,
    temperature: float = 0.7,
) -> ChatCall:
    return ChatCall(
        model=CLAUDE,
        messages=messages,
        max_tokens=64,
        temperature=temperature,
        seed=5,
        response_format=fmt,
    )


# --- messages -----------------------------------------------------------------------


def test_system_messages_become_the_system_text() -> None:
    system, messages = system_and_messages(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "system", "content": [{"type": "text", "text": "Use metric units."}]},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "weight?"},
        ]
    )
    assert system == "Be brief.\n\nUse metric units."
    assert messages == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "weight?"},
    ]


def test_no_system_text_without_system_messages() -> None:
    body = messages_body(call([{"role": "user", "content": "hi"}]), send_temperature=False)
    assert body == {
        "model": CLAUDE,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
    }


def test_consecutive_turns_of_one_role_are_merged() -> None:
    _, messages = system_and_messages(
        [
            {"role": "user", "content": "first"},
            {"role": "user", "content": "second"},
            {"role": "assistant", "content": "a"},
            {"role": "system", "content": "between"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG_URL}}]},
            {"role": "user", "content": "and this?"},
        ]
    )
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == "first\n\nsecond"
    assert messages[1]["content"] == "a\n\nb"  # a system message in between does not split
    assert messages[2]["content"] == [
        image_block(PNG_URL),
        {"type": "text", "text": "and this?"},
    ]


def test_a_conversation_opening_with_an_answer_gets_a_user_turn_first() -> None:
    _, messages = system_and_messages(
        [
            {"role": "system", "content": "Sys."},
            {"role": "assistant", "content": "Earlier answer."},
            {"role": "user", "content": "hi"},
        ]
    )
    assert messages == [
        {"role": "user", "content": LEADING_USER_TEXT},
        {"role": "assistant", "content": "Earlier answer."},
        {"role": "user", "content": "hi"},
    ]


def test_empty_text_is_left_out() -> None:
    _, messages = system_and_messages(
        [
            {"role": "system", "content": "  "},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": ""},
            {
                "role": "user",
                "content": [{"type": "text", "text": " "}, {"type": "text", "text": "x"}],
            },
        ]
    )
    assert messages == [{"role": "user", "content": "hi\n\nx"}]


def test_a_conversation_with_nothing_to_say_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        system_and_messages(
            [{"role": "system", "content": "Sys."}, {"role": "user", "content": ""}]
        )


def test_a_text_and_image_message_keeps_its_blocks_in_order() -> None:
    blocks = content_blocks(
        [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        ]
    )
    assert blocks == [
        {"type": "text", "text": "What is this?"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


@pytest.mark.parametrize(
    "url",
    [
        "data:image/bmp;base64,Qk0=",  # a type the API does not take
        "data:image/png,rawbytes",  # not base64
        "data:image/png;base64,",  # no data
        "",
    ],
)
def test_images_the_api_cannot_take_are_invalid(url: str) -> None:
    with pytest.raises(InvalidImage):
        image_block(url)


def test_the_media_type_is_normalised() -> None:
    block = image_block("data:IMAGE/JPEG;base64,/9j/")
    assert block["source"]["media_type"] == "image/jpeg"


# --- parameters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "accepts"), [("2023-06-01", True), ("2026-10-20", True), ("2026-10-21", False)]
)
def test_temperature_is_taken_before_the_2026_10_21_version(version: str, accepts: bool) -> None:
    assert accepts_sampling(version) is accepts


@pytest.mark.parametrize(("given", "sent"), [(0.0, 0.0), (0.7, 0.7), (1.0, 1.0), (1.8, 1.0)])
def test_temperature_is_clamped_to_anthropics_range(given: float, sent: float) -> None:
    messages: list[ChatMessage] = [{"role": "user", "content": "hi"}]
    body = messages_body(call(messages, temperature=given), send_temperature=True)
    assert body["temperature"] == sent
    assert "temperature" not in messages_body(call(messages), send_temperature=False)


def test_seed_is_not_sent() -> None:
    body = messages_body(call([{"role": "user", "content": "hi"}]), send_temperature=True)
    assert set(body) == {"model", "max_tokens", "messages", "temperature"}


# --- JSON answers -------------------------------------------------------------------


def test_json_object_is_asked_for_in_the_system_text() -> None:
    fmt = ResponseFormat(type="json_object")
    body = messages_body(
        call(
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}], fmt=fmt
        ),
        send_temperature=False,
    )
    assert body["system"] == f"Be brief.\n\n{json_instruction(fmt)}"
    assert "output_config" not in body


def test_the_instruction_is_not_repeated() -> None:
    fmt = ResponseFormat(type="json_object")
    system = f"Be brief.\n\n{json_instruction(fmt)}"
    body = messages_body(
        call([{"role": "system", "content": system}, {"role": "user", "content": "hi"}], fmt=fmt),
        send_temperature=False,
    )
    assert body["system"] == system


def test_a_strict_schema_is_sent_as_structured_output() -> None:
    fmt = ResponseFormat(type="json_schema", schema=SCHEMA, name="weight", strict=True)
    body = messages_body(call([{"role": "user", "content": "hi"}], fmt=fmt), send_temperature=False)
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}
    assert body["system"] == json_instruction(fmt)


def test_a_loose_schema_is_asked_for_by_the_instruction_alone() -> None:
    fmt = ResponseFormat(type="json_schema", schema=SCHEMA, name="weight", strict=False)
    body = messages_body(call([{"role": "user", "content": "hi"}], fmt=fmt), send_temperature=False)
    assert "output_config" not in body
    assert body["system"] == json_instruction(fmt)


# --- the answer ---------------------------------------------------------------------


def answer(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-5-5-20261001",
        "content": [{"type": "text", "text": "Hello"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 3},
    }
    body.update(changes)
    return body


def test_the_answer_becomes_a_result() -> None:
    result = parse_message(answer(), backend="anthropic", requested_model=CLAUDE)
    assert (result.text, result.model, result.finish_reason, result.backend) == (
        "Hello",
        "claude-haiku-5-5-20261001",
        "stop",
        "anthropic",
    )
    assert (result.prompt_tokens, result.completion_tokens, result.total_tokens) == (12, 3, 15)


def test_text_blocks_are_joined_and_other_blocks_skipped() -> None:
    content = [
        {"type": "thinking", "thinking": "hmm", "signature": "s"},
        {"type": "text", "text": "one "},
        {"type": "text", "text": "two"},
    ]
    result = parse_message(answer(content=content), backend="anthropic", requested_model=CLAUDE)
    assert result.text == "one two"


def test_cached_input_counts_as_prompt_tokens() -> None:
    usage = {
        "input_tokens": 10,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 1000,
        "output_tokens": 5,
    }
    result = parse_message(answer(usage=usage), backend="anthropic", requested_model=CLAUDE)
    assert (result.prompt_tokens, result.completion_tokens) == (1110, 5)


def test_null_usage_fields_count_as_zero() -> None:
    usage = {"input_tokens": 4, "cache_read_input_tokens": None, "output_tokens": 2}
    result = parse_message(answer(usage=usage), backend="anthropic", requested_model=CLAUDE)
    assert (result.prompt_tokens, result.completion_tokens) == (4, 2)


def test_the_requested_model_when_none_is_reported() -> None:
    result = parse_message(answer(model=None), backend="anthropic", requested_model=CLAUDE)
    assert result.model == CLAUDE


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        (None, "stop"),
        ("something_new", "something_new"),
    ],
)
def test_stop_reasons_in_openais_words(stop_reason: str | None, finish: str) -> None:
    assert finish_reason(stop_reason) == finish


@pytest.mark.parametrize(
    "body",
    [
        "<html>oops</html>",
        None,
        [],
        {"id": "x"},
        {"type": "error", "error": {"type": "api_error", "message": "x"}},
        answer(content="Hello"),
        answer(content=[{"type": "text"}]),
        answer(content=[{"type": "text", "text": 5}]),
        answer(usage={"input_tokens": "many"}),
        answer(usage=[1, 2]),
    ],
)
def test_an_unexpected_answer_is_a_bad_response(body: object) -> None:
    with pytest.raises(BackendBadResponse) as raised:
        parse_message(body, backend="anthropic", requested_model=CLAUDE)
    assert raised.value.message == "the anthropic backend sent an unexpected response"


# --- the transport's own errors, where the SDK lets one through ------------------------


@pytest.mark.parametrize(
    ("raised", "code"),
    [
        (httpx2.RemoteProtocolError("peer closed connection"), ErrorCode.BACKEND_UNAVAILABLE),
        (httpx2.ReadError("reset"), ErrorCode.BACKEND_UNAVAILABLE),
        (httpx2.ConnectTimeout("connect"), ErrorCode.BACKEND_UNAVAILABLE),
        (httpx2.ReadTimeout("read"), ErrorCode.BACKEND_TIMEOUT),
        (httpx2.DecodingError("bad gzip"), ErrorCode.BACKEND_BAD_RESPONSE),
        (ValueError("Expecting value: line 1 column 1"), ErrorCode.BACKEND_BAD_RESPONSE),
    ],
)
def test_raw_transport_errors_are_mapped(raised: Exception, code: ErrorCode) -> None:
    with pytest.raises(BackendError) as mapped, _mapped_errors("anthropic"):
        raise raised
    assert mapped.value.code is code
    assert mapped.value.__cause__ is raised
