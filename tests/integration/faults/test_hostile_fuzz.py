"""Scenario 6, hostile input: 10,000 (then 5,000 more) generated messages (invalid
UTF-8, truncated JSON, deep nesting, ~10 MB strings, huge arrays, wrong types, bad
base64, non-image bytes, image bombs, control characters, prompt injection) into one
running service. It never
crashes or stalls a partition; every keyed message gets a documented error code or,
when the input happens to be valid, a normal reply; only valid input reaches the LLM;
no secret, trace or address leaks; memory stays bounded."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest

from chater_gpt.errors import ErrorCode
from tests.integration.conftest import FAKE_API_KEY, Broker, service_config
from tests.integration.faults.conftest import ChildFactory, CollectorFactory, TopicsFactory
from tests.integration.faults.figures import BilledCalls, FigureBook, tally
from tests.integration.faults.harness import (
    error_code,
    produce_raw,
    scan_service,
    wait_answered,
)
from tests.integration.faults.hostile import OK, hostile_messages
from tests.support.scripted_openai import ScriptedOpenAI
from tests.support.service_runner import Reply, committed_offsets

pytestmark = [pytest.mark.fault, pytest.mark.slow]

DOCUMENTED = {code.value for code in ErrorCode} - {ErrorCode.INTERNAL_ERROR.value}
KEYLESS = 20
WARMUP = 1_000
# Memory bounds (RSS of the child): the first full run may grow RSS past its warm-up
# level by at most RSS_FIRST_RUN_MB (allocator arenas kept after ~10 MB messages, and
# librdkafka's fetch queue, up to queued.max.messages.kbytes = 64 MiB); a second run of
# half the size on top may add at most RSS_SECOND_RUN_MB. Measured with the allocator
# settings of chater_gpt/allocator.py and one core kept busy: +19..+44 MB, then
# +0.6..+39 MB (without them the second run reached +75 MB in CI).
RSS_FIRST_RUN_MB = 150
RSS_SECOND_RUN_MB = 64


def outcome(reply: Reply) -> str:
    return error_code(reply) or (OK if "response" in reply.value else "unknown")


def test_ten_thousand_hostile_messages_get_documented_answers_and_nothing_leaks(
    broker: Broker,
    make_topics: TopicsFactory,
    children: ChildFactory,
    collectors: CollectorFactory,
    scaled: Callable[[float], int],
    figure_book: FigureBook,
) -> None:
    count = max(WARMUP + 100, scaled(10_000))
    messages = list(hostile_messages(count, seed=6_006, keyless=KEYLESS))
    again = list(hostile_messages(count // 2, seed=6_007, keyless=0, prefix="fy"))
    keyed = {m.key: m for m in messages + again if m.key is not None}
    assert len(keyed) == count + count // 2
    topics = make_topics(3)
    billed = BilledCalls()
    with ScriptedOpenAI(answer=billed, record=False) as scripted:
        config = service_config(broker, topics, scripted)
        collector = collectors(broker.bootstrap, topics.response)
        child = children(config, "service")
        started = time.monotonic()
        ends = produce_raw(
            broker.bootstrap, topics.request, [(m.kafka_key, m.value) for m in messages[:WARMUP]]
        )
        wait_answered(
            collector, lambda r: r.key, {m.key or "" for m in messages[:WARMUP]}, 120, watch=[child]
        )
        rss_warm = child.memory_kb()
        rest = produce_raw(
            broker.bootstrap, topics.request, [(m.kafka_key, m.value) for m in messages[WARMUP:]]
        )
        first_run = {m.key for m in messages if m.key is not None}
        wait_answered(collector, lambda r: r.key, first_run, timeout=240, watch=[child])
        rss_first = child.memory_kb()
        last = produce_raw(
            broker.bootstrap, topics.request, [(m.kafka_key, m.value) for m in again]
        )
        replies = wait_answered(collector, lambda r: r.key, set(keyed), timeout=240, watch=[child])
        duration = time.monotonic() - started
        rss_end, rss_peak = child.memory_kb(), child.memory_kb("VmHWM")
        assert child.alive
        rejected_without_key = child.metric("chater_gpt_rejected_without_key_total")
        problems = scan_service([child], replies, [FAKE_API_KEY])
        assert child.terminate() == 0, child.log_text[-3000:]

    first: dict[str, Reply] = {}
    for reply in replies:
        first.setdefault(reply.key, reply)
    outcomes = {key: outcome(reply) for key, reply in first.items()}
    unexpected = {
        key: (keyed[key].kind, outcomes[key], sorted(keyed[key].expect or ()))
        for key in keyed
        if outcomes[key] not in (keyed[key].expect or DOCUMENTED | {OK})
    }
    calls = billed.snapshot()
    called_keys = Counter(text.split(" ", 1)[0] for text in calls)
    figures = tally(
        "6 hostile input fuzz",
        sent=list(keyed),
        answers=[r.key for r in replies],
        errors=[k for k, o in outcomes.items() if o != OK],
        billed=[text.split(" ", 1)[0] for text in calls],
        duration_s=duration,
        keyless_sent=KEYLESS,
        rejected_without_key=rejected_without_key,
        kinds=dict(Counter(m.kind for m in messages)),
        outcomes=dict(Counter(outcomes.values())),
        rss_mb_after_warmup=round(rss_warm / 1024, 1),
        rss_mb_after_first_run=round(rss_first / 1024, 1),
        rss_mb_at_end=round(rss_end / 1024, 1),
        rss_mb_peak=round(rss_peak / 1024, 1),
    )
    figure_book.add(figures)

    assert figures.lost == 0
    assert figures.duplicated == 0
    assert not unexpected, list(unexpected.items())[:10]
    assert "internal_error" not in outcomes.values()
    assert not problems, problems[:10]
    assert "Traceback" not in child.log_text
    # Only input that was answered normally reached the LLM, and once.
    assert set(called_keys) == {k for k, o in outcomes.items() if o == OK}
    assert figures.max_llm_calls_per_request == 1
    assert rejected_without_key == KEYLESS
    # No partition stalled: every offset, keyless messages included, was committed.
    for batch in (rest, last):
        for partition, end in batch.items():
            ends[partition] = max(ends.get(partition, 0), end)
    assert committed_offsets(broker.bootstrap, topics.group, topics.request) == {
        p: ends.get(p, -1001) for p in range(3)
    }
    assert rss_first - rss_warm <= RSS_FIRST_RUN_MB * 1024, (rss_warm, rss_first)
    assert rss_end - rss_first <= RSS_SECOND_RUN_MB * 1024, (rss_first, rss_end)
