"""The gateway's pure parts: OpenAI → core translation, error mapping (every code),
API keys (hashed, constant-time, revocable), the reply waiter."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest

from chater_gpt.errors import (
    ConfigError,
    ErrorCode,
    Forbidden,
    GatewayUnavailable,
    InvalidRequest,
    Unauthorized,
)
from chater_gpt.gateway.auth import ApiKeys
from chater_gpt.gateway.error_map import STATUS, from_core_reply, http_error
from chater_gpt.gateway.openai_shapes import (
    Caller,
    completion,
    parse_request,
    to_core_request,
)
from chater_gpt.gateway.waiter import ReplyWaiter

PNG_URL = "data:image/png;base64,iVBORw0KGgo="


def test_openai_messages_become_the_cores_request() -> None:
    request = parse_request(
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": "Answer in English."},
                {"role": "user", "content": "earlier"},
                {"role": "assistant", "content": None},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": PNG_URL}},
                    ],
                },
            ],
            "max_tokens": 10,
            "max_completion_tokens": 20,
            "temperature": 0.5,
            "response_format": {"type": "json_object"},
            "user": "ada",
            "top_p": 0.9,  # not honoured, not refused
        }
    )
    value = to_core_request(request, Caller(tenant="shop", conversation="c1"), "cid-1")
    assert value == {
        "message": "What is this?",
        "request_id": "cid-1",
        "images": [PNG_URL],
        "system_prompt": "Be brief.\n\nAnswer in English.",
        "context": [
            {"role": "user", "content": "earlier"},
            {"role": "assistant", "content": ""},
        ],
        "model": "gpt-4o",
        "max_tokens": 20,  # max_completion_tokens wins
        "temperature": 0.5,
        "user_email": "shop/ada",  # a tenant's users never meet another tenant's
        "conversation_id": "c1",
        "app_code": "shop",
        "response_format": {"type": "json_object"},
    }


def test_a_stateless_request_names_no_owner_and_the_header_wins_over_user() -> None:
    request = parse_request({"messages": [{"role": "user", "content": "hi"}], "user": "bob"})
    assert to_core_request(request, Caller(), "c") == {
        "message": "hi",
        "request_id": "c",
        "user_email": "bob",
    }
    assert to_core_request(request, Caller(user="eve"), "c")["user_email"] == "eve"
    bare = parse_request({"messages": [{"role": "user", "content": "hi"}]})
    assert "user_email" not in to_core_request(bare, Caller(), "c")


@pytest.mark.parametrize(
    "body",
    [
        {"messages": []},
        {"messages": [{"role": "tool", "content": "x"}]},
        {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
        {"messages": [{"role": "user", "content": "x"}], "n": 2},
        {"messages": [{"role": "user", "content": "x"}], "temperature": 3},
        {"model": "m"},
        [1, 2],
    ],
)
def test_requests_openai_would_refuse_are_invalid(body: object) -> None:
    with pytest.raises(InvalidRequest):
        parse_request(body)


def test_the_last_message_must_be_the_users() -> None:
    request = parse_request({"messages": [{"role": "assistant", "content": "x"}]})
    with pytest.raises(InvalidRequest, match="last message"):
        to_core_request(request, Caller(), "c")


def test_a_core_reply_becomes_a_chat_completion() -> None:
    reply = {
        "response": "hello",
        "model": "gpt-4o-mini",
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        "finish_reason": "length",
    }
    answer = completion(reply, "abc")
    assert answer["id"] == "chatcmpl-abc"
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "hello"}
    assert answer["choices"][0]["finish_reason"] == "length"
    assert answer["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_every_error_code_has_a_status() -> None:
    assert set(STATUS) == set(ErrorCode)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("invalid_json", 400),
        ("invalid_request", 400),
        ("invalid_image", 400),
        ("context_too_long", 400),
        ("unauthorized", 401),
        ("forbidden", 403),
        ("model_not_allowed", 404),
        ("payload_too_large", 413),
        ("rate_limited", 429),
        ("budget_exhausted", 429),
        ("internal_error", 500),
        ("backend_error", 502),
        ("backend_auth_error", 502),
        ("backend_bad_response", 502),
        ("invalid_model_output", 502),
        ("backend_unavailable", 503),
        ("store_unavailable", 503),
        ("gateway_unavailable", 503),
        ("backend_timeout", 504),
        ("gateway_timeout", 504),
        ("no_such_code", 500),
    ],
)
def test_core_codes_map_to_statuses_and_openai_error_objects(code: str, status: int) -> None:
    error = from_core_reply({"code": code, "message": "m", "retryable": False})
    assert error.status == status
    assert set(error.body["error"]) == {"message", "type", "param", "code"}
    assert error.body["error"]["code"] == (code if code != "no_such_code" else "internal_error")


def test_limits_say_when_to_retry() -> None:
    limited = from_core_reply({"code": "rate_limited", "message": "m", "retry_after": 2.2})
    assert limited.headers == {"Retry-After": "3"}
    budget = from_core_reply({"code": "budget_exhausted", "message": "m", "retry_after": 0.1})
    assert budget.headers == {"Retry-After": "1"}
    assert http_error("invalid_request", "m", retry_after=5).headers == {}


def keys_file(tmp_path: Path, entries: dict[str, str | None]) -> Path:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": entries}))
    return path


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def test_api_keys_are_checked_by_their_hash_and_name_the_tenant(tmp_path: Path) -> None:
    keys = ApiKeys.from_file(keys_file(tmp_path, {sha("k-shop"): "shop", sha("k-old"): None}))
    assert keys.identify("Bearer k-shop").tenant == "shop"
    assert keys.identify("bearer  k-shop ").tenant == "shop"
    with pytest.raises(Forbidden):
        keys.identify("Bearer k-old")
    for header in (None, "", "Bearer ", "Basic k-shop", "Bearer k-other"):
        with pytest.raises(Unauthorized) as denied:
            keys.identify(header)
        assert "k-" not in denied.value.message  # never echoes a key


def test_without_a_keys_file_the_gateway_is_open() -> None:
    keys = ApiKeys.open()
    assert keys.is_open
    assert keys.identify(None).tenant is None


def test_a_bad_keys_file_is_a_config_error_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="GATEWAY_API_KEYS_FILE"):
        ApiKeys.from_file(keys_file(tmp_path, {"not-a-digest": "shop"}))
    yaml = tmp_path / "keys.yaml"
    yaml.write_text(f"keys:\n  {sha('k').upper()}: shop\n")
    assert ApiKeys.from_file(yaml).identify("Bearer k").tenant == "shop"


async def test_the_waiter_hands_each_reply_to_its_own_request_and_fails_the_rest() -> None:
    waiter = ReplyWaiter()
    first, second = waiter.expect("one"), waiter.expect("two")
    assert not waiter.deliver("unknown", {"response": "x"})
    assert waiter.deliver("two", {"response": "for two"})
    assert await second == {"response": "for two"}
    assert not waiter.deliver("two", {"response": "again"})  # read twice: dropped
    assert waiter.fail_all(GatewayUnavailable("stopping")) == 1
    with pytest.raises(GatewayUnavailable):
        await first
    await asyncio.wait_for(waiter.wait_idle(), 1)
    waiter.expect("three")
    waiter.forget("three")
    assert len(waiter) == 0
