"""The backend call, timed and its cost counted; while the backend's breaker is open
the request waits, paused, for it to close instead of failing."""

from __future__ import annotations

from collections.abc import Callable

from chater_gpt.backends.base import LLMBackend
from chater_gpt.domain import ChatCall, ChatResult
from chater_gpt.processing.observer import ProcessorObserver
from chater_gpt.processing.waiting import PausedWait


class BackendCall:
    def __init__(
        self,
        backend: LLMBackend,
        breaker_wait: PausedWait,
        observer: ProcessorObserver,
        clock: Callable[[], float],
    ) -> None:
        self._backend = backend
        self._breaker_wait = breaker_wait
        self._observer = observer
        self._clock = clock

    async def __call__(self, call: ChatCall) -> ChatResult:
        return await self._breaker_wait.run(lambda: self._timed(call))

    async def _timed(self, call: ChatCall) -> ChatResult:
        started = self._clock()
        if call.on_delta is not None:
            result = await self._backend.stream(call, call.on_delta)
        else:
            result = await self._backend.complete(call)
        self._observer.backend_latency(backend=result.backend, seconds=self._clock() - started)
        # Every call is billed, a JSON re-ask too: counted here, once per call.
        self._observer.cost(model=result.model, provider=result.provider, usd=result.cost_usd)
        return result
