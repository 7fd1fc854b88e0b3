"""The one place a chat request's answer becomes reply bytes, and any failure on the way
an error reply (counted, and logged without the caller's data)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from chater_gpt.contracts import ChatRequest, Job
from chater_gpt.errors import BackendError, ChaterError, ErrorCode
from chater_gpt.processing.observer import ProcessorObserver
from chater_gpt.processing.stages import AnswerStep
from chater_gpt.replies import error_bytes, reply_bytes

log = logging.getLogger(__name__)


class Replying:
    def __init__(
        self, inner: AnswerStep, observer: ProcessorObserver, clock: Callable[[], float]
    ) -> None:
        self._inner = inner
        self._observer = observer
        self._clock = clock

    async def __call__(self, request: ChatRequest, job: Job) -> bytes:
        try:
            answer = await self._inner(request, job)
            return reply_bytes(
                request.key,
                answer.result,
                self._clock() - job.received_at,
                cached=answer.cached,
                style=request.style,
            )
        except ChaterError as exc:
            self._failed(exc.code, request, job)
            # The backend's failures are the operator's business; the caller's are not.
            level = logging.WARNING if isinstance(exc, BackendError) else logging.INFO
            log.log(level, "answered with an error: %s", exc.code.value, extra={"key": request.key})
            return error_bytes(request.key, exc, request.style)
        except Exception:
            log.exception("unexpected error while answering", extra={"key": request.key})
            self._failed(ErrorCode.INTERNAL_ERROR, request, job)
            return error_bytes(
                request.key,
                ChaterError("internal error while answering the request"),
                request.style,
            )

    def _failed(self, code: ErrorCode, request: ChatRequest, job: Job) -> None:
        self._observer.request_done(
            outcome="error", code=code.value, model=request.model, backend="", route=job.route
        )
