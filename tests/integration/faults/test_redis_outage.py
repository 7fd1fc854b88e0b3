"""Scenario 4, Redis outage: a private, password-protected Redis is stopped for 15 s
mid-run and started again on the same port (with its snapshot). The service neither
pauses nor crashes: it answers without stored history while Redis is down, limits
hold per process, `/readyz` is 503 during the outage and 200 after, and history is
used again once Redis is back. The Redis password never leaves."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.integration.conftest import FAKE_API_KEY, Broker, service_config
from tests.integration.faults.conftest import (
    REDIS_PASSWORD,
    ChildFactory,
    CollectorFactory,
    TopicsFactory,
)
from tests.integration.faults.figures import BilledCalls, FigureBook, sequence, tally
from tests.integration.faults.harness import echoed, scan_service, wait_answered
from tests.support.private_redis import PrivateRedis
from tests.support.scripted_openai import ScriptedOpenAI
from tests.support.service_runner import envelope, produce_requests

pytestmark = [pytest.mark.fault, pytest.mark.slow]

OUTAGE_SECONDS = 15.0
CONVERSATIONS = 50


def phase(run: str, start: int, count: int) -> tuple[list[str], list[tuple[str, bytes]]]:
    """`count` requests of the conversations, numbered from `start` on."""
    texts = [
        f"c{i % CONVERSATIONS:03d} #{i // CONVERSATIONS:04d}" for i in range(start, start + count)
    ]
    messages = [
        envelope(sequence(t)[0], message=t, user_email=f"{sequence(t)[0]}-{run}@example.com")
        for t in texts
    ]
    return texts, messages


def test_redis_down_for_15_seconds_degrades_to_no_history_and_loses_nothing(
    broker: Broker,
    make_topics: TopicsFactory,
    children: ChildFactory,
    collectors: CollectorFactory,
    private_redis: PrivateRedis,
    scaled: Callable[[float], int],
    fault_scale: float,
    figure_book: FigureBook,
) -> None:
    topics = make_topics(3)
    size = max(CONVERSATIONS * 2, scaled(600))
    before, before_messages = phase(topics.group, 0, size)
    during, during_messages = phase(topics.group, size, size)
    after, after_messages = phase(topics.group, 2 * size, size)
    outage = OUTAGE_SECONDS * fault_scale
    billed = BilledCalls()
    with ScriptedOpenAI(latency=0.02, answer=billed) as scripted:
        config = service_config(broker, topics, scripted, redis_url=private_redis.url)
        collector = collectors(broker.bootstrap, topics.response)
        started = time.monotonic()
        child = children(config, "service")
        produce_requests(broker.bootstrap, topics.request, before_messages)
        collector.wait_for(size // 2, timeout=120)
        private_redis.stop(save=True)  # mid-run: half of the first phase still to answer
        stopped_at = time.monotonic()
        produce_requests(broker.bootstrap, topics.request, during_messages)
        status, body = child.wait_http("/readyz", lambda s, _: s == 503, timeout=outage)
        readyz_during = (status, body)
        wait_answered(collector, echoed, set(before + during), timeout=outage, watch=[child])
        answered_during_outage = time.monotonic() - stopped_at
        assert child.alive
        time.sleep(max(0.0, outage - (time.monotonic() - stopped_at)))  # the outage itself
        private_redis.start()
        restarted_at = time.monotonic()
        child.wait_http("/readyz", lambda s, _: s == 200, timeout=30)
        ready_after = time.monotonic() - restarted_at
        produce_requests(broker.bootstrap, topics.request, after_messages)
        replies = wait_answered(
            collector, echoed, set(before + during + after), timeout=120, watch=[child]
        )
        duration = time.monotonic() - started
        problems = scan_service([child], replies, [FAKE_API_KEY, REDIS_PASSWORD])
        assert child.terminate() == 0, child.log_text[-2000:]
        recorded = list(scripted.requests)

    texts = before + during + after
    figures = tally(
        "4 redis outage (15 s)",
        sent=texts,
        answers=[echoed(r) or "" for r in replies],
        errors=[r.key for r in replies if "error" in r.value],
        billed=billed.snapshot(),
        duration_s=duration,
        outage_seconds=outage,
        all_answered_within_s_of_outage_start=round(answered_during_outage, 1),
        readyz_during_outage=readyz_during,
        ready_again_after_s=round(ready_after, 1),
    )
    figure_book.add(figures)

    assert figures.lost == 0
    assert figures.error_replies == 0
    assert figures.max_llm_calls_per_request == 1, figures
    assert not problems, problems
    assert "redis" in readyz_during[1]
    log = child.log_text
    assert "history unavailable; answering without it" in log
    assert "limits hold per process" in log
    # Requests sent during the outage were answered without stored history (system +
    # user message only); after it, the history (kept by the snapshot) is used again.
    turns = {r.last_user_text: len(r.messages) for r in recorded}
    assert Counter(turns[t] for t in during) == Counter({2: len(during)})
    assert all(turns[t] > 2 for t in after)
