"""The job API's routes: `POST /ai_request` (submit, answered at once with an id) and
`GET /get_request/<id>` (its status, from the job store that every gateway and the core
share).

A submission is checked (body, app code, request type, the app's rate), queued in the
job store (503 with `Retry-After` past the queue's capacity), then sent to the request
topic with a `job-id` header; it is answered `success` only once the broker holds it,
so a gateway restart after the answer loses nothing. The core records the job's
progress and outcome (`processing/jobs.py`), whichever gateway took it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from chater_gpt.errors import ChaterError
from chater_gpt.gateway.job_shapes import (
    AppCodes,
    JobApiError,
    core_request,
    invalid,
    parse_submission,
    render_prompt,
    request_type,
    status_body,
)
from chater_gpt.gateway.requester import Requester
from chater_gpt.storage.jobs import JobStore
from chater_gpt.storage.rates import Rate, RateStore

log = logging.getLogger(__name__)
_UNAVAILABLE = "SERVICE_UNAVAILABLE"


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )


def _rejected(error: JobApiError) -> web.Response:
    return _json(error.body(), error.status, error.headers())


class JobApi:
    def __init__(
        self,
        requester: Requester,
        store: JobStore,
        apps: AppCodes,
        rates: RateStore,
        draining: Callable[[], bool] = lambda: False,
        close: Callable[[], Awaitable[None]] | None = None,
        count: Callable[[str], None] = lambda outcome: None,
    ) -> None:
        self._close = close
        self._count = count  # each submission's outcome: accepted, or the error code
        self._requester = requester
        self._store = store
        self._apps = apps
        self._rates = rates
        self._draining = draining

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_post("/ai_request", self._submit)
        router.add_get("/get_request/{request_id}", self._status)

    async def aclose(self) -> None:
        if self._close is not None:
            await self._close()  # the store's Redis client

    async def _submit(self, request: web.Request) -> web.Response:
        try:
            if self._draining():
                raise JobApiError(503, _UNAVAILABLE, "the gateway is stopping; retry", 1)
            job_id, position = await self._queue(request)
        except JobApiError as exc:
            self._count(exc.code)
            return _rejected(exc)
        self._count("accepted")
        return _json(
            {
                "status": "success",
                "request_id": job_id,
                "message": f"the request is queued at position {position + 1}",
            }
        )

    async def _queue(self, request: web.Request) -> tuple[str, int]:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            raise invalid("the body is not JSON") from None
        except web.HTTPRequestEntityTooLarge:
            raise JobApiError(413, "INVALID_REQUEST", "the body is too large") from None
        submission = parse_submission(body)
        app = self._apps.identify(submission.app_code)
        kind = request_type(app, submission.request_type)
        prompt = render_prompt(kind, submission.request)
        await self._check_rate(app.tenant, app.policy.job_rate)
        job_id = uuid.uuid4().hex
        record = {"app_name": app.name, "request_type": submission.request_type}
        try:
            position = await self._store.submit(job_id, record)
        except ChaterError:
            raise JobApiError(503, _UNAVAILABLE, "the job store is unavailable; retry", 1) from None
        if position is None:
            raise JobApiError(503, "QUEUE_FULL", "the queue is full; retry later", 5)
        try:
            await self._requester.submit(job_id, core_request(app, kind, prompt, job_id), job_id)
        except (ChaterError, TimeoutError):
            await self._unsent(job_id)
            raise JobApiError(503, _UNAVAILABLE, "the job could not be queued; retry", 1) from None
        return job_id, position

    async def _check_rate(self, tenant: str, rate: tuple[int, float] | None) -> None:
        if rate is None:
            return
        limit, period = rate
        wait = await self._rates.step(
            f"jobs:{tenant}", Rate(limit=limit, period=period, burst=limit), reserve=False
        )
        if wait is not None:
            raise JobApiError(429, "RATE_LIMIT_EXCEEDED", "the app's rate limit is reached", wait)

    async def _unsent(self, job_id: str) -> None:
        """A job that never reached Kafka is an error, not a job queued for ever."""
        outcome = {
            "error_code": "SERVICE_UNAVAILABLE",
            "message": "the job could not be queued",
            "retry_possible": True,
        }
        try:
            await asyncio.shield(self._store.finish(job_id, "error", outcome))
        except ChaterError:
            log.warning("an unsent job could not be marked failed")

    async def _status(self, request: web.Request) -> web.Response:
        job_id = request.match_info["request_id"]
        try:
            view = await self._store.get(job_id) if len(job_id) <= 64 else None
        except ChaterError:
            error = JobApiError(503, _UNAVAILABLE, "the job store is unavailable; retry", 1)
            return _rejected(error)
        if view is None:
            return _rejected(JobApiError(404, "REQUEST_NOT_FOUND", "no such request"))
        return _json(status_body(job_id, view))
