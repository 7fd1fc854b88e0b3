"""Scenario 2, rebalance under load: two replicas share a 6-partition request topic; a
third joins mid-run, then one of the first two is stopped with SIGTERM. Conversation
order holds per key, nothing is lost, and no request is billed twice."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

import pytest

from tests.integration.conftest import FAKE_API_KEY, Broker, service_config
from tests.integration.faults.conftest import ChildFactory, CollectorFactory, TopicsFactory
from tests.integration.faults.figures import (
    BilledCalls,
    FigureBook,
    first_seen_in_order,
    sequence,
    tally,
)
from tests.integration.faults.harness import echoed, scan_service, wait_answered
from tests.support.scripted_openai import ScriptedOpenAI
from tests.support.service_runner import committed_offsets, envelope, produce_tracked

pytestmark = [pytest.mark.fault, pytest.mark.slow]

PARTITIONS = 6


def test_a_replica_joining_and_one_leaving_under_load_keep_order_and_lose_nothing(
    broker: Broker,
    make_topics: TopicsFactory,
    children: ChildFactory,
    collectors: CollectorFactory,
    scaled: Callable[[float], int],
    figure_book: FigureBook,
    redis_url: str,
) -> None:
    conversations = 100
    per_conversation = max(10, scaled(40))
    count = conversations * per_conversation
    topics = make_topics(PARTITIONS)
    texts = [f"c{i % conversations:03d} #{i // conversations:04d}" for i in range(count)]
    messages = [envelope(sequence(text)[0], message=text) for text in texts]
    billed = BilledCalls()
    # 0.3 s per call: each conversation needs >= 12 s at full size, so the membership
    # changes below happen while every replica is busy.
    with ScriptedOpenAI(latency=0.3, answer=billed, record=False) as scripted:
        config = service_config(broker, topics, scripted, redis_url=redis_url)
        collector = collectors(broker.bootstrap, topics.response)
        ends = produce_tracked(broker.bootstrap, topics.request, messages)
        started = time.monotonic()
        first = children(config, "replica-a")
        second = children(config, "replica-b")
        collector.wait_for(count // 5, timeout=120)
        third = children(config, "replica-c")
        # Ready means it owns partitions (and Redis, breaker and heartbeat are fine).
        third.wait_http("/readyz", lambda status, _: status == 200, timeout=90)
        answered_at_join = len(collector.replies)
        collector.wait_for(answered_at_join + count // 10, timeout=120)
        answered_at_leave = len(collector.replies)
        assert first.terminate() == 0, first.log_text[-2000:]
        replies = wait_answered(collector, echoed, set(texts), timeout=240, watch=[second, third])
        duration = time.monotonic() - started
        problems = scan_service([first, second, third], replies, [FAKE_API_KEY])
        for child in (second, third):
            assert child.terminate() == 0, child.log_text[-2000:]

    calls = billed.snapshot()
    figures = tally(
        "2 rebalance (+1, SIGTERM 1)",
        sent=texts,
        answers=[echoed(r) or "" for r in replies],
        errors=[r.key for r in replies if "error" in r.value],
        billed=calls,
        duration_s=duration,
        partitions=PARTITIONS,
        replies_when_third_ready=answered_at_join,
        replies_when_first_stopped=answered_at_leave,
    )
    figure_book.add(figures)

    assert answered_at_leave < count  # the changes happened under load
    assert figures.lost == 0
    assert figures.error_replies == 0
    assert not problems, problems
    by_conversation: dict[str, list[str]] = defaultdict(list)
    for reply in replies:
        by_conversation[reply.key].append(echoed(reply) or "")
    out_of_order = [k for k, seq in by_conversation.items() if not first_seen_in_order(seq)]
    assert not out_of_order, out_of_order[:5]
    calls_by_conversation: dict[str, list[str]] = defaultdict(list)
    for text in calls:
        calls_by_conversation[sequence(text)[0]].append(text)
    assert all(first_seen_in_order(seq) for seq in calls_by_conversation.values())
    assert figures.max_llm_calls_per_request == 1, figures
    assert committed_offsets(broker.bootstrap, topics.group, topics.request) == {
        p: ends.get(p, -1001) for p in range(PARTITIONS)
    }
