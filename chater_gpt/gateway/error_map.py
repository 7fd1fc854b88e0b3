"""Core error codes → HTTP statuses and OpenAI's error object.

Every `ErrorCode` has a status (a unit test holds the table whole). OpenAI's object is
`{"error": {"message", "type", "param", "code"}}`; `code` is the core's own code, so a
caller sees the same word on HTTP and on Kafka. Limits answer 429 with `Retry-After`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from chater_gpt.errors import ErrorCode

_REQUEST = "invalid_request_error"
_SERVER = "api_error"

# code → (HTTP status, OpenAI error type)
STATUS: dict[ErrorCode, tuple[int, str]] = {
    ErrorCode.INVALID_JSON: (400, _REQUEST),
    ErrorCode.INVALID_REQUEST: (400, _REQUEST),
    ErrorCode.INVALID_IMAGE: (400, _REQUEST),
    ErrorCode.CONTEXT_TOO_LONG: (400, _REQUEST),
    ErrorCode.UNAUTHORIZED: (401, "authentication_error"),
    ErrorCode.FORBIDDEN: (403, "permission_error"),
    ErrorCode.MODEL_NOT_ALLOWED: (404, _REQUEST),
    ErrorCode.PAYLOAD_TOO_LARGE: (413, _REQUEST),
    ErrorCode.RATE_LIMITED: (429, "rate_limit_error"),
    ErrorCode.BUDGET_EXHAUSTED: (429, "insufficient_quota"),
    ErrorCode.INTERNAL_ERROR: (500, _SERVER),
    ErrorCode.BACKEND_ERROR: (502, _SERVER),
    ErrorCode.BACKEND_AUTH_ERROR: (502, _SERVER),
    ErrorCode.BACKEND_BAD_RESPONSE: (502, _SERVER),
    ErrorCode.INVALID_MODEL_OUTPUT: (502, _SERVER),
    ErrorCode.BACKEND_UNAVAILABLE: (503, _SERVER),
    ErrorCode.STORE_UNAVAILABLE: (503, _SERVER),
    ErrorCode.GATEWAY_UNAVAILABLE: (503, _SERVER),
    ErrorCode.STREAM_INTERRUPTED: (503, _SERVER),
    ErrorCode.BACKEND_TIMEOUT: (504, _SERVER),
    ErrorCode.GATEWAY_TIMEOUT: (504, _SERVER),
}


@dataclass(frozen=True, slots=True)
class HttpError:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def http_error(
    code: str,
    message: str,
    *,
    param: str | None = None,
    retry_after: float | None = None,
) -> HttpError:
    """The HTTP answer for an error code (an unknown code is a 500, as a bug would be)."""
    try:
        status, kind = STATUS[ErrorCode(code)]
    except ValueError:
        status, kind, code = 500, _SERVER, ErrorCode.INTERNAL_ERROR.value
    headers: dict[str, str] = {}
    if retry_after is not None and status in (429, 503):
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return HttpError(status, body, headers)


def from_core_reply(error: dict[str, Any]) -> HttpError:
    """The HTTP answer for the core's error reply (`{"code", "message", "retryable", ...}`)."""
    retry_after = error.get("retry_after")
    return http_error(
        str(error.get("code", ErrorCode.INTERNAL_ERROR.value)),
        str(error.get("message", "the request failed")),
        retry_after=float(retry_after) if isinstance(retry_after, int | float) else None,
    )
