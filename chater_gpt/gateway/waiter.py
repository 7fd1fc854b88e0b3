"""Requests waiting for their replies, by correlation id.

The reply reader hands every message of the instance's topic here: a reply goes to the
request waiting for that correlation id (a future), a stream chunk to the streamed
request waiting for it (a queue, which gets the reply too, as the stream's last
event); anything else (a caller that left, a reply of an earlier run of a reused topic)
is dropped. `fail_all` answers every open request at once (the gateway is stopping).
Pure asyncio, no I/O.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

from chater_gpt.errors import ChaterError

Reply = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """What a streamed request receives: a chunk, its reply, or its failure."""

    kind: Literal["chunk", "reply", "failed"]
    value: Reply | None = None
    error: ChaterError | None = None


Waiting = asyncio.Future[Reply] | asyncio.Queue[StreamEvent]


class ReplyWaiter:
    def __init__(self) -> None:
        self._pending: dict[str, Waiting] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._pending)

    def expect(self, correlation_id: str) -> asyncio.Future[Reply]:
        """Register before sending, so a fast reply cannot arrive unexpected."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._register(correlation_id, future)
        return future

    def expect_stream(self, correlation_id: str) -> asyncio.Queue[StreamEvent]:
        """As `expect`, for a streamed request: its chunks, then its reply, in order."""
        queue: asyncio.Queue[StreamEvent] = asyncio.Queue()
        self._register(correlation_id, queue)
        return queue

    def _register(self, correlation_id: str, waiting: Waiting) -> None:
        self._pending[correlation_id] = waiting
        self._idle.clear()

    async def wait_idle(self) -> None:
        """Until no request is open."""
        await self._idle.wait()

    def _pop(self, correlation_id: str) -> Waiting | None:
        waiting = self._pending.pop(correlation_id, None)
        if not self._pending:
            self._idle.set()
        return waiting

    def forget(self, correlation_id: str) -> None:
        """The caller stopped waiting (answered, timed out or disconnected)."""
        waiting = self._pop(correlation_id)
        if isinstance(waiting, asyncio.Future) and not waiting.done():
            waiting.cancel()

    def deliver(self, correlation_id: str, reply: Reply) -> bool:
        """Hand a reply to its waiting request; False when nobody waits for it."""
        waiting = self._pop(correlation_id)
        if isinstance(waiting, asyncio.Queue):
            waiting.put_nowait(StreamEvent("reply", reply))
            return True
        if waiting is None or waiting.done():
            return False
        waiting.set_result(reply)
        return True

    def deliver_chunk(self, correlation_id: str, chunk: Reply) -> bool:
        """Hand a stream chunk to its streamed request; False when nobody waits for it."""
        waiting = self._pending.get(correlation_id)
        if not isinstance(waiting, asyncio.Queue):
            return False
        waiting.put_nowait(StreamEvent("chunk", chunk))
        return True

    def fail(self, correlation_id: str, error: ChaterError) -> None:
        """Fail one open request (its message could not be sent)."""
        _failed(self._pop(correlation_id), error)

    def fail_all(self, error: ChaterError) -> int:
        """Fail every open request with `error`; returns how many there were."""
        pending, self._pending = self._pending, {}
        self._idle.set()
        for waiting in pending.values():
            _failed(waiting, error)
        return len(pending)


def _failed(waiting: Waiting | None, error: ChaterError) -> None:
    if isinstance(waiting, asyncio.Queue):
        waiting.put_nowait(StreamEvent("failed", error=error))
    elif waiting is not None and not waiting.done():
        waiting.set_exception(error)
