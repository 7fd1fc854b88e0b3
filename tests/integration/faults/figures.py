"""Counting what a fault scenario did, per unique request: sent, answered, lost,
duplicated, LLM calls; and the book that collects every scenario's figures into JSON.

A "request id" is whatever identifies one request in a scenario (its message text or
its key); the scenario maps replies and LLM calls to ids and hands them here.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tests.support.scripted_openai import echo_answer, user_text


@dataclass(frozen=True)
class Figures:
    scenario: str
    sent: int
    answered: int  # unique requests that got a reply or an error reply
    error_replies: int  # unique requests whose (first) answer was an error reply
    lost: int  # sent, never answered
    duplicated: int  # replies beyond the first one for a request (replays)
    llm_calls: int  # billed (successful) LLM calls for the scenario's requests
    max_llm_calls_per_request: int
    llm_calls_per_unique_request: float  # billed calls / unique requests that reached the LLM
    duration_s: float
    notes: dict[str, Any] = field(default_factory=dict)


def tally(
    scenario: str,
    *,
    sent: Collection[str],
    answers: Iterable[str],
    errors: Collection[str],
    billed: Iterable[str],
    duration_s: float,
    **notes: Any,
) -> Figures:
    """Figures from the ids sent, the id of every reply (in arrival order, repeats
    included), the ids answered by an error, and the id of every billed LLM call."""
    replies = Counter(answers)
    calls = Counter(billed)
    sent_set = set(sent)
    answered = sent_set & set(replies)
    return Figures(
        scenario=scenario,
        sent=len(sent_set),
        answered=len(answered),
        error_replies=len(sent_set & set(errors)),
        lost=len(sent_set - answered),
        duplicated=sum(count - 1 for count in replies.values()),
        llm_calls=sum(calls.values()),
        max_llm_calls_per_request=max(calls.values(), default=0),
        llm_calls_per_unique_request=round(sum(calls.values()) / len(calls), 4) if calls else 0.0,
        duration_s=round(duration_s, 1),
        notes=notes,
    )


def sequence(text: str) -> tuple[str, int]:
    """ "c017 #0003" -> ("c017", 3)."""
    conversation, number = text.split(" #")
    return conversation, int(number)


def first_seen_in_order(texts: list[str]) -> bool:
    """Replays may repeat earlier answers; each answer's *first* arrival keeps the order."""
    seen: set[str] = set()
    last = -1
    for text in texts:
        if text in seen:
            continue
        seen.add(text)
        number = sequence(text)[1]
        if number <= last:
            return False
        last = number
    return True


class BilledCalls:
    """The scripted server's `answer` callable: echoes, and counts each successful
    (billed) call by the request's user text, in order. Runs in the server thread."""

    def __init__(self, answer: Callable[[dict[str, Any]], str] = echo_answer) -> None:
        self._answer = answer
        self._lock = threading.Lock()
        self.order: list[str] = []

    def __call__(self, body: dict[str, Any]) -> str:
        with self._lock:
            self.order.append(user_text(body))
        return self._answer(body)

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self.order)


class FigureBook:
    """Every scenario's figures of this session, rewritten to one JSON file as they come."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: list[Figures] = []

    def add(self, figures: Figures) -> None:
        self.entries.append(figures)
        self.path.write_bytes(
            orjson.dumps(
                [asdict(f) for f in self.entries],
                option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS,
            )
        )

    def summary_lines(self) -> list[str]:
        header = (
            f"{'scenario':<30}{'sent':>7}{'answered':>9}{'errors':>7}{'lost':>5}"
            f"{'dup':>6}{'llm/req':>8}{'max':>4}{'secs':>7}"
        )
        lines = [f"fault figures ({self.path})", header]
        for f in self.entries:
            lines.append(
                f"{f.scenario:<30}{f.sent:>7}{f.answered:>9}{f.error_replies:>7}{f.lost:>5}"
                f"{f.duplicated:>6}{f.llm_calls_per_unique_request:>8}"
                f"{f.max_llm_calls_per_request:>4}{f.duration_s:>7}"
            )
        return lines
