"""Waiting, paused, for a reason that is nobody's fault (an open breaker, a spent global
budget): the request waits in the service and consumption pauses meanwhile, instead of
the request being answered with an error."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from chater_gpt.domain import PauseReason
from chater_gpt.errors import ChaterError

T = TypeVar("T")


class Pauser(Protocol):
    """Stops and restarts consumption for a named reason (breaker, budget)."""

    def pause(self, reason: PauseReason) -> None: ...

    def resume(self, reason: PauseReason) -> None: ...


class PausedWait:
    """Retries an attempt while it raises `waits_on`, sleeping between tries the error's
    `retry_after` (`default_wait` when it has none), at least `min_wait` and at most
    `max_wait`. Consumption stays paused for `reason` while at least one request waits,
    and resumes when the last one leaves, however it leaves (answered, or failed): a
    pause nobody waits on would never be lifted."""

    def __init__(
        self,
        pauser: Pauser,
        reason: PauseReason,
        *,
        waits_on: type[ChaterError],
        max_wait: float,
        min_wait: float = 0.0,
        default_wait: float = 0.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._pauser = pauser
        self._reason = reason
        self._waits_on = waits_on
        self._max_wait = max_wait
        self._min_wait = min_wait
        self._default_wait = default_wait
        self._sleep = sleep
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Requests waiting now."""
        return self._waiting

    async def run(self, attempt: Callable[[], Awaitable[T]]) -> T:
        entered = False
        try:
            while True:
                try:
                    return await attempt()
                except self._waits_on as exc:
                    if not entered:
                        self._enter()
                        entered = True
                    await self._sleep(self._delay(exc.retry_after))
        finally:
            if entered:
                self._leave()

    def _delay(self, retry_after: float | None) -> float:
        wait = max(retry_after or self._default_wait, self._min_wait)
        return min(wait, self._max_wait)

    def _enter(self) -> None:
        self._waiting += 1
        self._pauser.pause(self._reason)

    def _leave(self) -> None:
        self._waiting -= 1
        if self._waiting == 0:
            self._pauser.resume(self._reason)
