"""Replying: the one place an answer or a failure becomes reply bytes."""

from __future__ import annotations

import logging

import orjson
import pytest

from chater_gpt.contracts import ChatRequest, Job
from chater_gpt.errors import BackendUnavailable, ChaterError, InvalidRequest
from chater_gpt.processing.replying import Replying
from chater_gpt.processing.stages import Answer
from tests.unit.processing.fakes import RecordingObserver, chat_request, job_for, result


def answering(answer: Answer | Exception):  # type: ignore[no-untyped-def]
    async def inner(request: ChatRequest, job: Job) -> Answer:
        if isinstance(answer, Exception):
            raise answer
        return answer

    return inner


async def test_an_answer_becomes_a_reply_with_its_processing_time() -> None:
    observer = RecordingObserver()
    request = chat_request("a")
    replying = Replying(answering(Answer(result("hi"))), observer, clock=lambda: 12.5)
    reply = orjson.loads(await replying(request, job_for(request, received_at=10.0)))
    assert reply["key"] == "a"
    assert reply["value"]["response"] == "hi"
    assert reply["value"]["processing_time"] == 2.5
    assert "cached" not in reply["value"]
    assert observer.events == []  # the stages below count answers


async def test_a_cached_answer_says_so() -> None:
    request = chat_request("a")
    replying = Replying(answering(Answer(result(), cached=True)), RecordingObserver(), clock=float)
    reply = orjson.loads(await replying(request, job_for(request)))
    assert reply["value"]["cached"] is True


@pytest.mark.parametrize(
    ("error", "code", "level"),
    [
        (InvalidRequest("bad"), "invalid_request", logging.INFO),
        (BackendUnavailable("down"), "backend_unavailable", logging.WARNING),
    ],
)
async def test_a_chater_error_becomes_its_error_reply(
    error: ChaterError, code: str, level: int, caplog: pytest.LogCaptureFixture
) -> None:
    observer = RecordingObserver()
    request = chat_request("a")
    with caplog.at_level(logging.INFO):
        raw = await Replying(answering(error), observer, clock=float)(
            request, job_for(request, route="photo")
        )
    assert orjson.loads(raw)["value"]["error"]["code"] == code
    assert observer.named("request_done") == [
        {"outcome": "error", "code": code, "model": "gpt-4o-mini", "backend": "", "route": "photo"}
    ]
    (record,) = [r for r in caplog.records if r.getMessage().startswith("answered with an error")]
    assert record.levelno == level
    assert record.getMessage() == f"answered with an error: {code}"


async def test_an_unexpected_error_is_an_internal_error_reply_that_tells_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    observer = RecordingObserver()
    request = chat_request("a")
    with caplog.at_level(logging.ERROR):
        raw = await Replying(answering(RuntimeError("secret detail")), observer, clock=float)(
            request, job_for(request)
        )
    assert b"secret detail" not in raw
    error = orjson.loads(raw)["value"]["error"]
    assert error["code"] == "internal_error"
    assert error["message"] == "internal error while answering the request"
    assert observer.named("request_done")[0]["code"] == "internal_error"
    assert "unexpected error while answering" in caplog.text  # with its traceback, in the log
