"""Reading KoboldCPP's streams (its server's `handle_sse_stream`).

The chat API streams OpenAI's chunks (`data: <chunk>`, the usage chunk when
`stream_options.include_usage` is asked, `data: [DONE]`): `openai_chunk` hands them to
`openai_wire.ChunkReader`. The native `POST /api/extra/generate/stream` sends
`event: message` / `data: {"token": "...", "finish_reason": null}` frames, the last
one with the finish reason ("stop", "length", or "error" when generation failed), and
closes the connection: `TokenReader`.
"""

from __future__ import annotations

from collections.abc import Mapping

from chater_gpt.backends.http import cut_short
from chater_gpt.backends.openai_wire import ChunkReader
from chater_gpt.backends.sse import SseEvent
from chater_gpt.backends.streaming import event_json
from chater_gpt.errors import BackendBadResponse, BackendError


def openai_chunk(event: SseEvent, reader: ChunkReader, backend: str) -> str | None:
    """A chat stream's event: its text delta, None at `[DONE]`."""
    if event.data.strip() == "[DONE]":
        return None
    return reader.feed(event_json(event, backend))


class TokenReader:
    """The native stream's token events -> the text deltas, then the text and finish.

    As `complete` strips the native answer, the deltas leave the leading whitespace out
    and hold trailing whitespace back until more text follows: they join to the text.
    A stream that ends without its finish reason is cut short, unless the server never
    sends one (versions before it did: their stream just ends)."""

    def __init__(self, backend: str) -> None:
        self._backend = backend
        self._parts: list[str] = []
        self._pending = ""
        self._finish: str | None = None
        self._sends_finish = False

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def feed(self, data: object) -> str:
        token = data.get("token", "") if isinstance(data, Mapping) else None
        if not isinstance(data, Mapping) or not isinstance(token, str):
            raise BackendBadResponse(f"the {self._backend} backend sent an unexpected token")
        if "finish_reason" in data:
            self._sends_finish = True
        reason = data.get("finish_reason")
        if reason == "error":
            raise BackendError(f"the {self._backend} backend failed while generating")
        if reason:
            self._finish = str(reason)
        text = self._pending + token
        if not self._parts:
            text = text.lstrip()
        kept = text.rstrip()
        self._pending = text[len(kept) :]
        if kept:
            self._parts.append(kept)
        return kept

    def finish_reason(self) -> str:
        if self._finish is None and self._sends_finish:
            raise cut_short(self._backend)
        return self._finish or "stop"
