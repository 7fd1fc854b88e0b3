"""The event endpoint's shapes (the original event system's): a prompt extracted from
an event's `content`, and the core's answer or error in that system's words. Pure.

`content` is a plain prompt, or a JSON string (or object) holding OpenAI-style
`messages` (optionally with `model`, `max_tokens`, `temperature`). Errors are
`{"error": <code>, "details": <text>}`.
"""

from __future__ import annotations

from typing import Any

import orjson

from chater_gpt.errors import ChaterError, ErrorCode
from chater_gpt.gateway.openai_shapes import Caller, parse_request, to_core_request


class EventError(Exception):
    def __init__(self, status: int, code: str, details: str) -> None:
        super().__init__(details)
        self.status = status
        self.code = code
        self.details = details

    def body(self) -> dict[str, str]:
        return {"error": self.code, "details": self.details}


_CONNECTION = (503, "api_connection_error")
_AUTH = (502, "api_authentication_error")
_CLIENT = (400, "api_client_error")
_FORMAT = (502, "api_response_format_error")
# The core's error codes in the event system's words (README, "The event endpoint").
EVENT_ERRORS: dict[ErrorCode, tuple[int, str]] = {
    ErrorCode.INVALID_JSON: _CLIENT,
    ErrorCode.INVALID_REQUEST: _CLIENT,
    ErrorCode.INVALID_IMAGE: _CLIENT,
    ErrorCode.CONTEXT_TOO_LONG: _CLIENT,
    ErrorCode.PAYLOAD_TOO_LARGE: (413, "api_client_error"),
    ErrorCode.MODEL_NOT_ALLOWED: _CLIENT,
    ErrorCode.RATE_LIMITED: (429, "api_client_error"),
    ErrorCode.BUDGET_EXHAUSTED: (429, "api_client_error"),
    ErrorCode.UNAUTHORIZED: (401, "api_authentication_error"),
    ErrorCode.FORBIDDEN: (403, "api_authentication_error"),
    ErrorCode.BACKEND_ERROR: _CLIENT,
    ErrorCode.BACKEND_AUTH_ERROR: _AUTH,
    ErrorCode.BACKEND_BAD_RESPONSE: _FORMAT,
    ErrorCode.INVALID_MODEL_OUTPUT: _FORMAT,
    ErrorCode.BACKEND_TIMEOUT: (504, "api_connection_error"),
    ErrorCode.BACKEND_UNAVAILABLE: _CONNECTION,
    ErrorCode.STORE_UNAVAILABLE: _CONNECTION,
    ErrorCode.GATEWAY_TIMEOUT: (504, "api_connection_error"),
    ErrorCode.GATEWAY_UNAVAILABLE: _CONNECTION,
    ErrorCode.STREAM_INTERRUPTED: _CONNECTION,
    ErrorCode.INTERNAL_ERROR: (500, "api_response_format_error"),
}


def event_error(code: str, message: str, *, retryable: bool = False) -> EventError:
    """The event system's error for one of the core's codes. A backend error that is
    retryable (5xx/408 from the backend) is a connection problem, not the client's."""
    try:
        known = ErrorCode(code)
    except ValueError:
        known = ErrorCode.INTERNAL_ERROR
    status, name = EVENT_ERRORS[known]
    if known is ErrorCode.BACKEND_ERROR and retryable:
        status, name = 502, "api_connection_error"
    return EventError(status, name, message)


def from_exception(exc: ChaterError) -> EventError:
    return event_error(exc.code.value, exc.message, retryable=exc.retryable)


def _messages(content: Any) -> dict[str, Any]:
    """OpenAI's request from the event's content (prompt_extraction_failed when none)."""
    if isinstance(content, str):
        stripped = content.strip()
        if not stripped:
            raise EventError(400, "prompt_extraction_failed", "content is empty")
        if stripped[0] not in "[{":
            return {"messages": [{"role": "user", "content": content}]}
        try:
            content = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            return {"messages": [{"role": "user", "content": content}]}  # a prompt after all
    if isinstance(content, list):
        content = {"messages": content}
    if not isinstance(content, dict) or not isinstance(content.get("messages"), list):
        raise EventError(400, "prompt_extraction_failed", "content holds no messages")
    fields = ("messages", "model", "max_tokens", "temperature")
    return {name: content[name] for name in fields if name in content}


def core_event_request(body: Any, tenant: str | None, request_id: str) -> dict[str, Any]:
    """The core's chat request for an event body, or the event system's error."""
    if not isinstance(body, dict):
        raise EventError(400, "invalid_input_format", "the body must be a JSON object")
    if "content" not in body:
        raise EventError(400, "missing_content_field", "the body has no content field")
    try:
        parsed = parse_request(_messages(body["content"]))
        return to_core_request(parsed, Caller(tenant=tenant), request_id)
    except ChaterError as exc:
        raise EventError(400, "prompt_extraction_failed", exc.message) from None


def event_answer(reply: dict[str, Any]) -> dict[str, Any]:
    """`{"completion": ...}` from the core's reply value, or the mapped error."""
    error = reply.get("error")
    if isinstance(error, dict):
        raise event_error(
            str(error.get("code", "")),
            str(error.get("message", "the request failed")),
            retryable=bool(error.get("retryable", False)),
        )
    if not isinstance(reply.get("response"), str):
        raise EventError(502, "api_response_format_error", "the answer had no text")
    return {"completion": reply["response"]}
