"""Small HTTP helpers shared by the backends."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from chater_gpt.errors import (
    BackendAuthError,
    BackendBadResponse,
    BackendError,
    BackendRateLimited,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
)

# A backend asking us to wait longer than this is treated as if it said this much:
# the breaker and the daily budget handle longer outages better than one sleeping task.
MAX_RETRY_AFTER_SECONDS = 60.0


def parse_retry_after(
    headers: Mapping[str, str] | None, *, now: float | None = None
) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` (seconds or an HTTP date)."""
    if not headers:
        return None
    lowered = {name.lower(): value for name, value in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis is not None:
        try:
            return _bounded(float(millis) / 1000.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return _bounded(float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return _bounded(parsed.timestamp() - (time.time() if now is None else now))


def _bounded(seconds: float) -> float | None:
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def raise_for_status(status: int, headers: Mapping[str, str], backend: str) -> None:
    """Our error for an HTTP status, with OpenAI's semantics: 401/403 credentials, 429 rate
    limit (Retry-After kept), 408 and 5xx retryable, any other 4xx the request's fault."""
    if status < 400:
        return
    if status in (401, 403):
        raise BackendAuthError(f"the {backend} backend rejected the credentials")
    if status == 429:
        raise BackendRateLimited(
            f"the {backend} backend is rate limiting requests",
            retry_after=parse_retry_after(headers),
        )
    if status == 408 or status >= 500:
        raise BackendError(
            f"the {backend} backend failed (HTTP {status})", retry_after=parse_retry_after(headers)
        )
    raise BackendRejected(f"the {backend} backend rejected the request (HTTP {status})")


def error_for_status(status: int, headers: Mapping[str, str], backend: str) -> BackendError:
    """`raise_for_status`'s error for an error status, returned (a 2xx/3xx: retryable)."""
    try:
        raise_for_status(status, headers, backend)
    except BackendError as mapped:
        return mapped
    return BackendError(f"the {backend} backend failed (HTTP {status})")


# The error `type` of OpenAI's and Anthropic's error objects -> the HTTP status each
# stands for: an error event inside a stream has no status of its own (the answer
# began with 200), so it is mapped as its status would be.
ERROR_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "timeout_error": 504,
    "api_error": 500,
    "server_error": 500,
    "overloaded_error": 529,
}


def stream_error(error: object, backend: str) -> BackendError:
    """Our error for a provider's error event inside a stream (its `error` object: an
    HTTP status as `code` (llama.cpp), a known `code` word (OpenAI's
    "rate_limit_exceeded"), else its `type`); unknown ones are retryable. The
    provider's message is not kept (it may quote the request)."""
    status = 500
    if isinstance(error, Mapping):
        code, kind = error.get("code"), error.get("type")
        if isinstance(code, int) and 400 <= code < 600:
            status = code
        elif isinstance(code, str) and code in ERROR_TYPE_STATUS:
            status = ERROR_TYPE_STATUS[code]
        elif isinstance(kind, str):
            status = ERROR_TYPE_STATUS.get(kind, 500)
    return error_for_status(status, {}, backend)


def cut_short(backend: str) -> BackendUnavailable:
    """A stream that ended before the provider said it was finished."""
    return BackendUnavailable(f"the {backend} backend's stream ended before the answer did")


@contextmanager
def mapped_aiohttp_errors(backend: str) -> Iterator[None]:
    """aiohttp's transport errors as ours, chained; messages carry no URL or body. A
    connect timeout, a refused, reset or cut connection (an answer cut short, too):
    unavailable; the deadline: a timeout; any other client error: retryable."""
    unreachable = f"the {backend} backend could not be reached"
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        raise BackendUnavailable(unreachable) from exc
    except TimeoutError as exc:
        raise BackendTimeout(f"the {backend} backend timed out") from exc
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError) as exc:
        raise BackendUnavailable(unreachable) from exc
    except aiohttp.ClientError as exc:
        raise BackendError(f"the {backend} backend failed") from exc


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self, backend: str) -> Any:
        """The body as JSON; BackendBadResponse when it is not."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise BackendBadResponse(f"the {backend} backend sent a non-JSON answer") from exc

    def json_or_none(self) -> Any:
        """The body as JSON, or None (an error answer need not be JSON)."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None


class JsonHttp:
    """The plain-aiohttp clients' one session: JSON requests with the backend's headers,
    a total timeout per request, transport errors mapped (`mapped_aiohttp_errors`). The
    session is opened on first use (it belongs to the running event loop)."""

    def __init__(self, backend: str, *, timeout: float, headers: Mapping[str, str]) -> None:
        self._backend = backend
        self._timeout = timeout
        self._headers = {"Content-Type": "application/json", **headers}
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
                headers=self._headers,
            )
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> HttpAnswer:
        """The whole answer, whatever its status."""
        with mapped_aiohttp_errors(self._backend):
            async with self.session().request(
                method, url, data=data, headers=headers, params=params
            ) as response:
                body = await response.read()
                return HttpAnswer(response.status, response.headers, body)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
