"""The one place a chat request's answer becomes reply bytes, and any failure on the way
an error reply (counted, and logged without the caller's data)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from chater_gpt.contracts import ChatRequest, Job
from chater_gpt.domain import ChatResult
from chater_gpt.errors import BackendError, ChaterError, ErrorCode
from chater_gpt.processing.observer import ProcessorObserver
from chater_gpt.processing.stages import AnswerStep
from chater_gpt.processing.streaming import Streams
from chater_gpt.replies import error_bytes, reply_bytes

log = logging.getLogger(__name__)


class Replying:
    def __init__(
        self,
        inner: AnswerStep,
        observer: ProcessorObserver,
        clock: Callable[[], float],
        streams: Streams | None = None,
    ) -> None:
        self._inner = inner
        self._observer = observer
        self._clock = clock
        self._streams = streams

    async def __call__(self, request: ChatRequest, job: Job) -> bytes:
        try:
            answer = await self._inner(request, job)
            self._end_stream(request, job, answer.result, None)
            return reply_bytes(
                request.key,
                answer.result,
                self._clock() - job.received_at,
                cached=answer.cached,
                style=request.style,
            )
        except ChaterError as exc:
            self._end_stream(request, job, None, exc)
            self._failed(exc.code, request, job)
            # The backend's failures are the operator's business; the caller's are not.
            level = logging.WARNING if isinstance(exc, BackendError) else logging.INFO
            log.log(level, "answered with an error: %s", exc.code.value, extra={"key": request.key})
            return error_bytes(request.key, exc, request.style)
        except Exception:
            log.exception("unexpected error while answering", extra={"key": request.key})
            self._failed(ErrorCode.INTERNAL_ERROR, request, job)
            internal = ChaterError("internal error while answering the request")
            self._end_stream(request, job, None, internal)
            return error_bytes(request.key, internal, request.style)
        except BaseException:
            # Cancelled (a shutdown, a revoked partition): the request is processed again
            # later, as a new attempt; this one's stream is dropped, not ended.
            if request.stream and self._streams is not None:
                self._streams.discard(job)
            raise

    def _end_stream(
        self, request: ChatRequest, job: Job, result: ChatResult | None, error: ChaterError | None
    ) -> None:
        # Before the reply is made: a stream's end is published ahead of its reply.
        if request.stream and self._streams is not None:
            self._streams.end(request, job, result, error)

    def _failed(self, code: ErrorCode, request: ChatRequest, job: Job) -> None:
        self._observer.request_done(
            outcome="error", code=code.value, model=request.model, backend="", route=job.route
        )
