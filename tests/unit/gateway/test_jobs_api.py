"""The job API's routes over the in-memory store and a fake Kafka sink: a full queue is
503 with Retry-After, a job Kafka refused is marked error and answered 503."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from chater_gpt.gateway.job_shapes import AppCodes
from chater_gpt.gateway.jobs_api import JobApi
from chater_gpt.gateway.requester import Requester
from chater_gpt.gateway.waiter import ReplyWaiter
from chater_gpt.resilience.policy import PolicyBook, RequestType, TenantPolicy
from chater_gpt.storage.jobs import InMemoryJobStore, JobConfig
from chater_gpt.storage.rates import InMemoryRateStore

BOOK = PolicyBook(
    tenants={
        "shop": TenantPolicy(
            app_code_sha256=hashlib.sha256(b"code").hexdigest(),
            request_types={"t": RequestType(prompt_template="{text}")},
        )
    }
)
BODY = {"app_code": "code", "request_type": "t", "request": {"text": "x"}}


class Sink:
    def __init__(self) -> None:
        self.error: object = None
        self.sent: list[tuple[str, list[tuple[str, bytes]]]] = []

    def send(
        self,
        topic: str,
        key: str,
        value: bytes,
        headers: list[tuple[str, bytes]],
        on_delivery: Callable[[Any], None],
    ) -> None:
        self.sent.append((key, headers))
        on_delivery(self.error)


@pytest.fixture
async def parts() -> AsyncIterator[tuple[TestClient[Any, Any], Sink, InMemoryJobStore]]:
    sink = Sink()
    store = InMemoryJobStore(JobConfig(ttl_seconds=60, max_wait_seconds=60, capacity=2))
    requester = Requester("req", "reply", ReplyWaiter(), sink, 5.0)
    api = JobApi(requester, store, AppCodes(BOOK), InMemoryRateStore())
    app = web.Application(client_max_size=1024)
    api.register(app.router)
    async with TestClient(TestServer(app)) as client:
        yield client, sink, store


async def test_queued_with_a_job_id_header_then_full(
    parts: tuple[TestClient[Any, Any], Sink, InMemoryJobStore],
) -> None:
    client, sink, _ = parts
    first = await client.post("/ai_request", json=BODY)
    job = (await first.json())["request_id"]
    assert sink.sent[0][0] == job
    assert ("job-id", job.encode()) in sink.sent[0][1]
    await client.post("/ai_request", json=BODY)
    full = await client.post("/ai_request", json=BODY)
    assert full.status == 503
    assert (await full.json())["error_code"] == "QUEUE_FULL"
    assert int(full.headers["Retry-After"]) > 0
    status = await (await client.get(f"/get_request/{job}")).json()
    assert (status["status"], status["position"]) == ("queued", 1)


async def test_a_job_kafka_refused_is_an_error(
    parts: tuple[TestClient[Any, Any], Sink, InMemoryJobStore],
) -> None:
    client, sink, store = parts
    sink.error = "broker down"
    refused = await client.post("/ai_request", json=BODY)
    assert refused.status == 503
    assert (await refused.json())["error_code"] == "SERVICE_UNAVAILABLE"
    job = sink.sent[0][0]
    view = await store.get(job)
    assert view is not None
    assert view.status == "error"
    assert view.record["result"]["retry_possible"] is True


async def test_a_body_over_the_limit_is_413(
    parts: tuple[TestClient[Any, Any], Sink, InMemoryJobStore],
) -> None:
    client, _, _ = parts
    big = await client.post("/ai_request", json={**BODY, "request": {"text": "x" * 5000}})
    assert big.status == 413
    assert (await big.json())["error_code"] == "INVALID_REQUEST"


async def test_each_submission_is_counted_by_its_outcome() -> None:
    """What `chater_gpt_gateway_jobs_submitted_total{outcome}` counts."""
    outcomes: list[str] = []
    store = InMemoryJobStore(JobConfig(ttl_seconds=60, max_wait_seconds=60, capacity=1))
    requester = Requester("req", "reply", ReplyWaiter(), Sink(), 5.0)
    api = JobApi(requester, store, AppCodes(BOOK), InMemoryRateStore(), count=outcomes.append)
    app = web.Application()
    api.register(app.router)
    async with TestClient(TestServer(app)) as client:
        for body in (
            BODY,
            {**BODY, "app_code": "wrong"},
            {**BODY, "request_type": "other"},
            {"app_code": "code"},
            BODY,
        ):
            await client.post("/ai_request", json=body)
    assert outcomes == [
        "accepted",
        "INVALID_APP_CODE",
        "UNSUPPORTED_REQUEST_TYPE",
        "INVALID_REQUEST",
        "QUEUE_FULL",
    ]
