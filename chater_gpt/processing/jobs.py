"""Jobs of the job API: the core records their progress and outcome in the job store.

A request with a `job-id` header (sent by a gateway for `POST /ai_request`) is marked
`processing` when the core starts it and `completed` or `error` with its answer before
its reply is published (so before its offset can be committed): the outcome is
recorded by the process that produced it, whether or not the gateway that took the job
is still alive. A job that waited in the queue longer than the store's limit is
`expired` and answered with `gateway_timeout` without an LLM call. A replay (the core
crashed mid-job) moves nothing back: the store's transitions only go forward.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import orjson

from chater_gpt.contracts import Job
from chater_gpt.errors import GatewayTimeout
from chater_gpt.processing.observer import ProcessorObserver, store_degraded
from chater_gpt.replies import error_bytes
from chater_gpt.storage.jobs import JobStore, Status

log = logging.getLogger(__name__)


class JobProcessor(Protocol):
    """A job → the reply bytes to publish (`Dispatch`; `kafka.pipeline` holds the same)."""

    async def process(self, job: Job) -> bytes: ...


def job_outcome(reply: bytes) -> tuple[Status, dict[str, Any]]:
    """The job's final status and result from the reply the core publishes."""
    try:
        value = orjson.loads(reply).get("value") or {}
    except (orjson.JSONDecodeError, AttributeError):
        value = {}
    error = value.get("error")
    if isinstance(error, dict) or "response" not in value:
        error = error if isinstance(error, dict) else {}
        return "error", {
            "error_code": str(error.get("code", "internal_error")).upper(),
            "message": str(error.get("message", "the job failed")),
            "retry_possible": bool(error.get("retryable", False)),
        }
    return "completed", {
        "ai_response": value.get("response", ""),
        "model_used": value.get("model", ""),
        "completion_time": value.get("timestamp"),
        "processing_time": value.get("processing_time"),
        "token_usage": value.get("usage") or {},
    }


class JobObserver(ProcessorObserver, Protocol):
    def job_finished(self, *, status: str) -> None:
        """A job reached its final status here (not counted again on a replay)."""
        ...


class JobTracked:
    """Wraps the processor: jobs have their progress recorded, other requests pass."""

    def __init__(self, inner: JobProcessor, jobs: JobStore, observer: JobObserver) -> None:
        self._inner = inner
        self._jobs = jobs
        self._observer = observer

    async def process(self, job: Job) -> bytes:
        if job.job_id is None:
            return await self._inner.process(job)
        try:
            started = await self._jobs.start(job.job_id)
        except Exception as exc:
            # Answer anyway: the caller may still get it (the outcome record, a replay).
            store_degraded(log, self._observer, "jobs", "could not mark a job started", exc)
            started = "missing"
        if started == "expired":
            self._observer.job_finished(status="expired")
            key = job.request.key or job.job_id
            return error_bytes(key, GatewayTimeout("the job waited too long in the queue"))
        reply = await self._inner.process(job)
        if started in ("completed", "error"):
            return reply  # a replay of a finished job: its outcome is recorded already
        status, result = job_outcome(reply)
        try:
            # Counted where recorded: two processings of one job (a replay while the
            # first still ran) record, and count, one outcome.
            if await self._jobs.finish(job.job_id, status, result):
                self._observer.job_finished(status=status)
        except Exception as exc:
            store_degraded(log, self._observer, "jobs", "could not record a job's outcome", exc)
        return reply
