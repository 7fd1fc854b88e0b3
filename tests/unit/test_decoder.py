"""The decoder per route: whose request it is and which stored history it may use (chat),
and the photo-analysis shape (eater-send-photo) with the fields its reply echoes."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import jsonschema
import orjson
import pytest

from chater_gpt.config import DEFAULT_PLACEHOLDER_IDENTITIES, Settings, load_settings
from chater_gpt.contracts import (
    ChatRequest,
    ForgetRequest,
    RejectedRequest,
)
from chater_gpt.decoder import RequestDecoder
from chater_gpt.domain import ConversationRef, ResponseFormat, Turn
from chater_gpt.replies import error_bytes
from chater_gpt.routes import PHOTO_SYSTEM_PROMPT, Route, RouteShape, builtin_routes
from tests.support.images import b64, image_bytes, png_bomb
from tests.support.requests import request_defaults

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"

DEFAULTS = request_defaults(
    max_image_bytes=2_000,
    placeholder_identities=frozenset(DEFAULT_PLACEHOLDER_IDENTITIES),
)
PHOTO_ROUTE = builtin_routes(
    chat_request="gpt-send",
    chat_reply="gpt-response",
    photo_request="eater-send-photo",
    photo_reply="photo-analysis-response",
)[1]
chat = RequestDecoder(DEFAULTS)
photo = RequestDecoder(DEFAULTS, PHOTO_ROUTE)

EMAIL = "ada@example.com"
JPEG = image_bytes("JPEG")
PNG = image_bytes("PNG")


def decode(value: object, key: bytes | None = b"k1", decoder: RequestDecoder = chat) -> object:
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    return decoder.decode(key, raw)


def chat_request(value: dict[str, object], decoder: RequestDecoder = chat) -> ChatRequest:
    result = decode(value, decoder=decoder)
    assert isinstance(result, ChatRequest), result
    return result


def rejected(
    value: object, key: bytes | None = b"k1", decoder: RequestDecoder = chat
) -> RejectedRequest:
    result = decode(value, key, decoder)
    assert isinstance(result, RejectedRequest), result
    return result


# --- chat: whose request, which history ------------------------------------------------


@pytest.mark.parametrize(
    "placeholder", ["unknown", "Anonymous", "", "  NULL ", "none", "undefined", "UNKNOWN"]
)
def test_a_placeholder_user_is_no_one(placeholder: str) -> None:
    request = chat_request({"message": "hi", "user_email": placeholder})
    assert request.user is None
    assert request.conversation is None
    assert request.ordering_key == "k1"


def test_a_request_without_user_email_is_no_one() -> None:
    request = chat_request({"message": "hi"})
    assert (request.user, request.conversation) == (None, None)


def test_two_anonymous_users_never_share_a_conversation() -> None:
    request = chat_request({"message": "hi", "user_email": "unknown", "conversation_id": "c1"})
    assert (request.user, request.conversation) == (None, None)


def test_a_real_user_without_context_uses_stored_history() -> None:
    request = chat_request({"message": "hi", "user_email": EMAIL})
    assert request.user == EMAIL
    assert request.conversation == ConversationRef(EMAIL, None)
    assert request.context == ()


def test_a_real_user_names_a_stored_conversation() -> None:
    request = chat_request({"message": "hi", "user_email": EMAIL, "conversation_id": "c1"})
    assert request.conversation == ConversationRef(EMAIL, "c1")


@pytest.mark.parametrize(
    "context",
    [
        "the earlier answer",
        ["q1", "a1"],
        [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}],
    ],
)
def test_own_context_without_conversation_id_uses_no_stored_history_but_is_still_billed(
    context: object,
) -> None:
    request = chat_request({"message": "hi", "user_email": EMAIL, "context": context})
    assert request.conversation is None
    assert request.user == EMAIL  # per-user limits and usage still apply
    assert request.context  # answered from the supplied context
    assert request.context[-1].role == "assistant"


@pytest.mark.parametrize("context", ["", [], ["  "]])
def test_an_empty_context_still_means_the_producer_keeps_the_conversation(
    context: object,
) -> None:
    # The UI sends its (still empty) conversation with a first question: nothing of a
    # stored conversation is read, nor is the exchange stored for later.
    request = chat_request({"message": "hi", "user_email": EMAIL, "context": context})
    assert request.conversation is None
    assert request.user == EMAIL


def test_own_context_with_conversation_id_uses_both() -> None:
    request = chat_request(
        {"message": "hi", "user_email": EMAIL, "context": "earlier", "conversation_id": "c1"}
    )
    assert request.user == EMAIL
    assert request.conversation == ConversationRef(EMAIL, "c1")
    assert request.context == (Turn("assistant", "earlier"),)


def test_a_placeholder_with_context_is_answered_from_the_context_alone() -> None:
    request = chat_request(
        {"message": "hi", "user_email": "unknown", "context": "earlier", "conversation_id": "c"}
    )
    assert (request.user, request.conversation) == (None, None)
    assert request.context == (Turn("assistant", "earlier"),)


@pytest.mark.parametrize("placeholder", ["unknown", "  NULL ", "Anonymous", "none"])
def test_forget_for_a_placeholder_is_an_invalid_request(placeholder: str) -> None:
    result = rejected({"key": "f1", "value": {"action": "forget", "user_email": placeholder}})
    assert result.error.code.value == "invalid_request"
    assert result.key == "f1"


def test_forget_for_a_real_user_is_a_forget_request() -> None:
    result = decode({"key": "f1", "value": {"action": "forget", "user_email": EMAIL}})
    assert result == ForgetRequest(key="f1", user_email=EMAIL)


def test_placeholder_identities_are_configurable() -> None:
    guests = RequestDecoder(
        dataclasses.replace(DEFAULTS, placeholder_identities=frozenset({"guest"}))
    )
    for name in ("guest", "GUEST", " Guest "):
        request = chat_request({"message": "hi", "user_email": name}, guests)
        assert (request.user, request.conversation) == (None, None)
    # No longer a placeholder: "unknown" is now somebody's name.
    request = chat_request({"message": "hi", "user_email": "unknown"}, guests)
    assert request.user == "unknown"
    assert request.conversation == ConversationRef("unknown", None)


def test_empty_is_no_one_even_without_configured_placeholders() -> None:
    bare = RequestDecoder(dataclasses.replace(DEFAULTS, placeholder_identities=frozenset()))
    for name in ("", "   "):
        request = chat_request({"message": "hi", "user_email": name}, bare)
        assert (request.user, request.conversation) == (None, None)
    assert chat_request({"message": "hi", "user_email": "unknown"}, bare).user == "unknown"


def test_placeholder_identities_setting_is_compared_without_case(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(os.environ):
        if name.upper() in {f.upper() for f in Settings.model_fields}:
            monkeypatch.delenv(name)
    configured = load_settings(
        {
            "bootstrap_server": "kafka:9092",
            "openai_base_url": "http://127.0.0.1:1/v1",
            "placeholder_identities": "Guest, VISITOR ,",
        }
    )
    assert configured.placeholders == frozenset({"guest", "visitor"})
    assert load_settings(
        {"bootstrap_server": "kafka:9092", "openai_base_url": "http://127.0.0.1:1/v1"}
    ).placeholders == frozenset(DEFAULT_PLACEHOLDER_IDENTITIES)


def test_a_chat_routes_defaults_apply_when_the_request_names_none() -> None:
    route = Route(
        "gemini",
        "gemini-send",
        "gemini-response",
        model="gpt-4o",
        system_prompt="Be brief.",
        max_tokens=800,
        response_format=ResponseFormat("json_object"),
    )
    gemini = RequestDecoder(DEFAULTS, route)
    request = chat_request({"message": "hi"}, gemini)
    assert (request.model, request.system_prompt, request.max_tokens) == (
        "gpt-4o",
        "Be brief.",
        800,
    )
    assert request.response_format == ResponseFormat("json_object")
    own = chat_request(
        {"message": "hi", "model": "gpt-4o-mini", "system_prompt": "Mine.", "max_tokens": 5},
        gemini,
    )
    assert (own.model, own.system_prompt, own.max_tokens) == ("gpt-4o-mini", "Mine.", 5)


# --- photo analysis ---------------------------------------------------------------------


def photo_value(**fields: object) -> dict[str, object]:
    value: dict[str, object] = {
        "prompt": "Analyse the food; answer as JSON with type = food_processing",
        "photo": b64(JPEG),
        "user_email": EMAIL,
        "image_id": "a31e",
        "timestamp": "2026-11-25T12:00:00Z",
        "date": "2026-11-25",
    }
    value.update(fields)
    return {name: field for name, field in value.items() if field is not ...}


@pytest.mark.parametrize(("data", "mime"), [(JPEG, "image/jpeg"), (PNG, "image/png")])
def test_a_photo_becomes_a_vision_request_for_a_json_object(data: bytes, mime: str) -> None:
    result = decode({"key": "a31e", "value": photo_value(photo=b64(data))}, b"a31e", photo)
    assert isinstance(result, ChatRequest), result
    assert result.key == "a31e"
    assert result.message.startswith("Analyse the food")
    assert len(result.images) == 1
    assert result.images[0].mime_type == mime
    assert result.images[0].url == f"data:{mime};base64,{b64(data)}"
    assert result.model == "gpt-4o"
    assert result.response_format == ResponseFormat("json_object")
    assert result.system_prompt == PHOTO_SYSTEM_PROMPT
    assert result.user == EMAIL  # billed to the user
    assert result.conversation is None  # but never stored history
    assert result.context == ()
    assert result.style.shape is RouteShape.PHOTO


def test_a_photo_reply_echoes_user_image_timestamp_and_date_in_that_order() -> None:
    # Sent in another order, with fields the reply does not echo.
    value = {
        "date": "2026-11-25",
        "photo": b64(JPEG),
        "timestamp": "2026-11-25T12:00:00Z",
        "prompt": "What is it? JSON please.",
        "think": True,
        "image_id": "a31e",
        "user_email": EMAIL,
    }
    result = decode(value, b"a31e", photo)
    assert isinstance(result, ChatRequest), result
    assert result.style.echo == (
        ("user_email", EMAIL),
        ("image_id", "a31e"),
        ("timestamp", "2026-11-25T12:00:00Z"),
        ("date", "2026-11-25"),
    )


def test_only_given_non_null_fields_are_echoed() -> None:
    result = decode(photo_value(image_id=None, date=..., timestamp=...), decoder=photo)
    assert isinstance(result, ChatRequest), result
    assert result.style.echo == (("user_email", EMAIL),)


def test_an_integer_image_id_is_kept() -> None:
    result = decode(photo_value(image_id=42), decoder=photo)
    assert isinstance(result, ChatRequest), result
    assert ("image_id", 42) in result.style.echo


def test_a_photo_as_a_data_url_is_accepted_too() -> None:
    result = decode(photo_value(photo="data:image/png;base64," + b64(PNG)), decoder=photo)
    assert isinstance(result, ChatRequest), result
    assert result.images[0].mime_type == "image/png"


def test_a_bare_photo_value_takes_its_key_from_kafka() -> None:
    result = decode(photo_value(), b"from-kafka", photo)
    assert isinstance(result, ChatRequest), result
    assert result.key == "from-kafka"


@pytest.mark.parametrize("placeholder", ["unknown", "", "  NULL "])
def test_a_photo_from_a_placeholder_user_is_no_ones(placeholder: str) -> None:
    result = decode(photo_value(user_email=placeholder), decoder=photo)
    assert isinstance(result, ChatRequest), result
    assert (result.user, result.conversation) == (None, None)


def test_a_photo_routes_model_is_used() -> None:
    route = dataclasses.replace(PHOTO_ROUTE, model="gpt-4o-mini", max_tokens=300)
    result = decode(photo_value(), decoder=RequestDecoder(DEFAULTS, route))
    assert isinstance(result, ChatRequest), result
    assert (result.model, result.max_tokens) == ("gpt-4o-mini", 300)


FULL_ECHO = (
    ("user_email", EMAIL),
    ("image_id", "a31e"),
    ("timestamp", "2026-11-25T12:00:00Z"),
    ("date", "2026-11-25"),
)


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (photo_value(prompt=...), "invalid_request"),
        (photo_value(photo=...), "invalid_request"),
        (photo_value(prompt="   "), "invalid_request"),
        (photo_value(prompt=42), "invalid_request"),
        (photo_value(photo=b64(b"plain text, not an image")), "invalid_image"),
        (photo_value(photo="!!!not base64!!!"), "invalid_image"),
        (photo_value(photo=b64(image_bytes("JPEG", (400, 400)))), "payload_too_large"),
        (photo_value(photo=b64(png_bomb(5000, 5000))), "payload_too_large"),
        (photo_value(prompt="x" * 2001), "payload_too_large"),
    ],
)
def test_bad_photo_input_gets_its_code_and_keeps_the_echo(value: object, code: str) -> None:
    result = rejected({"key": "a31e", "value": value}, decoder=photo)
    assert result.error.code.value == code
    assert result.key == "a31e"
    assert result.style.shape is RouteShape.PHOTO
    assert result.style.echo == FULL_ECHO


def test_a_photo_with_no_key_is_rejected_without_a_key() -> None:
    result = rejected(photo_value(), key=None, decoder=photo)
    assert result.key is None
    assert result.error.code.value == "invalid_request"


def test_a_photo_with_an_envelope_key_needs_no_kafka_key() -> None:
    result = decode({"key": "a31e", "value": photo_value()}, None, photo)
    assert isinstance(result, ChatRequest), result
    assert result.key == "a31e"


def test_a_chat_request_on_the_photo_route_is_an_invalid_request() -> None:
    result = rejected({"message": "hi", "user_email": EMAIL}, decoder=photo)
    assert result.error.code.value == "invalid_request"
    assert result.style.echo == (("user_email", EMAIL),)


def test_photo_error_messages_do_not_echo_the_input() -> None:
    secret = "sk-proj-PHOTO-MUST-NOT-LEAK-1234567890"
    result = rejected(photo_value(prompt={"nested": secret}), decoder=photo)
    assert secret not in result.error.message


@pytest.mark.parametrize(
    "fields",
    [{"timestamp": 1764072000}, {"user_email": 42}, {"date": 20261125}],
)
def test_a_photo_error_reply_validates_whatever_types_the_request_echoed(
    fields: dict[str, object],
) -> None:
    schema = json.loads((SCHEMA_DIR / "photo-analysis-response.schema.json").read_text())
    result = rejected({"key": "a31e", "value": photo_value(**fields)}, decoder=photo)
    reply = orjson.loads(error_bytes("a31e", result.error, result.style))
    jsonschema.validate(reply, schema)


@pytest.mark.parametrize("raw", [b"x" * (64 * 1024 + 1), b"{not json", b"\xff\xfe garbage"])
def test_unreadable_photo_messages_are_still_answered_in_the_photo_shape(raw: bytes) -> None:
    result = rejected(raw, b"a31e", photo)
    assert result.style.shape is RouteShape.PHOTO
    reply = orjson.loads(error_bytes("a31e", result.error, result.style))
    assert "timestamp" not in reply["value"]
