"""Scenario 7, poison at scale: one bad message after every ten good ones, 2,000 in all,
spread over 50 conversations that share keys with the poison. The good ones are all
answered, in order per key; each bad one gets its error reply in its place; none of
them reaches the LLM."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

import orjson
import pytest

from tests.integration.conftest import FAKE_API_KEY, Broker, service_config
from tests.integration.faults.conftest import ChildFactory, CollectorFactory, TopicsFactory
from tests.integration.faults.figures import BilledCalls, FigureBook, tally
from tests.integration.faults.harness import (
    echoed,
    error_code,
    produce_raw,
    scan_service,
    wait_answered,
)
from tests.support.images import b64, png_bomb
from tests.support.scripted_openai import ScriptedOpenAI

pytestmark = [pytest.mark.fault, pytest.mark.slow]

CONVERSATIONS = 50

# (value for key k, the error code it must get)
POISON: tuple[tuple[Callable[[str], bytes], str], ...] = (
    (lambda k: b'{"key": "' + k.encode() + b'", "value": {"message": "cut', "invalid_json"),
    (lambda k: b"\xff\xfe" + k.encode(), "invalid_json"),
    (lambda k: orjson.dumps({"key": k, "value": {"message": 42}}), "invalid_request"),
    (
        lambda k: orjson.dumps(
            {"key": k, "value": {"message": "x", "images": [b64(png_bomb(90_000, 90_000))]}}
        ),
        "payload_too_large",
    ),
    (
        lambda k: orjson.dumps({"key": k, "value": {"message": "x", "images": ["%%%"]}}),
        "invalid_image",
    ),
    (lambda k: b"", "invalid_json"),
)


def test_one_poison_message_in_eleven_never_disturbs_the_good_ones(
    broker: Broker,
    make_topics: TopicsFactory,
    children: ChildFactory,
    collectors: CollectorFactory,
    scaled: Callable[[float], int],
    figure_book: FigureBook,
) -> None:
    count = max(110, scaled(2000))
    topics = make_topics(3)
    expected: dict[str, list[str]] = defaultdict(list)  # per key: text, or "error:<code>"
    messages: list[tuple[bytes | None, bytes | None]] = []
    good: list[str] = []
    for i in range(count):
        key = f"c{i % CONVERSATIONS:03d}"
        if i % 11 == 10:
            make, code = POISON[(i // 11) % len(POISON)]
            messages.append((key.encode(), make(key)))
            expected[key].append(f"error:{code}")
        else:
            text = f"{key} #{i // CONVERSATIONS:04d}"
            messages.append((key.encode(), orjson.dumps({"key": key, "value": {"message": text}})))
            expected[key].append(text)
            good.append(text)
    billed = BilledCalls()
    with ScriptedOpenAI(latency=0.01, answer=billed, record=False) as scripted:
        config = service_config(broker, topics, scripted)
        collector = collectors(broker.bootstrap, topics.response)
        child = children(config, "service")
        started = time.monotonic()
        produce_raw(broker.bootstrap, topics.request, messages)
        collector.wait_for(count, timeout=120)
        replies = wait_answered(collector, echoed, set(good), timeout=60, watch=[child])
        duration = time.monotonic() - started
        problems = scan_service([child], replies, [FAKE_API_KEY])
        assert child.terminate() == 0, child.log_text[-2000:]

    seen: dict[str, list[str]] = defaultdict(list)
    for reply in replies:
        got = error_code(reply)
        seen[reply.key].append(f"error:{got}" if got else echoed(reply) or "?")

    # A message counts as answered when its key's answer in its position is the right one.
    def is_error(message_id: str) -> bool:
        key, position = message_id.split("@")
        return expected[key][int(position)].startswith("error:")

    answered = [
        f"{key}@{position}"
        for key, labels in expected.items()
        for position, (want, got) in enumerate(zip(labels, seen.get(key, []), strict=False))
        if want == got
    ]
    figures = tally(
        "7 poison at scale (1 in 11)",
        sent=[f"{key}@{p}" for key, labels in expected.items() for p in range(len(labels))],
        answers=answered,
        errors=[a for a in answered if is_error(a)],
        billed=billed.snapshot(),
        duration_s=duration,
        poison_sent=count - len(good),
    )
    figure_book.add(figures)

    assert figures.lost == 0
    assert len(replies) == count  # one answer per message, poison included
    assert not problems, problems
    # Per key, answers arrive exactly in request order, each poison in its place.
    assert dict(seen) == dict(expected)
    assert sorted(billed.snapshot()) == sorted(good)  # poison never reached the LLM
