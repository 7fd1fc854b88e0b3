"""Raw Kafka bytes → a validated request, or the documented error code; never an exception."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import orjson
import pytest

from chater_gpt.contracts import (
    ChatRequest,
    ForgetRequest,
    RejectedRequest,
    json_schemas,
)
from chater_gpt.decoder import RequestDecoder
from chater_gpt.domain import ChatResult, Turn
from chater_gpt.errors import BackendRateLimited, InvalidRequest
from chater_gpt.replies import error_bytes, forget_ack_bytes, reply_bytes
from tests.support.images import b64, image_bytes, png_bomb
from tests.support.requests import BASE_DEFAULTS

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"

DEFAULTS = BASE_DEFAULTS
decoder = RequestDecoder(DEFAULTS)


def decode(value: object, key: bytes | None = b"k1") -> object:
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    return decoder.decode(key, raw)


def error_code(result: object) -> str:
    assert isinstance(result, RejectedRequest), result
    return result.error.code.value


def test_documented_envelope_is_decoded_with_defaults() -> None:
    result = decode(
        {"key": "req-1", "value": {"message": "Hi", "user_email": "a@b.c"}}, b"kafka-key"
    )
    assert isinstance(result, ChatRequest)
    assert result.key == "req-1"
    assert result.message == "Hi"
    assert result.model == "gpt-4o-mini"
    assert result.max_tokens == 500
    assert result.temperature == 0.7
    assert result.conversation is not None
    assert result.conversation.user_email == "a@b.c"
    assert result.ordering_key == result.conversation.storage_key


def test_legacy_chater_format_question_and_context() -> None:
    result = decode(
        {"key": "legacy-1", "value": {"question": "And now?", "context": "Earlier answer"}}
    )
    assert isinstance(result, ChatRequest)
    assert result.message == "And now?"
    assert result.context == (Turn("assistant", "Earlier answer"),)
    assert result.ordering_key == "legacy-1"


def test_bare_value_takes_its_key_from_kafka() -> None:
    result = decode({"message": "Hi"}, b"from-kafka")
    assert isinstance(result, ChatRequest)
    assert result.key == "from-kafka"


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        (["q1", "a1"], [Turn("user", "q1"), Turn("assistant", "a1")]),
        (
            ["a0", "q1", "a1"],
            [Turn("assistant", "a0"), Turn("user", "q1"), Turn("assistant", "a1")],
        ),
        (
            [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}],
            [Turn("user", "u"), Turn("assistant", "a")],
        ),
    ],
)
def test_context_shapes_end_with_the_assistant_before_the_question(
    context: object, expected: list[Turn]
) -> None:
    result = decode({"message": "next", "context": context})
    assert isinstance(result, ChatRequest)
    assert list(result.context) == expected


def test_images_pick_the_vision_model_and_become_data_urls() -> None:
    png, jpeg = image_bytes("PNG"), image_bytes("JPEG")
    result = decode(
        {"message": "what is this?", "images": [b64(png), "data:image/jpeg;base64," + b64(jpeg)]}
    )
    assert isinstance(result, ChatRequest)
    assert result.model == "gpt-4o"
    assert [i.mime_type for i in result.images] == ["image/png", "image/jpeg"]
    assert result.images[0].url == "data:image/png;base64," + b64(png)
    assert (result.images[0].width, result.images[0].height) == (32, 16)


def test_forget_control_message() -> None:
    result = decode({"key": "f1", "value": {"action": "forget", "user_email": "a@b.c"}})
    assert result == ForgetRequest(key="f1", user_email="a@b.c")


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"not json at all", "invalid_json"),
        (b"\xff\xfe\x00garbage", "invalid_json"),
        (b'{"message": "unterminated', "invalid_json"),
        (b"[1, 2, 3]", "invalid_request"),
        ({"message": 42}, "invalid_request"),
        ({"message": "   "}, "invalid_request"),
        ({"nothing": "here"}, "invalid_request"),
        ({"message": "x" * 2001}, "payload_too_large"),
        (b'{"message": "' + b"x" * 70_000 + b'"}', "payload_too_large"),
        ({"message": "hi", "model": "gpt-9-ultra"}, "model_not_allowed"),
        ({"message": "hi", "max_tokens": 100_000}, "invalid_request"),
        ({"message": "hi", "temperature": 3}, "invalid_request"),
        ({"message": "hi", "images": ["!!!not base64!!!"]}, "invalid_image"),
        ({"message": "hi", "images": [b64(b"plain text, not an image")]}, "invalid_image"),
        ({"message": "hi", "images": ["http://insecure.example/cat.png"]}, "invalid_image"),
        ({"message": "hi", "images": [b64(image_bytes())] * 3}, "payload_too_large"),
        ({"message": "hi", "images": [b64(png_bomb(100_000, 100_000))]}, "payload_too_large"),
        ({"message": "hi", "images": [b64(png_bomb(5000, 5000))]}, "payload_too_large"),
        ({"action": "forget"}, "invalid_request"),
        ({"action": "explode", "user_email": "a@b.c"}, "invalid_request"),
    ],
)
def test_bad_input_gets_its_documented_code(raw: object, code: str) -> None:
    assert error_code(decode(raw)) == code


def test_bad_input_keeps_the_envelope_key() -> None:
    result = decode({"key": "env-key", "value": {"message": ""}}, b"kafka-key")
    assert isinstance(result, RejectedRequest)
    assert result.key == "env-key"


def test_keyless_input_is_rejected_without_a_key() -> None:
    result = decoder.decode(None, b"{}")
    assert isinstance(result, RejectedRequest)
    assert result.key is None


def test_error_messages_do_not_echo_the_input() -> None:
    secret = "sk-proj-THIS-MUST-NOT-LEAK-1234567890"
    result = decode({"message": {"nested": secret}})
    assert isinstance(result, RejectedRequest)
    assert secret not in result.error.message


def test_committed_schemas_match_the_models() -> None:
    for name, schema in json_schemas().items():
        committed = json.loads((SCHEMA_DIR / name).read_text())
        assert committed == schema, f"{name} is stale: run `python main.py schema`"


def test_replies_validate_against_the_response_schema() -> None:
    schema = json_schemas()["gpt-response.schema.json"]
    result = ChatResult("hello", "gpt-4o-mini", 50, 100, "stop", "openai")
    reply = orjson.loads(reply_bytes("req-1", result, 2.5))
    jsonschema.validate(reply, schema)
    assert reply["value"]["usage"] == {
        "prompt_tokens": 50,
        "completion_tokens": 100,
        "total_tokens": 150,
    }
    assert reply["value"]["timestamp"].endswith("Z")
    error = orjson.loads(error_bytes("req-2", BackendRateLimited("slow down", retry_after=2)))
    jsonschema.validate(error, schema)
    assert error["value"]["error"] == {
        "code": "rate_limited",
        "message": "slow down",
        "retryable": True,
        "retry_after": 2,
    }
    jsonschema.validate(orjson.loads(forget_ack_bytes("f", "a@b.c", 2)), schema)
    invalid = orjson.loads(error_bytes("req-3", InvalidRequest("bad")))
    assert invalid["value"]["error"]["retryable"] is False


def test_requests_validate_against_the_request_schema() -> None:
    schema = json_schemas()["gpt-send.schema.json"]
    jsonschema.validate({"key": "k", "value": {"message": "hi", "context": ["a", "b"]}}, schema)
    jsonschema.validate({"key": "k", "value": {"question": "hi", "context": "old"}}, schema)
    jsonschema.validate({"key": "k", "value": {"action": "forget", "user_email": "a@b.c"}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"key": "k", "value": {"message": 5}}, schema)
