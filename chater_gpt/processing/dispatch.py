"""The entry point: one job → the reply bytes to publish, by the kind of request."""

from __future__ import annotations

from chater_gpt.contracts import ForgetRequest, Job, RejectedRequest
from chater_gpt.errors import StoreUnavailable
from chater_gpt.processing.observer import ProcessorObserver
from chater_gpt.processing.stages import ReplyStep
from chater_gpt.replies import error_bytes, forget_ack_bytes
from chater_gpt.storage.history import HistoryStore


class Dispatch:
    """Rejected input is answered with its error, a forget request deletes the user's
    stored conversations, and a chat request goes down the chat chain (`chat`)."""

    def __init__(self, chat: ReplyStep, history: HistoryStore, observer: ProcessorObserver) -> None:
        self._chat = chat
        self._history = history
        self._observer = observer

    async def process(self, job: Job) -> bytes:
        request = job.request
        if isinstance(request, RejectedRequest):
            assert request.key is not None  # keyless rejects never reach the processor
            self._observer.request_done(
                outcome="error",
                code=request.error.code.value,
                model="",
                backend="",
                route=job.route,
            )
            return error_bytes(request.key, request.error, request.style)
        if isinstance(request, ForgetRequest):
            return await self._forget(request, job.route)
        return await self._chat(request, job)

    async def _forget(self, request: ForgetRequest, route: str) -> bytes:
        try:
            deleted = await self._history.forget_user(request.user_email)
        except StoreUnavailable as exc:
            # Never acknowledge a deletion that did not happen: the caller retries.
            self._observer.request_done(
                outcome="error", code=exc.code.value, model="", backend="", route=route
            )
            return error_bytes(request.key, exc)
        self._observer.request_done(outcome="forget", code="", model="", backend="", route=route)
        return forget_ack_bytes(request.key, request.user_email, deleted)
