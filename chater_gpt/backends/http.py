"""Small HTTP helpers shared by the backends."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import aiohttp

from chater_gpt.errors import (
    BackendAuthError,
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
