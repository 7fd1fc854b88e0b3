"""Requests waiting for their replies, by correlation id.

The reply reader hands every reply of the instance's topic to `deliver`; the request
waiting for that correlation id gets it, anything else (a caller that left, a reply of
an earlier run of a reused topic) is dropped. `fail_all` answers every open request at
once (the gateway is stopping). Pure asyncio, no I/O.
"""

from __future__ import annotations

import asyncio
from typing import Any

from chater_gpt.errors import ChaterError

Reply = dict[str, Any]


class ReplyWaiter:
    def __init__(self) -> None:
        self._pending: dict[str, asyncio.Future[Reply]] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._pending)

    def expect(self, correlation_id: str) -> asyncio.Future[Reply]:
        """Register before sending, so a fast reply cannot arrive unexpected."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        self._idle.clear()
        return future

    async def wait_idle(self) -> None:
        """Until no request is open."""
        await self._idle.wait()

    def _pop(self, correlation_id: str) -> asyncio.Future[Reply] | None:
        future = self._pending.pop(correlation_id, None)
        if not self._pending:
            self._idle.set()
        return future

    def forget(self, correlation_id: str) -> None:
        """The caller stopped waiting (answered, timed out or disconnected)."""
        future = self._pop(correlation_id)
        if future is not None and not future.done():
            future.cancel()

    def deliver(self, correlation_id: str, reply: Reply) -> bool:
        """Hand a reply to its waiting request; False when nobody waits for it."""
        future = self._pop(correlation_id)
        if future is None or future.done():
            return False
        future.set_result(reply)
        return True

    def fail(self, correlation_id: str, error: ChaterError) -> None:
        """Fail one open request (its message could not be sent)."""
        future = self._pop(correlation_id)
        if future is not None and not future.done():
            future.set_exception(error)

    def fail_all(self, error: ChaterError) -> int:
        """Fail every open request with `error`; returns how many there were."""
        pending, self._pending = self._pending, {}
        self._idle.set()
        for future in pending.values():
            if not future.done():
                future.set_exception(error)
        return len(pending)
