"""Reading a streamed answer: what every backend's `stream` shares.

Errors are mapped around the reading only: the caller's `on_delta` runs between two
items, outside the mapping, so its own failures (a timeout of its producer, say)
stay its own and are never taken for the backend's. `streamed_events` opens an
aiohttp request whose answer is server-sent events: an error status is read and
mapped as `complete` maps it, then the events come with transport errors mapped (a
connection cut mid-answer: `BackendUnavailable`, as `mapped_aiohttp_errors` says).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractContextManager, asynccontextmanager
from typing import Any, TypeVar

import aiohttp
import orjson

from chater_gpt.backends.http import error_for_status, mapped_aiohttp_errors
from chater_gpt.backends.sse import SseEvent, sse_events
from chater_gpt.domain import ChatResult
from chater_gpt.errors import BackendBadResponse, BackendError

T = TypeVar("T")

# A provider's usage object -> (prompt, completion, cached prompt) tokens.
UsageCounts = Callable[[Mapping[str, Any]], tuple[int, int, int]]

# (status, headers, body) of an error answer -> our error.
StatusErrorFor = Callable[[int, Mapping[str, str], bytes], BackendError]


async def mapped_items(
    source: AsyncIterator[T], mapping: Callable[[], AbstractContextManager[None]]
) -> AsyncIterator[T]:
    """`source`'s items, each read inside a fresh `mapping()` (the errors of reading
    mapped), the consumer's code between them outside it."""
    while True:
        with mapping():
            try:
                item = await anext(source)
            except StopAsyncIteration:
                return
        yield item


@asynccontextmanager
async def streamed_events(
    pending: Awaitable[aiohttp.ClientResponse],
    backend: str,
    error_for: StatusErrorFor | None = None,
) -> AsyncIterator[AsyncIterator[SseEvent]]:
    """The SSE events of the answer to `pending` (a session's `post(...)`); an error
    status raises `error_for`'s error (by default `http.raise_for_status`'s)."""
    with mapped_aiohttp_errors(backend):
        response = await pending
    try:
        if response.status >= 400:
            with mapped_aiohttp_errors(backend):
                raw = await response.read()
            if error_for is not None:
                raise error_for(response.status, response.headers, raw)
            raise error_for_status(response.status, response.headers, backend)
        yield mapped_items(
            sse_events(response.content.iter_any()), lambda: mapped_aiohttp_errors(backend)
        )
    finally:
        response.release()  # an answer not read to its end closes its connection


async def relay(
    events: AsyncIterator[SseEvent],
    feed: Callable[[SseEvent], str | None],
    on_delta: Callable[[str], Awaitable[None]],
) -> None:
    """Each event through `feed` (its text delta; None: the stream's end marker), every
    non-empty delta on to `on_delta`."""
    async for event in events:
        text = feed(event)
        if text is None:
            return
        if text:
            await on_delta(text)


def event_json(event: SseEvent, backend: str) -> object:
    """An event's data as JSON, or BackendBadResponse."""
    try:
        return orjson.loads(event.data)
    except orjson.JSONDecodeError as exc:
        raise BackendBadResponse(f"the {backend} backend sent an unexpected stream event") from exc


def streamed_result(
    *,
    backend: str,
    parts: list[str],
    model: str,
    finish_reason: str,
    usage: Mapping[str, Any] | None,
    counts: UsageCounts,
) -> ChatResult:
    """The ChatResult of a stream read to its end: its text, and the usage the events
    reported (None: none did, and the service counts it: `usage_reported`)."""
    try:
        prompt, completion, cached = counts(usage or {})
    except (TypeError, ValueError, AttributeError) as exc:
        raise BackendBadResponse(f"the {backend} backend sent an unexpected usage") from exc
    return ChatResult(
        text="".join(parts),
        model=model,
        prompt_tokens=prompt,
        completion_tokens=completion,
        finish_reason=finish_reason,
        backend=backend,
        cached_prompt_tokens=cached,
        usage_reported=usage is not None,
    )
