"""Server-sent events (the WHATWG `text/event-stream` format) read from an aiohttp body,
for the plain-aiohttp clients' streams.

Robust to what networks and servers do: a frame split across reads (even inside a
line, or inside a UTF-8 character), CRLF, CR or LF line ends, comment lines (`:`,
e.g. keep-alives), multi-line `data` (joined by "\\n"), and one optional space after
the colon. `id` and `retry` are ignored (the clients never reconnect: a stream
resumed elsewhere would duplicate text). A frame not ended by a blank line when the
body ends is dropped, as the standard says: the caller's own end-of-stream check
(`[DONE]`, `message_stop`, a finish reason) tells a cut stream from a finished one.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str  # "message" when the frame names none
    data: str


class SseParser:
    """Bytes in, complete events out; keeps the partial line and frame between feeds."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []
        self._has_data = False

    def feed(self, chunk: bytes) -> list[SseEvent]:
        self._buffer += chunk
        events: list[SseEvent] = []
        while True:
            line, rest = _split_line(self._buffer)
            if line is None:
                return events
            self._buffer = rest
            event = self._line(line.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)

    def finish(self) -> list[SseEvent]:
        """At the body's end: a CR left waiting still ends its line (never a frame
        left unterminated: that one is dropped)."""
        if not self._buffer.endswith(b"\r"):
            return []
        line, self._buffer = self._buffer[:-1], b""
        event = self._line(line.decode("utf-8", errors="replace"))
        return [event] if event is not None else []

    def _line(self, line: str) -> SseEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
            self._has_data = True
        return None

    def _dispatch(self) -> SseEvent | None:
        event, data, has_data = self._event, "\n".join(self._data), self._has_data
        self._event, self._data, self._has_data = "", [], False
        if not has_data:  # a frame with no data line is not dispatched
            return None
        return SseEvent(event or "message", data)


def _split_line(buffer: bytes) -> tuple[bytes | None, bytes]:
    """The first whole line and the rest. A CR at the very end waits for the next read:
    it may be the first half of a CRLF."""
    lf, cr = buffer.find(b"\n"), buffer.find(b"\r")
    if cr == -1 and lf == -1:
        return None, buffer
    if cr == -1 or (lf != -1 and lf < cr):
        return buffer[:lf], buffer[lf + 1 :]
    if cr + 1 == len(buffer):
        return None, buffer
    end = cr + 2 if buffer[cr + 1 : cr + 2] == b"\n" else cr + 1
    return buffer[:cr], buffer[end:]


async def sse_events(body: AsyncIterable[bytes]) -> AsyncIterator[SseEvent]:
    """The events of a streamed body (e.g. `response.content.iter_any()`), as they come."""
    parser = SseParser()
    async for chunk in body:
        for event in parser.feed(chunk):
            yield event
    for event in parser.finish():
        yield event
