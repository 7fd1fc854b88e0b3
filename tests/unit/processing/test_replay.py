"""The replay record as a wrapper: a recorded outcome is the reply, without the inner step."""

from __future__ import annotations

import logging

import pytest

from chater_gpt.contracts import ChatRequest, Job
from chater_gpt.processing.replay import Replayed
from chater_gpt.storage.outcomes import InMemoryOutcomeStore
from tests.unit.processing.fakes import RecordingObserver, chat_request, job_for


class Inner:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, request: ChatRequest, job: Job) -> bytes:
        self.calls += 1
        return f"reply {self.calls}".encode()


class DownOutcomes:
    async def get(self, dedupe_id: str) -> bytes | None:
        raise ConnectionError("down")

    async def put(self, dedupe_id: str, reply: bytes) -> None:
        raise ConnectionError("down")


async def test_a_first_request_is_answered_and_its_reply_recorded() -> None:
    inner, outcomes, observer = Inner(), InMemoryOutcomeStore(ttl_seconds=60), RecordingObserver()
    request = chat_request("a")
    assert await Replayed(inner, outcomes, observer)(request, job_for(request)) == b"reply 1"
    assert await outcomes.get("d-a") == b"reply 1"
    assert observer.events == []


async def test_a_replay_is_answered_from_the_record_without_the_inner_step() -> None:
    inner, outcomes, observer = Inner(), InMemoryOutcomeStore(ttl_seconds=60), RecordingObserver()
    replayed = Replayed(inner, outcomes, observer)
    request = chat_request("a")
    await replayed(request, job_for(request))
    assert await replayed(request, job_for(request)) == b"reply 1"
    assert inner.calls == 1
    assert observer.events == [("replayed", {})]


async def test_an_unreachable_record_degrades_to_answering(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inner, observer = Inner(), RecordingObserver()
    request = chat_request("a")
    with caplog.at_level(logging.WARNING):
        reply = await Replayed(inner, DownOutcomes(), observer)(request, job_for(request))
    assert reply == b"reply 1"
    assert observer.named("store_error") == [{"store": "outcomes"}, {"store": "outcomes"}]
    assert "outcome store unavailable; cannot detect a replay (ConnectionError)" in caplog.text
    assert "could not record the outcome (ConnectionError)" in caplog.text


async def test_a_failing_inner_step_records_nothing() -> None:
    outcomes = InMemoryOutcomeStore(ttl_seconds=60)

    async def cancelled(request: ChatRequest, job: Job) -> bytes:
        raise KeyboardInterrupt  # only what the replying stage lets through escapes

    request = chat_request("a")
    with pytest.raises(KeyboardInterrupt):
        await Replayed(cancelled, outcomes, RecordingObserver())(request, job_for(request))
    assert await outcomes.get("d-a") is None
