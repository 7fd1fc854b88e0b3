"""Stored conversations: the history a request continues, and its new turn. A failing
history store degrades the answer (no stored history) rather than stalling it."""

from __future__ import annotations

import logging

from chater_gpt.contracts import ChatRequest, Job
from chater_gpt.domain import ChatResult, Turn
from chater_gpt.processing.observer import ProcessorObserver, store_degraded
from chater_gpt.processing.stages import Answer, HistoryStep
from chater_gpt.storage.history import HistoryStore

log = logging.getLogger(__name__)


class Conversations:
    def __init__(
        self, inner: HistoryStep, history: HistoryStore, observer: ProcessorObserver
    ) -> None:
        self._inner = inner
        self._history = history
        self._observer = observer

    async def __call__(self, request: ChatRequest, job: Job) -> Answer:
        history = await self._load(request)
        answer = await self._inner(request, job, history)
        await self._remember(request, answer.result, job.dedupe_id)
        return answer

    async def _load(self, request: ChatRequest) -> list[Turn]:
        if request.conversation is None:
            return []
        try:
            return await self._history.load(request.conversation)
        except Exception as exc:
            # Degrade rather than stall: answer without stored history (README, faults).
            store_degraded(
                log, self._observer, "history", "history unavailable; answering without it", exc
            )
            return []

    async def _remember(self, request: ChatRequest, result: ChatResult, dedupe_id: str) -> None:
        if request.conversation is None:
            return
        turns = [Turn("user", request.message), Turn("assistant", result.text)]
        try:
            await self._history.append(request.conversation, turns, dedupe_id=dedupe_id)
        except Exception as exc:
            store_degraded(
                log, self._observer, "history", "could not store the conversation turn", exc
            )
