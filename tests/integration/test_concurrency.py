"""Many conversations in parallel, each in order; in-flight work bounded."""

from __future__ import annotations

import time

from tests.integration.conftest import SettingsFactory, Topics
from tests.support.scripted_openai import ScriptedOpenAI
from tests.support.service_runner import (
    ReplyCollector,
    envelope,
    produce_requests,
    running_service,
)

LATENCY = 0.2


def conversation_requests(conversations: int, per_conversation: int) -> list[tuple[str, bytes]]:
    """Request i of conversation c, keyed by the conversation (so Kafka keeps their order)."""
    return [
        envelope(f"conv-{c}", message=f"conv-{c} #{i}")
        for i in range(per_conversation)
        for c in range(conversations)
    ]


def assert_in_order(replies: ReplyCollector, conversations: int, per_conversation: int) -> None:
    keys = {f"conv-{c}" for c in range(conversations)}
    by_key = replies.wait_for_keys(keys, timeout=5)
    for c in range(conversations):
        texts = [r.value["response"] for r in sorted(by_key[f"conv-{c}"], key=lambda r: r.offset)]
        assert texts == [f"echo: conv-{c} #{i}" for i in range(per_conversation)]


async def test_conversations_run_in_parallel_and_each_stays_in_order(
    make_settings: SettingsFactory,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
) -> None:
    scripted.latency = LATENCY
    conversations, per_conversation = 50, 4
    total = conversations * per_conversation
    settings = make_settings(max_in_flight=256)
    async with running_service(settings):
        started = time.monotonic()
        produce_requests(
            settings.bootstrap_server,
            topics.request,
            conversation_requests(conversations, per_conversation),
        )
        await replies.await_count(total, timeout=60)
        elapsed = time.monotonic() - started

    sequential = total * LATENCY  # 40 s for the design this replaces
    # Conversations are parallel, their turns sequential: the floor is 4 x 0.2 s.
    assert elapsed < sequential / 5, f"{elapsed:.1f} s for {total} requests"
    assert scripted.max_concurrent > 10
    assert_in_order(replies, conversations, per_conversation)
    assert scripted.calls == total


async def test_in_flight_work_never_exceeds_max_in_flight(
    make_settings: SettingsFactory,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
) -> None:
    scripted.latency = 0.05
    settings = make_settings(max_in_flight=8)
    async with running_service(settings):
        produce_requests(
            settings.bootstrap_server,
            topics.request,
            [envelope(f"key-{i}", message=f"request {i}") for i in range(120)],
        )
        await replies.await_count(120, timeout=60)

    assert scripted.calls == 120
    assert 1 < scripted.max_concurrent <= 8
