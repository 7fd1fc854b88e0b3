"""Scenario 3, broker stall: a private broker is frozen (SIGSTOP) for 20 s mid-run and
then resumed (SIGCONT). The service reconnects by itself, loses nothing, bills nothing
twice, and `/readyz` reports the stall (503) while it lasts."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chater_gpt.dev.broker import EmbeddedBroker
from tests.integration.conftest import FAKE_API_KEY, Broker, Topics, service_config
from tests.integration.faults.conftest import ChildFactory, CollectorFactory
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

STALL_SECONDS = 20.0


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of this test alone: freezing the session broker would stall every test."""
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as embedded:
        yield Broker(embedded.bootstrap, embedded)


def test_a_frozen_broker_is_reported_and_survived(
    private_broker: Broker,
    children: ChildFactory,
    collectors: CollectorFactory,
    scaled: Callable[[float], int],
    fault_scale: float,
    figure_book: FigureBook,
    redis_url: str,
) -> None:
    embedded = private_broker.embedded
    assert embedded is not None
    topics = Topics("stall-send", "stall-response", "stall-group", "stall-photo", "stall-analysis")
    private_broker.create_topics([topics.request, topics.response, topics.photo_request])
    conversations = 100
    count = conversations * max(5, scaled(20))
    texts = [f"c{i % conversations:03d} #{i // conversations:04d}" for i in range(count)]
    # Outcomes live in the shared Redis and the topic names here are fixed: a run id in
    # each request_id keeps this run's dedupe ids apart from earlier runs'.
    run = f"{time.time_ns()}"
    messages = [envelope(sequence(t)[0], message=t, request_id=f"{run}-{t}") for t in texts]
    billed = BilledCalls()
    stall = STALL_SECONDS * fault_scale
    with ScriptedOpenAI(latency=0.05, answer=billed, record=False) as scripted:
        config = service_config(private_broker, topics, scripted, redis_url=redis_url)
        collector = collectors(private_broker.bootstrap, topics.response)
        ends = produce_tracked(private_broker.bootstrap, topics.request, messages)
        started = time.monotonic()
        child = children(config, "service")
        collector.wait_for(count // 4, timeout=120)
        embedded.freeze()
        frozen_at = time.monotonic()
        seen: Counter[int] = Counter()
        failing: dict[str, str] = {}
        try:
            # The deliberate stall: probe readiness every half second while it lasts.
            while time.monotonic() - frozen_at < stall:
                status, body = child.get("/readyz")
                seen[status] += 1
                if status == 503 and not failing:
                    failing = {"first 503 after": f"{time.monotonic() - frozen_at:.1f} s"}
                    failing["body"] = body
                time.sleep(0.5)
        finally:
            embedded.thaw()
        answered_during_stall = len(collector.replies)
        replies = wait_answered(collector, echoed, set(texts), timeout=240, watch=[child])
        ready_again = child.wait_http("/readyz", lambda s, _: s == 200, timeout=60)
        duration = time.monotonic() - started
        problems = scan_service([child], replies, [FAKE_API_KEY])
        alive = child.alive
        assert child.terminate() == 0, child.log_text[-2000:]

    calls = billed.snapshot()
    figures = tally(
        "3 broker stall (SIGSTOP)",
        sent=texts,
        answers=[echoed(r) or "" for r in replies],
        errors=[r.key for r in replies if "error" in r.value],
        billed=calls,
        duration_s=duration,
        stall_seconds=stall,
        readyz_during_stall=dict(seen),
        readyz_first_failure=failing,
    )
    figure_book.add(figures)

    assert alive  # reconnected by itself: the same process, never restarted
    assert figures.lost == 0
    assert figures.error_replies == 0
    assert not problems, problems
    assert seen[503] > 0, f"/readyz never reported the stall: {dict(seen)}"
    assert ready_again[0] == 200
    assert answered_during_stall < count
    by_conversation: dict[str, list[str]] = defaultdict(list)
    for reply in replies:
        by_conversation[reply.key].append(echoed(reply) or "")
    assert all(first_seen_in_order(seq) for seq in by_conversation.values())
    assert figures.max_llm_calls_per_request == 1, figures
    assert committed_offsets(private_broker.bootstrap, topics.group, topics.request) == {
        p: ends.get(p, -1001) for p in range(3)
    }


# Until the join grace is over, no assignment reads "waiting" (KAFKA_JOIN_GRACE_SECONDS).
JOIN_GRACE_SECONDS = 3.0


def test_a_stall_after_the_join_grace_is_reported_by_readyz(
    private_broker: Broker,
    children: ChildFactory,
    redis_url: str,
) -> None:
    embedded = private_broker.embedded
    assert embedded is not None
    topics = Topics(
        "late-stall-send",
        "late-stall-response",
        "late-stall-group",
        "late-stall-photo",
        "late-stall-analysis",
    )
    private_broker.create_topics([topics.request, topics.response, topics.photo_request])
    with ScriptedOpenAI(record=False) as scripted:
        config = service_config(
            private_broker, topics, scripted, kafka_join_grace_seconds=JOIN_GRACE_SECONDS
        )
        child = children(config, "service")
        child.wait_http("/readyz", lambda s, _: s == 200, timeout=60)
        # A service in production has been up for long: past the start-up join grace.
        time.sleep(JOIN_GRACE_SECONDS)
        assert child.get("/readyz")[0] == 200
        embedded.freeze()
        frozen_at = time.monotonic()
        statuses: list[tuple[float, int, str]] = []
        try:
            # 10 s: three session timeouts; the consumer has lost its partitions by then.
            while time.monotonic() - frozen_at < 10:
                status, body = child.get("/readyz")
                statuses.append((round(time.monotonic() - frozen_at, 1), status, body))
                time.sleep(0.5)
        finally:
            embedded.thaw()
        assert child.terminate() == 0

    assert "partitions lost" in child.log_text
    assert any(status == 503 for _, status, _ in statuses), statuses[-3:]
