"""The one exception hierarchy of chater-gpt.

Every error that can reach a caller (an error reply on the response topic) is a
`ChaterError` with a code from the closed set `ErrorCode`. Messages are written
for the caller: no secrets, no stack traces, no upstream bodies, no addresses.
Library errors are chained as `__cause__` (``raise X(...) from exc``) so logs keep
the detail while replies stay clean.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class ErrorCode(StrEnum):
    """The documented error codes of an error reply (README, "Error codes")."""

    INVALID_JSON = "invalid_json"
    INVALID_REQUEST = "invalid_request"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    INVALID_IMAGE = "invalid_image"
    MODEL_NOT_ALLOWED = "model_not_allowed"
    RATE_LIMITED = "rate_limited"
    BUDGET_EXHAUSTED = "budget_exhausted"
    CONTEXT_TOO_LONG = "context_too_long"
    BACKEND_ERROR = "backend_error"
    BACKEND_TIMEOUT = "backend_timeout"
    BACKEND_AUTH_ERROR = "backend_auth_error"
    BACKEND_UNAVAILABLE = "backend_unavailable"
    BACKEND_BAD_RESPONSE = "backend_bad_response"
    INVALID_MODEL_OUTPUT = "invalid_model_output"
    STORE_UNAVAILABLE = "store_unavailable"
    INTERNAL_ERROR = "internal_error"
    # The HTTP gateway's own (never on a Kafka reply): the caller, or the wait, failed.
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    GATEWAY_TIMEOUT = "gateway_timeout"
    GATEWAY_UNAVAILABLE = "gateway_unavailable"
    STREAM_INTERRUPTED = "stream_interrupted"


class ChaterError(Exception):
    """Base of every error chater-gpt raises on purpose."""

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL_ERROR
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code.value}: {self.message})"


class ConfigError(ChaterError):
    """Invalid or missing configuration; raised at start-up, never sent as a reply."""


# --- the request itself is wrong: the caller must change it -------------------


class RequestError(ChaterError):
    code = ErrorCode.INVALID_REQUEST


class InvalidJson(RequestError):
    code = ErrorCode.INVALID_JSON


class InvalidRequest(RequestError):
    code = ErrorCode.INVALID_REQUEST


class PayloadTooLarge(RequestError):
    code = ErrorCode.PAYLOAD_TOO_LARGE


class InvalidImage(RequestError):
    code = ErrorCode.INVALID_IMAGE


class ModelNotAllowed(RequestError):
    code = ErrorCode.MODEL_NOT_ALLOWED


class ContextTooLong(RequestError):
    code = ErrorCode.CONTEXT_TOO_LONG


# --- a limit holds the request back: the caller may retry later ---------------


class LimitError(ChaterError):
    retryable = True


class RateLimited(LimitError):
    code = ErrorCode.RATE_LIMITED


class BudgetExhausted(LimitError):
    code = ErrorCode.BUDGET_EXHAUSTED


# --- the LLM backend failed ---------------------------------------------------


class BackendError(ChaterError):
    """A backend failure. `retryable` says whether the retry policy may try again."""

    code = ErrorCode.BACKEND_ERROR
    retryable = True


class BackendRejected(BackendError):
    """The backend refused the request as invalid (4xx other than auth/408/429)."""

    retryable = False


class BackendTimeout(BackendError):
    code = ErrorCode.BACKEND_TIMEOUT


class BackendUnavailable(BackendError):
    """Connection refused/reset, DNS failure, or the circuit breaker is open."""

    code = ErrorCode.BACKEND_UNAVAILABLE


class BackendRateLimited(BackendError):
    """HTTP 429 from the backend; `retry_after` carries its Retry-After when given."""

    code = ErrorCode.RATE_LIMITED


class BackendAuthError(BackendError):
    code = ErrorCode.BACKEND_AUTH_ERROR
    retryable = False


class BackendBadResponse(BackendError):
    """The backend answered, but not in the expected format or structure."""

    code = ErrorCode.BACKEND_BAD_RESPONSE
    retryable = False


class BackendConfigError(BackendError):
    """The backend is misconfigured (e.g. no URL, unknown model on the server)."""

    retryable = False


class InvalidModelOutput(ChaterError):
    """The model's answer is not the JSON the request asked for, even after the repair
    attempts. Not retryable: the same request would most likely fail the same way."""

    code = ErrorCode.INVALID_MODEL_OUTPUT


class StoreUnavailable(ChaterError):
    """A store could not reach Redis. The cause (`__cause__`) is the client's error; its
    message is never shown (it may carry the address). Most callers carry on without
    the store (README, "Redis outage"); a request that cannot, such as forgetting a
    user's conversations, is answered with this error and may be retried."""

    code = ErrorCode.STORE_UNAVAILABLE
    retryable = True

    def __init__(self, store: str) -> None:
        super().__init__(f"the {store} store is unavailable")
        self.store = store


class CircuitOpen(BackendUnavailable):
    """The breaker is open: the call was not attempted."""


# --- the HTTP gateway's own errors (answered over HTTP, never on a reply topic) -----


class Unauthorized(ChaterError):
    """No API key, or one the gateway does not know (the key is never in the message)."""

    code = ErrorCode.UNAUTHORIZED


class Forbidden(ChaterError):
    """A known API key that may not be used (revoked in the keys file)."""

    code = ErrorCode.FORBIDDEN


class GatewayTimeout(ChaterError):
    """No reply came within GATEWAY_TIMEOUT_SECONDS; the core may still answer and bill."""

    code = ErrorCode.GATEWAY_TIMEOUT
    retryable = True


class GatewayUnavailable(ChaterError):
    """The gateway is stopping (or cannot reach Kafka): retry, another instance answers."""

    code = ErrorCode.GATEWAY_UNAVAILABLE
    retryable = True


class StreamInterrupted(ChaterError):
    """A streamed answer was cut after part of it was sent: its processing failed over to
    another replica, which answers afresh (the parts cannot be joined). Retry."""

    code = ErrorCode.STREAM_INTERRUPTED
    retryable = True
