"""Reply bytes in the route's shape: photo analyses as the food-diary service reads them,
chat replies as before; every reply validates against its committed JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from chater_gpt.contracts import (
    CHAT_STYLE,
    ChatRequest,
    RejectedRequest,
    ReplyStyle,
)
from chater_gpt.decoder import RequestDecoder
from chater_gpt.domain import ChatResult
from chater_gpt.errors import BackendRateLimited, InvalidImage, InvalidModelOutput
from chater_gpt.replies import error_bytes, reply_bytes
from chater_gpt.routes import RouteShape, builtin_routes
from tests.support.images import b64, image_bytes
from tests.support.requests import BASE_DEFAULTS

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"
PHOTO_SCHEMA = json.loads((SCHEMA_DIR / "photo-analysis-response.schema.json").read_text())
CHAT_SCHEMA = json.loads((SCHEMA_DIR / "gpt-response.schema.json").read_text())

ECHO = (
    ("user_email", "ada@example.com"),
    ("image_id", "a31e"),
    ("timestamp", "2026-11-25T12:00:00Z"),
    ("date", "2026-11-25"),
)
PHOTO = ReplyStyle(RouteShape.PHOTO, ECHO)
ANALYSIS = '{"type": "food_processing", "weight": 250}'
RESULT = ChatResult(ANALYSIS, "gpt-4o", 900, 40, "stop", "openai")


def value_of(raw: bytes, schema: dict[str, Any], key: str = "a31e") -> dict[str, Any]:
    reply = orjson.loads(raw)
    jsonschema.validate(reply, schema)
    assert reply["key"] == key
    value: dict[str, Any] = reply["value"]
    return value


# --- photo replies ----------------------------------------------------------------------


def test_a_photo_reply_carries_the_analysis_the_echo_the_model_and_usage() -> None:
    value = value_of(reply_bytes("a31e", RESULT, 1.23456, style=PHOTO), PHOTO_SCHEMA)
    assert value["analysis"] == ANALYSIS
    assert json.loads(value["analysis"]) == {"type": "food_processing", "weight": 250}
    assert value["user_email"] == "ada@example.com"
    assert value["image_id"] == "a31e"
    assert value["timestamp"] == "2026-11-25T12:00:00Z"  # the request's, not the server's
    assert value["date"] == "2026-11-25"
    assert value["model"] == "gpt-4o"
    assert value["usage"] == {"prompt_tokens": 900, "completion_tokens": 40, "total_tokens": 940}
    assert "response" not in value
    assert "error" not in value


def test_a_photo_reply_starts_with_the_analysis_then_the_echoed_fields() -> None:
    value = orjson.loads(reply_bytes("a31e", RESULT, 1.0, style=PHOTO))["value"]
    keys = list(value)
    assert keys[:5] == ["analysis", "user_email", "image_id", "timestamp", "date"]
    assert keys[5:7] == ["model", "usage"]


def test_a_photo_reply_has_no_timestamp_or_date_when_the_request_had_none() -> None:
    style = ReplyStyle(RouteShape.PHOTO, (("user_email", "bo@x.io"), ("image_id", 42)))
    value = value_of(reply_bytes("a31e", RESULT, 1.0, style=style), PHOTO_SCHEMA)
    assert "timestamp" not in value
    assert "date" not in value
    assert value["image_id"] == 42


def test_a_photo_error_reply_has_the_error_at_the_top_and_the_echo_but_no_analysis() -> None:
    error = InvalidImage("image 0: not a PNG, JPEG, GIF or WEBP image")
    value = value_of(error_bytes("a31e", error, PHOTO), PHOTO_SCHEMA)
    assert next(iter(value)) == "error"
    assert value["error"] == {
        "code": "invalid_image",
        "message": "image 0: not a PNG, JPEG, GIF or WEBP image",
        "retryable": False,
    }
    assert "analysis" not in value
    assert [name for name in value if name != "error"] == [
        "user_email",
        "image_id",
        "timestamp",
        "date",
    ]
    assert value["timestamp"] == "2026-11-25T12:00:00Z"


def test_a_photo_error_reply_adds_no_timestamp_of_its_own() -> None:
    style = ReplyStyle(RouteShape.PHOTO, (("user_email", "bo@x.io"), ("image_id", "b1")))
    value = value_of(error_bytes("b1", InvalidModelOutput("not JSON"), style), PHOTO_SCHEMA, "b1")
    assert set(value) == {"error", "user_email", "image_id"}
    assert value["error"]["code"] == "invalid_model_output"


def test_a_retryable_photo_error_says_when_to_retry() -> None:
    value = value_of(
        error_bytes("a31e", BackendRateLimited("slow down", retry_after=2.0), PHOTO), PHOTO_SCHEMA
    )
    assert value["error"] == {
        "code": "rate_limited",
        "message": "slow down",
        "retryable": True,
        "retry_after": 2.0,
    }


def test_a_photo_error_reply_with_nothing_to_echo_is_just_the_error() -> None:
    style = ReplyStyle(RouteShape.PHOTO)
    value = value_of(error_bytes("a31e", InvalidImage("bad"), style), PHOTO_SCHEMA)
    assert set(value) == {"error"}


# --- from the decoder to the reply ------------------------------------------------------

DEFAULTS = BASE_DEFAULTS
photo_decoder = RequestDecoder(
    DEFAULTS,
    builtin_routes(
        chat_request="gpt-send",
        chat_reply="gpt-response",
        photo_request="eater-send-photo",
        photo_reply="photo-analysis-response",
    )[1],
)


def test_a_decoded_photo_is_answered_with_what_it_asked_for() -> None:
    request = photo_decoder.decode(
        b"a31e",
        orjson.dumps(
            {
                "prompt": "Analyse the food as JSON.",
                "photo": b64(image_bytes("JPEG")),
                "user_email": "ada@example.com",
                "image_id": 7,
                "date": "2026-11-25",
            }
        ),
    )
    assert isinstance(request, ChatRequest), request
    value = value_of(reply_bytes(request.key, RESULT, 0.5, style=request.style), PHOTO_SCHEMA)
    assert (value["user_email"], value["image_id"], value["date"]) == (
        "ada@example.com",
        7,
        "2026-11-25",
    )
    assert "timestamp" not in value


def test_a_rejected_photo_is_answered_with_its_error_and_echo() -> None:
    request = photo_decoder.decode(
        b"a31e",
        orjson.dumps(
            {
                "prompt": "Analyse",
                "photo": b64(b"not an image at all"),
                "user_email": "ada@example.com",
                "image_id": "a31e",
            }
        ),
    )
    assert isinstance(request, RejectedRequest), request
    assert request.key is not None
    value = value_of(error_bytes(request.key, request.error, request.style), PHOTO_SCHEMA)
    assert value["error"]["code"] == "invalid_image"
    assert (value["user_email"], value["image_id"]) == ("ada@example.com", "a31e")
    assert "analysis" not in value


# --- chat replies are unchanged ---------------------------------------------------------


@pytest.mark.parametrize("style", [None, CHAT_STYLE])
def test_a_chat_reply_is_unchanged(style: ReplyStyle | None) -> None:
    result = ChatResult("hello", "gpt-4o-mini", 50, 100, "stop", "openai")
    raw = (
        reply_bytes("req-1", result, 2.5)
        if style is None
        else reply_bytes("req-1", result, 2.5, style=style)
    )
    value = value_of(raw, CHAT_SCHEMA, "req-1")
    # The original fields, in their order; `cost` (issue 13) is the only addition, and
    # `provider` too once the model router has named one.
    assert list(value) == [
        "response",
        "model",
        "usage",
        "cost",
        "finish_reason",
        "timestamp",
        "processing_time",
    ]
    assert value["response"] == "hello"
    assert value["usage"] == {"prompt_tokens": 50, "completion_tokens": 100, "total_tokens": 150}
    assert value["finish_reason"] == "stop"
    assert value["processing_time"] == 2.5
    assert value["timestamp"].endswith("Z")


def test_a_cached_chat_reply_says_so() -> None:
    result = ChatResult("hello", "gpt-4o-mini", 0, 0, "stop", "cache")
    value = value_of(reply_bytes("req-1", result, 0.01, cached=True), CHAT_SCHEMA, "req-1")
    assert value["cached"] is True


def test_a_chat_error_reply_is_unchanged() -> None:
    value = value_of(
        error_bytes("req-2", BackendRateLimited("slow down", retry_after=2)), CHAT_SCHEMA, "req-2"
    )
    assert set(value) == {"error", "timestamp"}
    assert value["error"]["code"] == "rate_limited"
    assert value["timestamp"].endswith("Z")


# --- provider and cost (issue 13) -------------------------------------------------------

ROUTED = ChatResult("hi", "claude-haiku-4-5", 1000, 200, "stop", "anthropic", 0, "anthropic", 0.002)


def test_a_chat_reply_names_the_provider_and_the_cost_after_the_model() -> None:
    value = value_of(reply_bytes("req-1", ROUTED, 0.5), CHAT_SCHEMA, "req-1")
    assert list(value)[:5] == ["response", "model", "provider", "usage", "cost"]
    assert (value["model"], value["provider"], value["cost"]) == (
        "claude-haiku-4-5",
        "anthropic",
        0.002,
    )


def test_a_photo_reply_names_the_provider_and_the_cost() -> None:
    value = value_of(reply_bytes("a31e", ROUTED, 0.5, style=PHOTO), PHOTO_SCHEMA)
    assert (value["provider"], value["cost"]) == ("anthropic", 0.002)
    assert list(value)[:5] == ["analysis", "user_email", "image_id", "timestamp", "date"]


def test_a_cached_reply_keeps_its_provider_and_costs_nothing() -> None:
    cached = ChatResult("hi", "gpt-4o", 0, 0, "stop", "cache", provider="openai", cost_usd=0.5)
    value = value_of(reply_bytes("req-1", cached, 0.01, cached=True), CHAT_SCHEMA, "req-1")
    assert (value["provider"], value["cost"], value["cached"]) == ("openai", 0.0, True)


def test_a_reply_without_cost_or_provider_still_validates_against_the_old_fields() -> None:
    # New fields are optional in the schema: a reply from before issue 13 stays valid.
    old = {
        "response": "x",
        "model": "m",
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        "finish_reason": "stop",
        "timestamp": "t",
        "processing_time": 1,
    }
    jsonschema.validate({"key": "k", "value": old}, CHAT_SCHEMA)
    photo = {"analysis": "{}", "model": "m", "usage": old["usage"]}
    jsonschema.validate({"key": "k", "value": photo}, PHOTO_SCHEMA)
