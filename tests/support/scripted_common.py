"""What every scripted provider server shares (OpenAI, Anthropic, Gemini).

A `ScriptedServer` serves an aiohttp application on 127.0.0.1 from its own thread (so
it works beside an in-process service and beside child processes), records every
request it receives, tracks how many it serves at once, and answers as scripted: a
latency (fixed or drawn from a function), queued faults (status codes with headers,
stalls), a fault function, or a total outage. Subclasses give the routes, the record
of a request and the provider's error body; `_serve` runs the script around their
answer. Queued `StreamFault`s break a stream after it has started (the provider's
mid-stream error event, or a cut connection); the servers that stream use them.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Self, TypeVar

from aiohttp import web

from tests.support.http_thread import ThreadedApp

R = TypeVar("R")


@dataclass(frozen=True)
class Fault:
    """One scripted failure: an HTTP status (with headers), or a stall of `delay` seconds."""

    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body: dict[str, Any] | None = None
    raw: bytes | None = None  # sent as is (e.g. a malformed answer with status 200)


@dataclass(frozen=True)
class StreamFault:
    """A failure after a stream has started (status 200 already sent): `after` text
    deltas go out, then the provider's mid-stream error event for `status` (or `body`
    as the event's data), or, with `cut`, the connection is closed without one."""

    after: int = 1
    status: int = 500
    body: dict[str, Any] | None = None
    cut: bool = False


def chars_to_tokens(text: str) -> int:
    """The scripted servers' token estimate for text: one token per 4 characters."""
    return math.ceil(len(text) / 4)


def split_for_stream(text: str) -> list[str]:
    """The stream's text deltas: one per word, each with the spaces after it."""
    pieces: list[str] = []
    current = ""
    for char in text:
        if current and not char.isspace() and current[-1].isspace():
            pieces.append(current)
            current = ""
        current += char
    if current:
        pieces.append(current)
    return pieces or [""]


class ScriptedServer(Generic[R]):
    """The script and the bookkeeping; subclasses add the provider's wire format."""

    thread_name = "scripted-server"

    def __init__(
        self,
        *,
        latency: float | Callable[[], float] = 0.0,
        answer: Callable[[dict[str, Any]], str],
        record: bool = True,
    ) -> None:
        self.latency = latency
        self.answer = answer
        self.record = record
        self.outage_status: int | None = None  # every request fails with this while set
        self.faults: deque[Fault] = deque()
        self.stream_faults: deque[StreamFault] = deque()
        self.fault_fn: Callable[[], Fault | None] | None = None
        self.fault_for_body: Callable[[dict[str, Any]], Fault | None] | None = None
        self.requests: list[R] = []
        self.calls = 0
        self.concurrent = 0
        self.max_concurrent = 0
        self.port = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._server: ThreadedApp | None = None

    # --- control (any thread) ---------------------------------------------------

    def fail_next(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def fail_stream_next(self, *faults: StreamFault) -> None:
        """Break the next streams (one fault each) after they have started."""
        with self._lock:
            self.stream_faults.extend(faults)

    def wait_until(self, predicate: Callable[[Self], bool], timeout: float) -> None:
        """Block until predicate(self) holds (checked at every request start and end)."""
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self), timeout):
                raise AssertionError(
                    f"scripted server: condition not met within {timeout} s "
                    f"(calls={self.calls}, concurrent={self.concurrent})"
                )

    def reset_stats(self) -> None:
        with self._lock:
            self.requests.clear()
            self.calls = 0
            self.max_concurrent = self.concurrent

    def start(self) -> Self:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self._add_routes(app)
        self._server = ThreadedApp(app, name=self.thread_name, backlog=1024)
        self._server.start()
        self.port = self._server.port
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- for subclasses -----------------------------------------------------------

    def _add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def _record_of(self, request: web.Request, body: dict[str, Any]) -> R:
        raise NotImplementedError

    def _error_body(self, status: int) -> dict[str, Any]:
        """The provider's error body for a fault that names no body of its own."""
        raise NotImplementedError

    def _fault_response(self, fault: Fault) -> web.Response:
        if fault.raw is not None:
            return web.Response(body=fault.raw, status=fault.status, headers=fault.headers)
        error = fault.body or self._error_body(fault.status)
        return web.json_response(error, status=fault.status, headers=fault.headers)

    def _next_stream_fault(self) -> StreamFault | None:
        with self._lock:
            return self.stream_faults.popleft() if self.stream_faults else None

    async def _serve(
        self,
        request: web.Request,
        body: dict[str, Any],
        respond: Callable[[], Awaitable[web.StreamResponse]],
        *,
        rejection: web.Response | None = None,
    ) -> web.StreamResponse:
        """Count and record the request, then answer it: `rejection` (the provider's
        own answer to a request it refuses: auth, validation) if given, else the next
        queued fault, the fault function's, the body's, the outage, or, after the
        latency, `respond()`. A rejected request leaves the queued faults alone."""
        with self._lock:
            self.calls += 1
            self.concurrent += 1
            self.max_concurrent = max(self.max_concurrent, self.concurrent)
            self._changed.notify_all()
            if self.record:
                self.requests.append(self._record_of(request, body))
            fault = self.faults.popleft() if self.faults and rejection is None else None
        try:
            if rejection is not None:
                return rejection
            if fault is None and self.fault_fn is not None:
                fault = self.fault_fn()
            if fault is None and self.fault_for_body is not None:
                fault = self.fault_for_body(body)
            if fault is None and self.outage_status is not None:
                fault = Fault(status=self.outage_status)
            latency = self.latency() if callable(self.latency) else self.latency
            if fault is not None:
                await asyncio.sleep(fault.delay)
                return self._fault_response(fault)
            if latency > 0:
                await asyncio.sleep(latency)
            return await respond()
        finally:
            with self._lock:
                self.concurrent -= 1
                self._changed.notify_all()


class Deltas:
    """An `on_delta` for a backend's `stream`: records each text delta in order."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def __call__(self, text: str) -> None:
        self.texts.append(text)

    @property
    def joined(self) -> str:
        return "".join(self.texts)
