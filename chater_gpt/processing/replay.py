"""Replays: a request whose outcome was recorded is answered from the record, without a
second LLM call (no double billing); every other reply is recorded before it is sent."""

from __future__ import annotations

import logging

from chater_gpt.contracts import ChatRequest, Job
from chater_gpt.processing.observer import ProcessorObserver, store_degraded
from chater_gpt.processing.stages import ReplyStep
from chater_gpt.storage.outcomes import OutcomeStore

log = logging.getLogger(__name__)


class Replayed:
    def __init__(
        self, inner: ReplyStep, outcomes: OutcomeStore, observer: ProcessorObserver
    ) -> None:
        self._inner = inner
        self._outcomes = outcomes
        self._observer = observer

    async def __call__(self, request: ChatRequest, job: Job) -> bytes:
        recorded = await self._recorded(job.dedupe_id)
        if recorded is not None:
            self._observer.replayed()
            return recorded
        reply = await self._inner(request, job)
        await self._record(job.dedupe_id, reply)
        return reply

    async def _recorded(self, dedupe_id: str) -> bytes | None:
        try:
            return await self._outcomes.get(dedupe_id)
        except Exception as exc:
            store_degraded(
                log,
                self._observer,
                "outcomes",
                "outcome store unavailable; cannot detect a replay",
                exc,
            )
            return None

    async def _record(self, dedupe_id: str, reply: bytes) -> None:
        try:
            await self._outcomes.put(dedupe_id, reply)
        except Exception as exc:
            store_degraded(log, self._observer, "outcomes", "could not record the outcome", exc)
