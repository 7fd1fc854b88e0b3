"""The Gemini mapping, without a server (`backends.gemini_wire`, `gemini.mapped_errors`): a
ChatCall as the SDK's contents and config, an answer as a ChatResult, the API's errors
and the transport's as ours."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from google.genai import errors as genai_errors
from google.genai import types

from chater_gpt.backends.gemini import error_of, mapped_errors, request_of, result_of
from chater_gpt.backends.gemini_wire import finish_reason_of, retry_delay, url_image_type
from chater_gpt.domain import ChatCall, ChatMessage, ResponseFormat
from chater_gpt.errors import (
    BackendAuthError,
    BackendBadResponse,
    BackendError,
    BackendRateLimited,
    BackendRejected,
    ErrorCode,
    InvalidImage,
)
from tests.support.images import b64, image_bytes

KEY = "AIza-unit-SECRET-0123456789"
PNG = image_bytes("PNG", (8, 8))
DATA_URL = f"data:image/png;base64,{b64(PNG)}"
SCHEMA: dict[str, Any] = {"type": "object", "properties": {"kcal": {"type": "number"}}}


def call(messages: list[ChatMessage], **fields: Any) -> ChatCall:
    params: dict[str, Any] = {"model": "gemini-3.5-flash", "max_tokens": 64, "temperature": 0.4}
    params.update(fields)
    return ChatCall(messages=messages, **params)


def texts(content: types.Content | None) -> list[str | None]:
    assert content is not None
    return [part.text for part in content.parts or []]


# --- request ------------------------------------------------------------------------


def test_system_messages_become_the_system_instruction_and_roles_are_renamed() -> None:
    contents, config = request_of(
        call(
            [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "Hello."},
                {"role": "system", "content": "Answer in French."},
                {"role": "user", "content": "and now?"},
            ]
        )
    )
    assert [(c.role, texts(c)) for c in contents] == [
        ("user", ["hi"]),
        ("model", ["Hello."]),
        ("user", ["and now?"]),
    ]
    assert config.system_instruction is not None
    assert isinstance(config.system_instruction, types.Content)
    assert texts(config.system_instruction) == ["Be brief.", "Answer in French."]
    assert config.system_instruction.role is None


def test_consecutive_messages_of_one_role_share_a_content_and_empty_texts_are_left_out() -> None:
    contents, config = request_of(
        call(
            [
                {"role": "user", "content": "one"},
                {"role": "assistant", "content": ""},  # dropped: a part may not be empty
                {"role": "user", "content": [{"type": "text", "text": ""}]},
                {"role": "user", "content": [{"type": "text", "text": "two"}]},
            ]
        )
    )
    assert [(c.role, texts(c)) for c in contents] == [("user", ["one", "two"])]
    assert config.system_instruction is None


def test_the_parameters_and_the_calls_own_settings() -> None:
    _, config = request_of(
        call(
            [{"role": "user", "content": "hi"}],
            seed=7,
            request_id="corr-1",
            extra_headers={"X-Tenant": "t1"},
        )
    )
    assert (config.max_output_tokens, config.temperature, config.seed) == (64, 0.4, 7)
    assert config.response_mime_type is None
    assert config.response_json_schema is None
    assert config.response_schema is None
    # One call is one request: no function-calling loop, no automatic continuation.
    assert config.automatic_function_calling is not None
    assert config.automatic_function_calling.disable is True
    assert config.automatic_continuation is False
    assert config.http_options is not None
    assert config.http_options.headers == {"X-Tenant": "t1", "X-Request-ID": "corr-1"}


def test_no_request_id_no_headers() -> None:
    _, config = request_of(call([{"role": "user", "content": "hi"}]))
    assert config.http_options is None
    assert config.seed is None


def test_json_object_asks_for_the_json_mime_type() -> None:
    _, config = request_of(
        call([{"role": "user", "content": "hi"}], response_format=ResponseFormat("json_object"))
    )
    assert config.response_mime_type == "application/json"
    assert config.response_json_schema is None


def test_json_schema_is_sent_as_a_plain_json_schema() -> None:
    fmt = ResponseFormat("json_schema", schema=SCHEMA, name="meal", strict=True)
    _, config = request_of(call([{"role": "user", "content": "hi"}], response_format=fmt))
    assert config.response_mime_type == "application/json"
    assert config.response_json_schema == SCHEMA
    assert config.response_schema is None  # Google's OpenAPI subset: not used


def test_an_inline_image_is_sent_as_its_bytes_and_mime_type() -> None:
    contents, _ = request_of(
        call(
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is it?"},
                        {"type": "image_url", "image_url": {"url": DATA_URL, "detail": "low"}},
                    ],
                }
            ]
        )
    )
    parts = contents[0].parts or []
    assert parts[0].text == "What is it?"
    blob = parts[1].inline_data
    assert blob is not None
    assert (blob.mime_type, blob.data) == ("image/png", PNG)


@pytest.mark.parametrize(
    ("url", "mime"),
    [
        ("https://cdn.example/meal.JPG", "image/jpeg"),
        ("https://cdn.example/a/b.webp?sig=abc.png", "image/webp"),
        ("https://cdn.example/photo", None),  # the API reads the type from the fetched file
        ("https://cdn.example.png/photo", None),
        ("https://cdn.example/doc.pdf", None),
    ],
)
def test_an_image_url_is_sent_as_file_data(url: str, mime: str | None) -> None:
    message: ChatMessage = {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": url}}],
    }
    contents, _ = request_of(call([message]))
    file_data = (contents[0].parts or [])[0].file_data
    assert file_data is not None
    assert (file_data.file_uri, file_data.mime_type) == (url, mime)
    assert url_image_type(url) == mime


@pytest.mark.parametrize(
    "url",
    [
        "data:image/png;base64,%%%not-base64",
        "data:image/png,rawbytes",  # not base64
        "data:;base64,AAAA",  # no MIME type
        "ftp://example.org/a.png",
        "",
    ],
)
def test_an_image_the_api_cannot_take_is_an_invalid_image(url: str) -> None:
    message: ChatMessage = {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": url}}],
    }
    with pytest.raises(InvalidImage) as raised:
        request_of(call([message]))
    assert raised.value.code is ErrorCode.INVALID_IMAGE


def test_a_call_without_user_or_assistant_messages_is_rejected() -> None:
    with pytest.raises(BackendRejected):
        request_of(call([{"role": "system", "content": "Be brief."}]))


def test_an_unknown_role_is_rejected() -> None:
    with pytest.raises(BackendRejected) as raised:
        request_of(call([{"role": "tool", "content": "42"}]))
    assert not raised.value.retryable


# --- response -----------------------------------------------------------------------


def answer(**fields: Any) -> types.GenerateContentResponse:
    return types.GenerateContentResponse.model_validate(fields)


def test_the_result_reads_the_first_candidate_and_the_usage() -> None:
    response = answer(
        candidates=[
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "thinking it over", "thought": True},
                        {"text": "Hello, "},
                        {"text": "there."},
                    ],
                },
                "finish_reason": "STOP",
            },
            {"content": {"role": "model", "parts": [{"text": "other"}]}},
        ],
        usage_metadata={
            "prompt_token_count": 11,
            "candidates_token_count": 5,
            "thoughts_token_count": 20,
            "total_token_count": 36,
        },
        model_version="gemini-3.5-flash-001",
    )
    result = result_of(response, backend="gemini", requested_model="gemini-3.5-flash")
    assert result.text == "Hello, there."
    assert (result.prompt_tokens, result.completion_tokens) == (11, 25)  # thoughts are output
    assert (result.model, result.finish_reason, result.backend) == (
        "gemini-3.5-flash-001",
        "stop",
        "gemini",
    )


def test_without_usage_or_model_version() -> None:
    response = answer(candidates=[{"content": {"parts": [{"text": "ok"}]}}])
    result = result_of(response, backend="gemini", requested_model="gemini-x")
    assert (result.text, result.model, result.finish_reason) == ("ok", "gemini-x", "stop")
    assert (result.prompt_tokens, result.completion_tokens) == (0, 0)


def test_a_filtered_candidate_without_content_is_an_empty_content_filter_answer() -> None:
    response = answer(candidates=[{"finish_reason": "SAFETY"}])
    result = result_of(response, backend="gemini", requested_model="gemini-x")
    assert (result.text, result.finish_reason) == ("", "content_filter")


def test_a_blocked_prompt_is_rejected_naming_the_reason() -> None:
    response = answer(
        prompt_feedback={"block_reason": "PROHIBITED_CONTENT", "block_reason_message": "no"},
        usage_metadata={"prompt_token_count": 9},
    )
    with pytest.raises(BackendRejected) as raised:
        result_of(response, backend="gemini", requested_model="gemini-x")
    assert not raised.value.retryable
    assert "PROHIBITED_CONTENT" in raised.value.message


def test_no_candidate_and_no_block_reason_is_a_bad_response() -> None:
    with pytest.raises(BackendBadResponse):
        result_of(answer(), backend="gemini", requested_model="gemini-x")


@pytest.mark.parametrize(
    ("reason", "word"),
    [
        (types.FinishReason.STOP, "stop"),
        (types.FinishReason.MAX_TOKENS, "length"),
        (types.FinishReason.SAFETY, "content_filter"),
        (types.FinishReason.RECITATION, "content_filter"),
        (types.FinishReason.BLOCKLIST, "content_filter"),
        (types.FinishReason.PROHIBITED_CONTENT, "content_filter"),
        (types.FinishReason.SPII, "content_filter"),
        (types.FinishReason.IMAGE_SAFETY, "content_filter"),
        (types.FinishReason.MALFORMED_FUNCTION_CALL, "malformed_function_call"),
        (types.FinishReason.OTHER, "other"),
        (types.FinishReason.FINISH_REASON_UNSPECIFIED, "stop"),
        ("SOMETHING_NEW", "something_new"),  # a value this SDK does not know yet
        (None, "stop"),
    ],
)
def test_finish_reasons_in_openai_words(reason: object, word: str) -> None:
    assert finish_reason_of(reason) == word


# --- errors -------------------------------------------------------------------------


class FakeResponse:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


def api_error(
    code: int,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    message: str = f"upstream says: key {KEY} at 10.1.2.3",
) -> genai_errors.APIError:
    error: dict[str, Any] = {"code": code, "message": message, "status": "WHATEVER"}
    if details is not None:
        error["details"] = details
    kind = genai_errors.ClientError if code < 500 else genai_errors.ServerError
    return kind(code, {"error": error}, FakeResponse(headers or {}))


def retry_info(delay: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


AUTH = ErrorCode.BACKEND_AUTH_ERROR
KEY_INVALID = {
    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
    "reason": "API_KEY_INVALID",
    "domain": "googleapis.com",
}


@pytest.mark.parametrize(
    ("error", "kind", "code", "retryable", "retry_after"),
    [
        (api_error(400), BackendRejected, ErrorCode.BACKEND_ERROR, False, None),
        (api_error(400, [KEY_INVALID]), BackendAuthError, AUTH, False, None),
        (api_error(401), BackendAuthError, AUTH, False, None),
        (api_error(403), BackendAuthError, AUTH, False, None),
        (api_error(404), BackendRejected, ErrorCode.BACKEND_ERROR, False, None),
        (api_error(408), BackendError, ErrorCode.BACKEND_ERROR, True, None),
        (api_error(429), BackendRateLimited, ErrorCode.RATE_LIMITED, True, None),
        (
            api_error(429, [retry_info("12s")]),
            BackendRateLimited,
            ErrorCode.RATE_LIMITED,
            True,
            12.0,
        ),
        (  # the header wins over the detail
            api_error(429, [retry_info("17s")], {"Retry-After": "5"}),
            BackendRateLimited,
            ErrorCode.RATE_LIMITED,
            True,
            5.0,
        ),
        (
            api_error(429, [retry_info("0.5s")], {"retry-after-ms": "1500"}),
            BackendRateLimited,
            ErrorCode.RATE_LIMITED,
            True,
            1.5,
        ),
        (  # capped, as every Retry-After
            api_error(429, [retry_info("3600s")]),
            BackendRateLimited,
            ErrorCode.RATE_LIMITED,
            True,
            60.0,
        ),
        (api_error(500), BackendError, ErrorCode.BACKEND_ERROR, True, None),
        (api_error(503, [retry_info("2s")]), BackendError, ErrorCode.BACKEND_ERROR, True, 2.0),
        (api_error(504), BackendError, ErrorCode.BACKEND_ERROR, True, None),
    ],
)
def test_api_errors_map_to_the_documented_policy(
    error: genai_errors.APIError,
    kind: type[BackendError],
    code: ErrorCode,
    retryable: bool,
    retry_after: float | None,
) -> None:
    mapped = error_of(error, "gemini")
    assert type(mapped) is kind
    assert (mapped.code, mapped.retryable, mapped.retry_after) == (code, retryable, retry_after)
    assert "gemini" in mapped.message
    for secret in (KEY, "10.1.2.3", "upstream says"):
        assert secret not in mapped.message


def test_an_error_without_a_json_body_or_response() -> None:
    error = genai_errors.ServerError(502, {"message": "<html>bad gateway</html>"}, None)
    mapped = error_of(error, "gemini")
    assert (mapped.code, mapped.retryable, mapped.retry_after) == (
        ErrorCode.BACKEND_ERROR,
        True,
        None,
    )
    assert "html" not in mapped.message


@pytest.mark.parametrize(
    ("details", "seconds"),
    [
        ([retry_info("12s")], 12.0),
        ([retry_info("1.5s")], 1.5),
        ([{"@type": "type.googleapis.com/google.rpc.QuotaFailure"}, retry_info("3s")], 3.0),
        ([retry_info("soon")], None),
        ([retry_info("xs")], None),
        ([{"retryDelay": "4s"}], None),  # only a RetryInfo detail counts
        ([], None),
    ],
)
def test_retry_delay(details: list[dict[str, Any]], seconds: float | None) -> None:
    assert retry_delay(details) == seconds


# --- transport errors (what the SDK lets through from aiohttp) ------------------------


def connection_key() -> Any:
    return SimpleNamespace(ssl=True, host="10.1.2.3", port=443)


@pytest.mark.parametrize(
    ("raised", "code", "retryable"),
    [
        (TimeoutError(), ErrorCode.BACKEND_TIMEOUT, True),
        (aiohttp.ServerTimeoutError("read timed out"), ErrorCode.BACKEND_TIMEOUT, True),
        (aiohttp.ConnectionTimeoutError("connect"), ErrorCode.BACKEND_UNAVAILABLE, True),
        (
            aiohttp.ClientConnectorError(connection_key(), ConnectionRefusedError(111, "refused")),
            ErrorCode.BACKEND_UNAVAILABLE,
            True,
        ),
        (aiohttp.ServerDisconnectedError(), ErrorCode.BACKEND_UNAVAILABLE, True),
        (aiohttp.ClientPayloadError("cut at 10.1.2.3"), ErrorCode.BACKEND_UNAVAILABLE, True),
        (ConnectionResetError(104, "reset"), ErrorCode.BACKEND_UNAVAILABLE, True),
        (aiohttp.ClientError("odd"), ErrorCode.BACKEND_ERROR, True),
        (ValueError("Expecting value: line 1"), ErrorCode.BACKEND_BAD_RESPONSE, False),
        (TypeError("'int' object is not iterable"), ErrorCode.BACKEND_BAD_RESPONSE, False),
        (api_error(503), ErrorCode.BACKEND_ERROR, True),
    ],
)
def test_what_the_sdk_raises_maps_to_ours(
    raised: BaseException, code: ErrorCode, retryable: bool
) -> None:
    with pytest.raises(BackendError) as mapped, mapped_errors("gemini"):
        raise raised
    assert (mapped.value.code, mapped.value.retryable) == (code, retryable)
    assert mapped.value.__cause__ is raised
    assert "10.1.2.3" not in mapped.value.message
