"""Scenario 1, crash loop: the service is SIGKILLed three times at random moments
(seeded) while it answers 5,000 requests of mixed traffic, and restarted each time:
half chat (100 conversations on the chat route), half photo analysis (100 users'
photo streams on the photo route, each photo a small real JPEG or PNG with its own
image_id). Nothing is lost, every conversation's and photo stream's answers come in
order, each reply comes on its route's reply topic in its route's shape, and a replay
is answered from the recorded outcome (Redis) instead of a second LLM call."""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import FAKE_API_KEY, Broker, service_config
from tests.integration.faults.conftest import ChildFactory, CollectorFactory, TopicsFactory
from tests.integration.faults.figures import (
    BilledCalls,
    FigureBook,
    Figures,
    first_seen_in_order,
    sequence,
    tally,
)
from tests.integration.faults.harness import echoed, scan_service, wait_answered, wait_total
from tests.support.images import b64, image_bytes
from tests.support.scripted_openai import ScriptedOpenAI, echo_answer, user_text
from tests.support.service_runner import Reply, committed_offsets, envelope, produce_tracked

pytestmark = [pytest.mark.fault, pytest.mark.slow]

KILLS = 3

# A photo request's prompt names the photo ("p017 #0003"): the backend's answer and the
# billed calls are matched to photos by it, as chat's echo matches chat requests.
PHOTO_PROMPT = "{id}: analyse the food in this photo; answer as JSON with type = food_processing"
# Small real images, JPEG and PNG, of different sizes (the photo route checks the bytes).
PHOTOS = [
    (mime, b64(image_bytes(fmt, size)))
    for mime, fmt, size in (
        ("image/jpeg", "JPEG", (48, 32)),
        ("image/png", "PNG", (32, 16)),
        ("image/jpeg", "JPEG", (64, 64)),
        ("image/png", "PNG", (24, 40)),
        ("image/jpeg", "JPEG", (16, 16)),
    )
]
ECHOED_PHOTO_FIELDS = ("user_email", "image_id", "timestamp", "date")


def prompt_id(text: str) -> str:
    """The request a billed call is for: "p017 #0003: analyse ..." -> "p017 #0003"; a
    chat call's user text ("c017 #0003") is its id already."""
    return text.split(":", 1)[0]


