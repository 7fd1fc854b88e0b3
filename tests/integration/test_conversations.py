"""Conversations through the running service, with real Redis and without it: the third
request's LLM call carries turns one and two in order, conversations stay apart, forget
removes everything, a replay does not duplicate history, and the response cache answers
identical stateless requests without an LLM call."""

from __future__ import annotations

import hashlib
import uuid

import pytest
import redis

from tests.integration.conftest import SettingsFactory, Topics
from tests.support.scripted_openai import ScriptedOpenAI
from tests.support.service_runner import (
    ReplyCollector,
    envelope,
    produce_requests,
    running_service,
)


@pytest.fixture(params=["redis", "memory"])
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def store_settings(store: str, redis_url: str) -> dict[str, object]:
    return {"redis_url": redis_url if store == "redis" else None}


async def test_the_third_turn_sees_the_first_two_in_order_and_conversations_stay_apart(
    store: str,
    redis_url: str,
    make_settings: SettingsFactory,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
) -> None:
    user = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    settings = make_settings(**store_settings(store, redis_url), max_history=10)
    turns = ["My name is Ada.", "I like Kafka.", "What do you know about me?"]
    async with running_service(settings):
        for index, text in enumerate(turns):
            produce_requests(
                settings.bootstrap_server,
                topics.request,
                [envelope(f"main-{index}", message=text, user_email=user)],
            )
            await replies.await_keys({f"main-{index}"}, timeout=30)
        produce_requests(
            settings.bootstrap_server,
            topics.request,
            [envelope("other-0", message="Separate chat", user_email=user, conversation_id="b")],
        )
        await replies.await_keys({"other-0"}, timeout=30)

    third = next(r for r in scripted.requests if r.last_user_text == turns[2])
    assert [(m["role"], m["content"]) for m in third.messages[1:]] == [
        ("user", turns[0]),
        ("assistant", f"echo: {turns[0]}"),
        ("user", turns[1]),
        ("assistant", f"echo: {turns[1]}"),
        ("user", turns[2]),
    ]
    other = next(r for r in scripted.requests if r.last_user_text == "Separate chat")
    assert [m["role"] for m in other.messages] == ["system", "user"]


async def test_history_is_trimmed_expires_and_is_forgotten_in_redis(
    redis_url: str,
    make_settings: SettingsFactory,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
) -> None:
    user = f"bob-{uuid.uuid4().hex[:8]}@example.com"
    settings = make_settings(redis_url=redis_url, max_history=4, context_ttl_seconds=600)
    async with running_service(settings):
        for index in range(4):
            produce_requests(
                settings.bootstrap_server,
                topics.request,
                [envelope(f"t-{index}", message=f"turn {index}", user_email=user)],
            )
            await replies.await_keys({f"t-{index}"}, timeout=30)
        fourth = next(r for r in scripted.requests if r.last_user_text == "turn 3")
        # MAX_HISTORY=4 messages: only the last two exchanges are remembered.
        assert [m["content"] for m in fourth.messages[1:-1]] == [
            "turn 1",
            "echo: turn 1",
            "turn 2",
            "echo: turn 2",
        ]
        client = redis.Redis.from_url(redis_url)
        user_digest = hashlib.sha256(user.encode()).hexdigest()[:32]
        prefix = settings.redis_key_prefix
        mine = list(client.scan_iter(match=f"{prefix}{{u:{user_digest}}}:*"))
        lists = [k for k in mine if client.type(k) == b"list"]
        assert len(lists) == 1
        assert all(0 < client.ttl(key) <= 600 for key in mine)  # the retention policy
        assert user.encode() not in b" ".join(mine)  # keys never carry the address

        produce_requests(
            settings.bootstrap_server,
            topics.request,
            [envelope("forget-1", action="forget", user_email=user)],
        )
        ack = (await replies.await_keys({"forget-1"}, timeout=30))["forget-1"][0].value
        assert ack["forgotten"] == user
        assert ack["conversations_deleted"] == 1
        assert not any(client.exists(key) for key in mine)

        produce_requests(
            settings.bootstrap_server,
            topics.request,
            [envelope("after-forget", message="Do you remember me?", user_email=user)],
        )
        await replies.await_keys({"after-forget"}, timeout=30)
        client.close()
    after = next(r for r in scripted.requests if r.last_user_text == "Do you remember me?")
    assert [m["role"] for m in after.messages] == ["system", "user"]


async def test_a_replayed_request_is_answered_from_its_record_without_new_history(
    redis_url: str,
    make_settings: SettingsFactory,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
) -> None:
    user = f"cy-{uuid.uuid4().hex[:8]}@example.com"
    settings = make_settings(redis_url=redis_url)
    request = envelope(
        "same-1", message="Only once", user_email=user, request_id=f"req-{uuid.uuid4().hex}"
    )
    async with running_service(settings):
        produce_requests(settings.bootstrap_server, topics.request, [request])
        await replies.await_keys({"same-1"}, timeout=30)
        produce_requests(settings.bootstrap_server, topics.request, [request])  # a redelivery
        await replies.await_count(2, timeout=30)
        produce_requests(
            settings.bootstrap_server,
            topics.request,
            [envelope("next-1", message="What did I say?", user_email=user)],
        )
        await replies.await_keys({"next-1"}, timeout=30)

    answers = [r.value for r in replies.replies if r.key == "same-1"]
    assert len(answers) == 2
    assert answers[0]["response"] == answers[1]["response"] == "echo: Only once"
    assert scripted.calls == 2  # the redelivery made no LLM call
    follow_up = next(r for r in scripted.requests if r.last_user_text == "What did I say?")
    assert [m["content"] for m in follow_up.messages[1:]] == [
        "Only once",
        "echo: Only once",
        "What did I say?",
    ]


async def test_identical_stateless_requests_are_answered_from_the_cache(
    store: str,
    redis_url: str,
    make_settings: SettingsFactory,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
) -> None:
    question = f"What is 2 + 2? ({uuid.uuid4().hex[:6]})"
    settings = make_settings(**store_settings(store, redis_url), response_cache_enabled=True)
    async with running_service(settings):
        for key in ("c-1", "c-2"):
            produce_requests(
                settings.bootstrap_server,
                topics.request,
                [envelope(key, message=question, temperature=0)],
            )
            await replies.await_keys({key}, timeout=30)
        produce_requests(
            settings.bootstrap_server,
            topics.request,
            [envelope("c-warm", message=question, temperature=0.7)],
        )
        await replies.await_keys({"c-warm"}, timeout=30)

    by_key = {r.key: r.value for r in replies.replies}
    assert "cached" not in by_key["c-1"]
    assert by_key["c-2"]["cached"] is True
    assert by_key["c-2"]["response"] == by_key["c-1"]["response"]
    assert by_key["c-2"]["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    assert scripted.calls == 2  # c-1 and the non-deterministic c-warm; c-2 came from the cache
