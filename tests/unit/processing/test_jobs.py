"""The core's side of the job API: progress and outcome recorded around the processor."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import orjson

from chater_gpt.contracts import Job
from chater_gpt.processing.jobs import JobTracked, job_outcome
from chater_gpt.storage.jobs import InMemoryJobStore, JobConfig
from tests.unit.processing.fakes import RecordingObserver, chat_request, job_for
from tests.unit.storage.job_scenarios import Clock

REPLY = orjson.dumps(
    {
        "key": "k",
        "value": {
            "response": "hello",
            "model": "m",
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
            "timestamp": "2026-01-01T00:00:00.000Z",
            "processing_time": 0.2,
        },
    }
)
ERROR = orjson.dumps(
    {
        "key": "k",
        "value": {"error": {"code": "backend_timeout", "message": "slow", "retryable": True}},
    }
)


class Inner:
    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.calls = 0

    async def process(self, job: Job) -> bytes:
        self.calls += 1
        return self.reply


def a_job(job_id: str | None) -> Job:
    return dataclasses.replace(job_for(chat_request()), job_id=job_id)


def test_outcomes() -> None:
    status, result = job_outcome(REPLY)
    assert status == "completed"
    assert result["ai_response"] == "hello"
    assert result["model_used"] == "m"
    assert result["token_usage"]["total_tokens"] == 3
    assert job_outcome(ERROR) == (
        "error",
        {"error_code": "BACKEND_TIMEOUT", "message": "slow", "retry_possible": True},
    )
    assert job_outcome(b"not json")[0] == "error"


async def test_a_job_is_marked_and_recorded() -> None:
    store = InMemoryJobStore(JobConfig(ttl_seconds=60, max_wait_seconds=30))
    await store.submit("j", {})
    observer = RecordingObserver()
    tracked = JobTracked(Inner(REPLY), store, observer)
    assert await tracked.process(a_job("j")) == REPLY
    view = await store.get("j")
    assert view is not None
    assert [s for s, _ in view.record["history"]] == ["queued", "processing", "completed"]
    assert observer.named("job_finished") == [{"status": "completed"}]


async def test_a_replay_of_a_finished_job_records_and_counts_nothing_more() -> None:
    store = InMemoryJobStore(JobConfig(ttl_seconds=60, max_wait_seconds=30))
    await store.submit("j", {})
    observer = RecordingObserver()
    await JobTracked(Inner(ERROR), store, observer).process(a_job("j"))
    # The core crashed after recording the outcome: the replay answers (from the outcome
    # record, in the real processor), and the job keeps its one history.
    assert await JobTracked(Inner(REPLY), store, observer).process(a_job("j")) == REPLY
    view = await store.get("j")
    assert view is not None
    assert [s for s, _ in view.record["history"]] == ["queued", "processing", "error"]
    assert observer.named("job_finished") == [{"status": "error"}]


async def test_two_processings_of_one_job_record_and_count_one_outcome() -> None:
    """A replay while the first processing still runs (a partition lost and given back):
    both start as `processing`, the first outcome recorded is the job's, counted once."""
    store = InMemoryJobStore(JobConfig(ttl_seconds=60, max_wait_seconds=30))
    await store.submit("j", {})
    observer = RecordingObserver()
    first, second = Inner(REPLY), Inner(ERROR)
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(job: Job) -> bytes:
        started.set()
        await release.wait()
        return await first.process(job)

    first_run = asyncio.create_task(JobTracked(_Slow(slow), store, observer).process(a_job("j")))
    await started.wait()  # the first is marked processing and waits
    await JobTracked(second, store, observer).process(a_job("j"))  # the replay ends first
    release.set()
    await first_run
    view = await store.get("j")
    assert view is not None
    assert [s for s, _ in view.record["history"]] == ["queued", "processing", "error"]
    assert observer.named("job_finished") == [{"status": "error"}]


class _Slow:
    def __init__(self, process: Any) -> None:
        self.process = process


async def test_an_expired_job_never_reaches_the_processor() -> None:
    clock = Clock()
    store = InMemoryJobStore(JobConfig(ttl_seconds=600, max_wait_seconds=30), clock)
    await store.submit("j", {})
    clock.now += 31
    inner = Inner(REPLY)
    observer = RecordingObserver()
    reply = await JobTracked(inner, store, observer).process(a_job("j"))
    assert inner.calls == 0
    assert orjson.loads(reply)["value"]["error"]["code"] == "gateway_timeout"
    assert observer.named("job_finished") == [{"status": "expired"}]


async def test_other_requests_pass() -> None:
    store = InMemoryJobStore(JobConfig(ttl_seconds=60, max_wait_seconds=30))
    inner = Inner(REPLY)
    assert await JobTracked(inner, store, RecordingObserver()).process(a_job(None)) == REPLY
    assert inner.calls == 1
