"""Dispatch: each kind of request goes its own way."""

from __future__ import annotations

import orjson

from chater_gpt.contracts import ChatRequest, ForgetRequest, Job, RejectedRequest
from chater_gpt.domain import ConversationRef, Turn
from chater_gpt.errors import InvalidRequest, StoreUnavailable
from chater_gpt.processing.dispatch import Dispatch
from chater_gpt.storage.history import InMemoryHistoryStore
from tests.unit.processing.fakes import RecordingObserver, chat_request, job_for


class Chat:
    def __init__(self) -> None:
        self.seen: list[ChatRequest] = []

    async def __call__(self, request: ChatRequest, job: Job) -> bytes:
        self.seen.append(request)
        return b"chat reply"


def history() -> InMemoryHistoryStore:
    return InMemoryHistoryStore(max_history=10, ttl_seconds=60, max_conversations=10)


async def test_a_rejected_request_is_answered_with_its_error_and_counted() -> None:
    observer, chat = RecordingObserver(), Chat()
    rejected = RejectedRequest(key="r-1", error=InvalidRequest("no message"))
    reply = orjson.loads(
        await Dispatch(chat, history(), observer).process(job_for(rejected, route="photo"))
    )
    assert reply["key"] == "r-1"
    assert reply["value"]["error"]["code"] == "invalid_request"
    assert chat.seen == []
    (done,) = observer.named("request_done")
    assert done == {
        "outcome": "error",
        "code": "invalid_request",
        "model": "",
        "backend": "",
        "route": "photo",
    }


async def test_a_forget_request_deletes_the_users_conversations() -> None:
    observer, chat, store = RecordingObserver(), Chat(), history()
    for conversation in ("a", "b"):
        ref = ConversationRef("ada@example.com", conversation)
        await store.append(ref, [Turn("user", "hi")], dedupe_id=conversation)
    forget = ForgetRequest(key="f-1", user_email="ada@example.com")
    reply = orjson.loads(await Dispatch(chat, store, observer).process(job_for(forget)))
    assert reply["value"]["forgotten"] == "ada@example.com"
    assert reply["value"]["conversations_deleted"] == 2
    assert await store.load(ConversationRef("ada@example.com", "a")) == []
    assert observer.named("request_done")[0]["outcome"] == "forget"


async def test_a_forget_request_during_a_store_outage_is_refused_not_acknowledged() -> None:
    class Down(InMemoryHistoryStore):
        async def forget_user(self, user_email: str) -> int:
            raise StoreUnavailable("history")

    observer, chat = RecordingObserver(), Chat()
    store = Down(max_history=10, ttl_seconds=60, max_conversations=10)
    forget = ForgetRequest(key="f-2", user_email="ada@example.com")
    reply = orjson.loads(await Dispatch(chat, store, observer).process(job_for(forget)))
    assert reply["key"] == "f-2"
    assert "forgotten" not in reply["value"]
    assert reply["value"]["error"] == {
        "code": "store_unavailable",
        "message": "the history store is unavailable",
        "retryable": True,
    }
    assert observer.named("request_done")[0]["code"] == "store_unavailable"


async def test_a_chat_request_goes_down_the_chat_chain() -> None:
    chat, request = Chat(), chat_request("c-1")
    reply = await Dispatch(chat, history(), RecordingObserver()).process(job_for(request))
    assert reply == b"chat reply"
    assert chat.seen == [request]
