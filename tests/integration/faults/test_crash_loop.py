"""Scenario 1, crash loop: the service is SIGKILLed three times at random moments
(seeded) while it answers 5,000 requests of 200 conversations, and restarted each
time. Nothing is lost, every conversation's answers come in order, and a replay is
answered from the recorded outcome (Redis) instead of a second LLM call."""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

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

KILLS = 3


def test_sigkill_three_times_loses_nothing_and_keeps_conversation_order(
    broker: Broker,
    make_topics: TopicsFactory,
    children: ChildFactory,
    collectors: CollectorFactory,
    scaled: Callable[[float], int],
    figure_book: FigureBook,
    redis_url: str,
    tmp_path: Path,
) -> None:
    count = scaled(5000)
    conversations = min(200, count)
    topics = make_topics(3)
    run = topics.group
    texts = [f"c{i % conversations:03d} #{i // conversations:04d}" for i in range(count)]
    messages = [
        envelope(
            text.split(" #")[0],
            message=text,
            user_email=f"{text.split(' #')[0]}-{run}@example.com",
        )
        for text in texts
    ]
    billed = BilledCalls()
    rng = random.Random(8_001)
    with ScriptedOpenAI(latency=0.02, answer=billed, record=False) as scripted:
        config = service_config(broker, topics, scripted, redis_url=redis_url)
        collector = collectors(broker.bootstrap, topics.response)
        ends = produce_tracked(broker.bootstrap, topics.request, messages)
        started = time.monotonic()
        child = children(config, "run-0")
        kill_points = []
        # Per kill: what had been answered before it, and how many calls were billed by then.
        answered_before: list[tuple[set[str], int]] = []
        for kill in range(KILLS):
            # A random moment: after a seeded random number of further replies.
            target = len(collector.replies) + rng.randint(count // 12, count // 6)
            collector.wait_for(target, timeout=180)
            kill_points.append(target)
            answered = {echoed(r) or "" for r in list(collector.replies)}
            child.kill()
            answered_before.append((answered, len(billed.snapshot())))
            child = children(config, f"run-{kill + 1}")
        replies = wait_answered(collector, echoed, set(texts), timeout=240, watch=[child])
        duration = time.monotonic() - started
        problems = scan_service([child], replies, [FAKE_API_KEY])
        assert child.terminate() == 0, child.log_text[-2000:]

    answers = [echoed(r) or "" for r in replies]
    calls = billed.snapshot()
    figures = tally(
        "1 crash loop (3x SIGKILL)",
        sent=texts,
        answers=answers,
        errors=[r.key for r in replies if "error" in r.value],
        billed=calls,
        duration_s=duration,
        conversations=conversations,
        kill_after_replies=kill_points,
        requests_called_twice_in_flight_at_kill=sum(1 for c in Counter(calls).values() if c > 1),
    )
    figure_book.add(figures)

    assert figures.lost == 0
    assert figures.error_replies == 0
    assert not problems, problems
    by_conversation: dict[str, list[str]] = defaultdict(list)
    for reply, text in zip(replies, answers, strict=True):
        by_conversation[reply.key].append(text)
    out_of_order = [k for k, seq in by_conversation.items() if not first_seen_in_order(seq)]
    assert not out_of_order, out_of_order[:5]
    # The backend saw each conversation's requests in order too (first calls).
    calls_by_conversation: dict[str, list[str]] = defaultdict(list)
    for text in calls:
        calls_by_conversation[sequence(text)[0]].append(text)
    assert all(first_seen_in_order(seq) for seq in calls_by_conversation.values())
    # Every partition committed up to its end: nothing pending, nothing skipped.
    assert committed_offsets(broker.bootstrap, topics.group, topics.request) == {
        partition: ends.get(partition, -1001) for partition in range(3)
    }
    # No double billing for what was answered: a request answered before a kill is
    # replayed from its recorded outcome, never called again.
    for answered, mark in answered_before:
        assert not answered & set(calls[mark:])
    # Only requests whose LLM call was under way at a kill (outcome not yet recorded)
    # are called again: at most one per conversation per kill (one at a time each).
    assert figures.llm_calls - count <= KILLS * conversations, figures
    assert figures.max_llm_calls_per_request <= 1 + KILLS, figures


def test_replays_stay_free_with_more_than_100_requests_in_flight(
    broker: Broker,
    make_topics: TopicsFactory,
    children: ChildFactory,
    collectors: CollectorFactory,
    redis_url: str,
) -> None:
    topics = make_topics(3)
    keys = [f"wide-{i}" for i in range(300)]
    with ScriptedOpenAI(latency=0.2, record=False) as scripted:
        # Commits held back: the SIGKILL lands after every reply, before any commit, so the
        # restart replays all 300 requests; each must be answered from its recorded outcome.
        config = service_config(
            broker, topics, scripted, redis_url=redis_url, commit_interval_seconds=3600
        )
        collector = collectors(broker.bootstrap, topics.response)
        produce_tracked(broker.bootstrap, topics.request, [envelope(k, message=k) for k in keys])
        first = children(config, "first")
        wait_answered(collector, lambda r: r.key, set(keys), timeout=60, watch=[first])
        first.kill()
        second = children(config, "second")
        collector.wait_for(2 * len(keys), timeout=60)
        assert second.terminate() == 0
    assert scripted.calls == len(keys)  # the replay made no LLM call
    assert "MaxConnectionsError" not in first.log_text + second.log_text
