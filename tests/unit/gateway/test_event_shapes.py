"""The event endpoint's pure parts: the prompt from an event, errors in its words."""

from __future__ import annotations

import json

import pytest

from chater_gpt.errors import ErrorCode
from chater_gpt.gateway.event_shapes import (
    EVENT_ERRORS,
    EventError,
    core_event_request,
    event_answer,
    event_error,
)

EVENT_CODES = {
    "api_connection_error",
    "api_authentication_error",
    "api_client_error",
    "api_response_format_error",
}


def test_every_core_code_has_an_event_code() -> None:
    assert set(EVENT_ERRORS) == set(ErrorCode)
    assert {name for _, name in EVENT_ERRORS.values()} == EVENT_CODES


def test_a_plain_prompt_and_messages() -> None:
    assert core_event_request({"content": "hi"}, None, "r")["message"] == "hi"
    messages = [
        {"role": "system", "content": "short"},
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
    ]
    value = core_event_request({"content": json.dumps({"messages": messages})}, "shop", "r")
    assert value["message"] == "q2"
    assert value["system_prompt"] == "short"
    assert value["context"] == [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
    ]
    assert value["app_code"] == "shop"
    assert core_event_request({"content": messages}, None, "r")["message"] == "q2"
    assert core_event_request({"content": "{not json"}, None, "r")["message"] == "{not json"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("text", "invalid_input_format"),
        ({}, "missing_content_field"),
        ({"content": "  "}, "prompt_extraction_failed"),
        ({"content": 5}, "prompt_extraction_failed"),
        ({"content": '{"messages": []}'}, "prompt_extraction_failed"),
        ({"content": '[{"role": "assistant", "content": "x"}]'}, "prompt_extraction_failed"),
    ],
)
def test_bad_events(body: object, code: str) -> None:
    with pytest.raises(EventError) as bad:
        core_event_request(body, None, "r")
    assert bad.value.code == code


def test_answers_and_mapped_errors() -> None:
    assert event_answer({"response": "ok"}) == {"completion": "ok"}
    with pytest.raises(EventError) as failed:
        event_answer({"error": {"code": "backend_auth_error", "message": "m"}})
    assert failed.value.body() == {"error": "api_authentication_error", "details": "m"}
    assert event_error("backend_error", "m", retryable=True).code == "api_connection_error"
    assert event_error("backend_error", "m").code == "api_client_error"
    assert event_error("no-such-code", "m").code == "api_response_format_error"
    with pytest.raises(EventError):
        event_answer({"something": "else"})