def fingerprint(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def scripted_answer(body: dict[str, Any]) -> str:
    """Chat: the echo. Photo (asked for a JSON object): one JSON object about the photo
    the prompt names, with a fingerprint of the image the model was shown."""
    if body.get("response_format"):
        shown = [
            fingerprint(part["image_url"]["url"])
            for message in body.get("messages", [])
            if message.get("role") == "user" and isinstance(message.get("content"), list)
            for part in message["content"]
            if part.get("type") == "image_url"
        ]
        return json.dumps(
            {
                "type": "food_processing",
                "about": prompt_id(user_text(body)),
                "images": shown,
                "dishes": [{"name": "tomato soup", "kcal": 180}],
            }
        )
    return echo_answer(body)


def photo_problems(reply: Reply, photos: dict[str, tuple[str, dict[str, Any]]]) -> list[str]:
    """What is wrong with a reply on the photo reply topic: it must answer a photo sent,
    in the photo shape (an `analysis` that json.loads as one JSON object about that
    photo, whose model call showed that photo's image; the request's user_email and
    image_id, and timestamp/date only when the request had them), and never be a chat
    reply or an error."""
    value = reply.value
    sent = photos.get(str(value.get("image_id")))
    if sent is None:
        return [f"{reply.key}: no photo sent has image_id {value.get('image_id')!r}"]
    photo, request = sent
    problems = []
    if "error" in value or "response" in value:
        problems.append(f"{photo}: not a photo analysis: {str(value)[:200]}")
    try:
        analysis = json.loads(value["analysis"])
    except (KeyError, TypeError, ValueError):
        analysis = None
    if not isinstance(analysis, dict) or analysis.get("about") != photo:
        problems.append(f"{photo}: analysis is not its JSON object: {value.get('analysis')!r}")
    elif analysis.get("images") != [request["shown"]]:
        problems.append(f"{photo}: the model was shown {analysis.get('images')}")
    if reply.key != sequence(photo)[0]:
        problems.append(f"{photo}: answered with key {reply.key!r}")
    problems.extend(
        f"{photo}: {field} {value.get(field)!r}, sent {request.get(field)!r}"
        for field in ECHOED_PHOTO_FIELDS
        if value.get(field) != request.get(field)
    )
    return problems


def replays_that_differ(
    replies: Iterable[Reply], reply_id: Callable[[Reply], str | None]
) -> list[tuple[str | None, dict[str, Any], dict[str, Any]]]:
    """Replies beyond the first for a request that differ from the first: a replay is
    the recorded outcome itself, byte for byte."""
    first: dict[str | None, dict[str, Any]] = {}
    differ = []
    for reply in replies:
        known = first.setdefault(reply_id(reply), reply.value)
        if reply.value != known:
            differ.append((reply_id(reply), known, reply.value))
    return differ


def extra_calls_per_conversation(calls: Iterable[str]) -> dict[str, int]:
    """Per conversation (or photo stream): billed calls beyond one per request."""
    per_request = Counter(calls)
    extra: Counter[str] = Counter()
    for request, count in per_request.items():
        extra[sequence(request)[0]] += count - 1
    return dict(extra)


def brief(figures: Figures) -> dict[str, Any]:
    return {k: v for k, v in asdict(figures).items() if k not in ("scenario", "notes")}


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
    photo_count = max(1, count // 2)
    chat_count = count - photo_count
    conversations = min(100, chat_count)
    streams = min(100, photo_count)
    topics = make_topics(3)
    run = topics.group
    texts = [f"c{i % conversations:03d} #{i // conversations:04d}" for i in range(chat_count)]
    messages = [
        envelope(
            text.split(" #")[0],
            message=text,
            user_email=f"{text.split(' #')[0]}-{run}@example.com",
        )
        for text in texts
    ]
    # Photo stream pNNN belongs to the user of chat conversation cNNN; its Kafka key is
    # the stream (one photo of a stream at a time, in order), its image_id the photo's own.
    photos: dict[str, tuple[str, dict[str, Any]]] = {}  # image_id -> (photo id, request)
    photo_messages = []
    for i in range(photo_count):
        stream, number = f"p{i % streams:03d}", i // streams
        photo = f"{stream} #{number:04d}"
        mime, image = PHOTOS[i % len(PHOTOS)]
        request: dict[str, Any] = {
            "prompt": PHOTO_PROMPT.format(id=photo),
            "photo": image,
            "user_email": f"c{i % streams:03d}-{run}@example.com",
            "image_id": f"img-{run}-{stream}-{number:04d}",
        }
        if number % 2 == 0:  # optional fields, carried back only when sent
            request["timestamp"] = f"2026-11-25T12:{number % 60:02d}:00Z"
            request["date"] = "2026-11-25"
        photo_messages.append(envelope(stream, **request))
        # What the model must be shown for it: the image as a data URL.
        photos[request["image_id"]] = (
            photo,
            {**request, "shown": fingerprint(f"data:{mime};base64,{image}")},
        )
    photo_ids = [photo for photo, _ in photos.values()]

    def photo_of(reply: Reply) -> str | None:
        sent = photos.get(str(reply.value.get("image_id")))
        return sent[0] if sent is not None else None

    billed = BilledCalls(answer=scripted_answer)
    rng = random.Random(8_001)
    with ScriptedOpenAI(latency=0.02, answer=billed, record=False) as scripted:
        config = service_config(broker, topics, scripted, redis_url=redis_url)
        collector = collectors(broker.bootstrap, topics.response)
        photo_collector = collectors(broker.bootstrap, topics.photo_response)
        ends = produce_tracked(broker.bootstrap, topics.request, messages)
        photo_ends = produce_tracked(broker.bootstrap, topics.photo_request, photo_messages)
        started = time.monotonic()
        child = children(config, "run-0")
        kill_points = []
        # Per kill: what had been answered before it, and how many calls were billed by then.
        answered_before: list[tuple[set[str], int]] = []
        for kill in range(KILLS):
            # A random moment: after a seeded random number of further replies (both routes).
            seen = len(collector.replies) + len(photo_collector.replies)
            target = seen + rng.randint(count // 12, count // 6)
            wait_total([collector, photo_collector], target, timeout=180)
            kill_points.append(target)
            answered = {echoed(r) or "" for r in list(collector.replies)}
            answered |= {photo_of(r) or "" for r in list(photo_collector.replies)}
            child.kill()
            answered_before.append((answered, len(billed.snapshot())))
            child = children(config, f"run-{kill + 1}")
        replies = wait_answered(collector, echoed, set(texts), timeout=240, watch=[child])
        photo_replies = wait_answered(
            photo_collector, photo_of, set(photo_ids), timeout=240, watch=[child]
        )
        duration = time.monotonic() - started
        problems = scan_service([child], replies + photo_replies, [FAKE_API_KEY])
        assert child.terminate() == 0, child.log_text[-2000:]

    answers = [echoed(r) or "" for r in replies]
    photo_answers = [photo_of(r) or "" for r in photo_replies]
    calls = [prompt_id(text) for text in billed.snapshot()]
    photo_calls = [call for call in calls if call.startswith("p")]
    chat_calls = [call for call in calls if not call.startswith("p")]
    photo_errors = [photo_of(r) or "" for r in photo_replies if "error" in r.value]
    chat_figures = tally(
        "1 crash loop: chat",
        sent=texts,
        answers=answers,
        errors=[r.key for r in replies if "error" in r.value],
        billed=chat_calls,
        duration_s=duration,
    )
    photo_figures = tally(
        "1 crash loop: photo",
        sent=photo_ids,
        answers=photo_answers,
        errors=photo_errors,
        billed=photo_calls,
        duration_s=duration,
    )
    figures = tally(
        "1 crash loop (3x SIGKILL)",
        sent=texts + photo_ids,
        answers=answers + photo_answers,
        errors=photo_errors,
        billed=calls,
        duration_s=duration,
        conversations=conversations,
        photo_streams=streams,
        kill_after_replies=kill_points,
        requests_called_twice_in_flight_at_kill=sum(1 for c in Counter(calls).values() if c > 1),
        chat=brief(chat_figures),
        photo=brief(photo_figures),
    )
    figure_book.add(figures)

    assert not problems, problems

    # --- chat --------------------------------------------------------------------
    assert chat_figures.lost == 0
    assert chat_figures.error_replies == 0
    # Every reply on the chat reply topic is a chat answer (an echo; no error, no photo).
    assert not [r.value for r in replies if echoed(r) is None][:5]
    by_conversation: dict[str, list[str]] = defaultdict(list)
    for reply, text in zip(replies, answers, strict=True):
        by_conversation[reply.key].append(text)
    out_of_order = [k for k, seq in by_conversation.items() if not first_seen_in_order(seq)]
    assert not out_of_order, out_of_order[:5]

    # --- photo -------------------------------------------------------------------
    # Every photo answered on the photo reply topic, in kind: its analysis json.loads as
    # one JSON object about it, with its image_id and user_email (replays counted as dup).
    assert photo_figures.lost == 0, photo_figures
    assert photo_figures.error_replies == 0, photo_figures
    assert photo_figures.answered == photo_count
    wrong = [p for reply in photo_replies for p in photo_problems(reply, photos)]
    assert not wrong, wrong[:5]
    by_stream: dict[str, list[str]] = defaultdict(list)
    for reply, photo in zip(photo_replies, photo_answers, strict=True):
        by_stream[reply.key].append(photo)
    out_of_order = [k for k, seq in by_stream.items() if not first_seen_in_order(seq)]
    assert not out_of_order, out_of_order[:5]

    # --- both routes ---------------------------------------------------------------
    # A replay is the recorded outcome itself: a duplicate equals the first reply.
    assert not replays_that_differ(replies, echoed)[:3]
    assert not replays_that_differ(photo_replies, photo_of)[:3]
    # The backend saw each conversation's and photo stream's requests in order too.
    calls_by_conversation: dict[str, list[str]] = defaultdict(list)
    for text in calls:
        calls_by_conversation[sequence(text)[0]].append(text)
    assert all(first_seen_in_order(seq) for seq in calls_by_conversation.values())
    # Every partition of both request topics committed up to its end: nothing pending,
    # nothing skipped.
    assert committed_offsets(broker.bootstrap, topics.group, topics.request) == {
        partition: ends.get(partition, -1001) for partition in range(3)
    }
    assert committed_offsets(broker.bootstrap, topics.group, topics.photo_request) == {
        partition: photo_ends.get(partition, -1001) for partition in range(3)
    }
    # No double billing for what was answered: a request (chat or photo) answered before
    # a kill is replayed from its recorded outcome, never called again.
    for answered, mark in answered_before:
        assert not answered & set(calls[mark:])
    # Only requests whose LLM call was under way at a kill (outcome not yet recorded)
    # are called again: at most one per conversation (or photo stream) per kill, one
    # call at a time each.
    assert chat_figures.llm_calls - chat_count <= KILLS * conversations, chat_figures
    assert chat_figures.max_llm_calls_per_request <= 1 + KILLS, chat_figures
    assert photo_figures.llm_calls - photo_count <= KILLS * streams, photo_figures
    assert photo_figures.max_llm_calls_per_request <= 1 + KILLS, photo_figures
    extra = extra_calls_per_conversation(calls)
    assert max(extra.values(), default=0) <= KILLS, sorted(extra.items(), key=lambda kv: -kv[1])[:5]


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
