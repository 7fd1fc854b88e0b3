"""Stored conversations around answering, degrading when the store fails."""

from __future__ import annotations

import logging

import pytest

from chater_gpt.contracts import ChatRequest, Job
from chater_gpt.domain import ConversationRef, Turn
from chater_gpt.processing.conversations import Conversations
from chater_gpt.processing.stages import Answer
from chater_gpt.storage.history import InMemoryHistoryStore
from tests.unit.processing.fakes import RecordingObserver, chat_request, job_for, result

ADA = ConversationRef("ada@example.com", "c")


class Inner:
    def __init__(self) -> None:
        self.histories: list[list[Turn]] = []

    async def __call__(self, request: ChatRequest, job: Job, history: list[Turn]) -> Answer:
        self.histories.append(history)
        return Answer(result(f"answer to {request.message}"))


class DownHistory:
    async def load(self, conversation: ConversationRef) -> list[Turn]:
        raise ConnectionError("down")

    async def append(
        self, conversation: ConversationRef, turns: list[Turn], *, dedupe_id: str
    ) -> None:
        raise ConnectionError("down")


def store() -> InMemoryHistoryStore:
    return InMemoryHistoryStore(max_history=10, ttl_seconds=60, max_conversations=10)


async def test_a_conversation_is_continued_and_extended() -> None:
    inner, history = Inner(), store()
    conversations = Conversations(inner, history, RecordingObserver())
    first, second = (
        chat_request("1", message="one", conversation=ADA),
        chat_request("2", message="two", conversation=ADA),
    )
    await conversations(first, job_for(first))
    answer = await conversations(second, job_for(second))
    assert answer.result.text == "answer to two"
    assert inner.histories == [[], [Turn("user", "one"), Turn("assistant", "answer to one")]]
    assert len(await history.load(ADA)) == 4


async def test_a_request_without_a_conversation_neither_reads_nor_writes_history() -> None:
    inner, history = Inner(), store()
    request = chat_request("1")
    await Conversations(inner, DownHistory(), RecordingObserver())(request, job_for(request))
    assert inner.histories == [[]]
    assert await history.load(ADA) == []


async def test_an_unreachable_history_degrades_to_an_answer_without_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inner, observer = Inner(), RecordingObserver()
    request = chat_request("1", conversation=ADA)
    with caplog.at_level(logging.WARNING):
        answer = await Conversations(inner, DownHistory(), observer)(request, job_for(request))
    assert answer.result.text == "answer to hello"
    assert inner.histories == [[]]
    assert observer.named("store_error") == [{"store": "history"}, {"store": "history"}]
    assert "history unavailable; answering without it (ConnectionError)" in caplog.text
    assert "could not store the conversation turn (ConnectionError)" in caplog.text
