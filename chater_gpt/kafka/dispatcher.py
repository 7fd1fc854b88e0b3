"""Per-key ordering with parallelism across keys.

Each ordering key (a conversation) gets a FIFO queue and at most one worker task;
items of one key run one after another, different keys run concurrently. The
dispatcher bounds nothing itself: the consumer bounds how many items exist.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


class KeyedDispatcher(Generic[T]):
    def __init__(self, handler: Callable[[T], Awaitable[None]]) -> None:
        self._handler = handler
        self._queues: dict[str, deque[T]] = {}
        self._workers: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def active_keys(self) -> int:
        return len(self._queues)

    def submit(self, key: str, item: T) -> None:
        queue = self._queues.get(key)
        if queue is not None:
            queue.append(item)
            return
        self._queues[key] = deque((item,))
        self._idle.clear()
        task = asyncio.create_task(self._work(key), name="conversation-worker")
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)

    async def _work(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                item = queue[0]
                try:
                    await self._handler(item)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # The handler answers its own errors; reaching here is a bug.
                    # Log it and keep the conversation moving rather than stall it.
                    log.exception("unhandled error in request handler")
                queue.popleft()
        finally:
            del self._queues[key]
            if not self._queues:
                self._idle.set()

    async def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every queued item has been handled; False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def cancel_all(self) -> None:
        """Abandon whatever is still running (after the drain grace period)."""
        workers = list(self._workers)
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
