"""Fallbacks: other models, then another backend, when the primary cannot answer.

`FallbackBackend` tries its links in order (the requested model through the model
router, then each FALLBACK_MODELS through it, each on its own provider's backend, then
the requested model on FALLBACK_BACKEND) and moves on only on a retryable failure or
an open breaker (a link that would ask a backend already tried for the same model is
skipped); any other error (a bad request, bad credentials) is the answer. When every
link fails, the *first* link's error is raised: when that is `CircuitOpen`, the
processor waits for the primary instead of answering with an error. The result
names the model (and the router, the provider) that actually answered.

The context-window fallback (a larger model when the prompt does not fit) is the
processor's: it is decided before any call, from CONTEXT_FALLBACK_MODELS.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from chater_gpt.backends.base import LLMBackend
from chater_gpt.backends.router import ModelRouter
from chater_gpt.domain import ChatCall, ChatResult, DeltaSink
from chater_gpt.errors import BackendError, ChaterError, CircuitOpen

log = logging.getLogger(__name__)

# (backend that failed, model it was asked for, the error) -> None; for metrics.
FallbackHook = Callable[[str, str, BaseException], None]


def should_fall_back(exc: BaseException) -> bool:
    return isinstance(exc, CircuitOpen) or (isinstance(exc, BackendError) and exc.retryable)


def serving(backend: LLMBackend, model: str) -> LLMBackend:
    """The backend that answers `model` through `backend` (a router's choice), so that a
    chain never asks one backend for one model twice."""
    if isinstance(backend, ModelRouter):
        try:
            return backend.backend_for(model)
        except ChaterError:
            return backend
    return backend


@dataclass(frozen=True, slots=True)
class FallbackLink:
    backend: LLMBackend
    model: str | None = None  # None: the model the request asked for


class FallbackBackend:
    def __init__(self, links: Sequence[FallbackLink], *, on_fallback: FallbackHook | None = None):
        if not links:
            raise ValueError("a fallback chain needs at least one backend")
        self._links = tuple(links)
        self._on_fallback = on_fallback

    @property
    def name(self) -> str:
        return self._links[0].backend.name

    async def complete(self, call: ChatCall) -> ChatResult:
        return await self._first_answer(call, lambda backend, attempt: backend.complete(attempt))

    async def stream(self, call: ChatCall, on_delta: DeltaSink) -> ChatResult:
        """As `complete`, moving on only before the first delta: once the caller has
        seen text, another model's answer would not continue it."""
        started = False

        async def relay(text: str) -> None:
            nonlocal started
            started = True
            await on_delta(text)

        def attempt(backend: LLMBackend, attempt: ChatCall) -> Awaitable[ChatResult]:
            return backend.stream(attempt, relay)

        return await self._first_answer(call, attempt, started=lambda: started)

    async def _first_answer(
        self,
        call: ChatCall,
        ask: Callable[[LLMBackend, ChatCall], Awaitable[ChatResult]],
        *,
        started: Callable[[], bool] = lambda: False,
    ) -> ChatResult:
        first_error: BackendError | None = None
        tried: set[tuple[int, str]] = set()
        for link in self._links:
            attempt = call if link.model is None else replace(call, model=link.model)
            target = serving(link.backend, attempt.model)
            if (id(target), attempt.model) in tried:
                continue
            tried.add((id(target), attempt.model))
            try:
                return await ask(link.backend, attempt)
            except BackendError as exc:
                if started() or not should_fall_back(exc):
                    raise
                first_error = first_error or exc
                if self._on_fallback is not None:
                    self._on_fallback(target.name, attempt.model, exc)
                log.info(
                    "backend failed; trying the next fallback",
                    extra={"backend": target.name, "code": exc.code.value},
                )
        assert first_error is not None  # at least one link was tried
        raise first_error

    async def ping(self) -> None:
        await self._links[0].backend.ping()

    async def aclose(self) -> None:
        closed: set[int] = set()
        for link in self._links:
            owned = link.backend.backends if isinstance(link.backend, ModelRouter) else ()
            for backend in owned or (link.backend,):
                if id(backend) not in closed:
                    closed.add(id(backend))
                    await backend.aclose()
