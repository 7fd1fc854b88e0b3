"""Scenario 5, backend chaos: 30% 5xx, 10% timeouts, bursts of 429 with Retry-After,
and a 30 s total outage. Every request is answered or error-replied with a retryable
code, the breaker opens during the outage, no request is billed twice, and the
backend never sees more than REQUESTS_PER_MINUTE."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable

import orjson
import pytest

from tests.integration.conftest import FAKE_API_KEY, Broker, service_config
from tests.integration.faults.conftest import ChildFactory, CollectorFactory, TopicsFactory
from tests.integration.faults.figures import BilledCalls, FigureBook, tally
from tests.integration.faults.harness import echoed, scan_service, wait_answered
from tests.support.scripted_openai import Fault, ScriptedOpenAI
from tests.support.service_runner import Reply, envelope, produce_requests

pytestmark = [pytest.mark.fault, pytest.mark.slow]

OUTAGE_SECONDS = 30.0
RATE_PER_MINUTE = 6000  # 100 requests/s
TIMEOUT = 1.0
RETRYABLE_CODES = {"backend_error", "backend_timeout", "backend_unavailable", "rate_limited"}


class Chaos:
    """The scripted server's fault function (its thread): a seeded mix of failures,
    a 429 burst every 150 calls, and a total outage while `outage` is set."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._burst_left = 0
        self._calls = 0
        self.outage = False
        self.kinds: Counter[str] = Counter()

    def __call__(self) -> Fault | None:
        with self._lock:
            self._calls += 1
            kind, fault = self._pick()
            self.kinds[kind] += 1
            return fault

    def _pick(self) -> tuple[str, Fault | None]:
        if self.outage:
            return "outage 503", Fault(status=503)
        if self._calls % 150 == 0:
            self._burst_left = 8
        if self._burst_left > 0:
            self._burst_left -= 1
            return "429 burst", Fault(status=429, headers={"Retry-After": "1"})
        draw = self._rng.random()
        if draw < 0.3:
            return "5xx", Fault(status=self._rng.choice((500, 502, 503)))
        if draw < 0.4:
            return "timeout", Fault(status=500, delay=2 * TIMEOUT)
        return "ok", None


def busiest_window(times: list[float], window: float) -> int:
    """The most requests seen in any `window` seconds (sliding)."""
    times = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_a_chaotic_backend_gets_retries_a_breaker_and_never_more_than_the_rate(
    broker: Broker,
    make_topics: TopicsFactory,
    children: ChildFactory,
    collectors: CollectorFactory,
    scaled: Callable[[float], int],
    fault_scale: float,
    figure_book: FigureBook,
) -> None:
    topics = make_topics(3)
    count = scaled(500)
    keys = [f"chaos-{i}" for i in range(count)]
    chaos = Chaos(seed=5_005)
    billed = BilledCalls()
    outage = OUTAGE_SECONDS * fault_scale
    with ScriptedOpenAI(answer=billed) as scripted:
        scripted.fault_fn = chaos
        config = service_config(
            broker,
            topics,
            scripted,
            requests_per_minute=RATE_PER_MINUTE,
            timeout=TIMEOUT,
            max_retries=3,
            # Above the 429 bursts (8 in a row): the outage is what must open the breaker.
            breaker_fail_max=12,
            breaker_reset_seconds=3,
        )
        collector = collectors(broker.bootstrap, topics.response)
        started = time.monotonic()
        child = children(config, "service")
        produce_requests(broker.bootstrap, topics.request, [envelope(k, message=k) for k in keys])
        collector.wait_for(count // 4, timeout=120)
        chaos.outage = True
        outage_started = time.monotonic()
        breaker_states: Counter[str] = Counter()
        replies_at_outage = len(collector.replies)
        try:
            # The deliberate outage: read the breaker state twice a second while it lasts.
            while time.monotonic() - outage_started < outage:
                _, body = child.get("/healthz")
                breakers = orjson.loads(body).get("breakers", {}) if body.startswith("{") else {}
                breaker_states.update(str(state) for state in breakers.values())
                time.sleep(0.5)
        finally:
            chaos.outage = False
        replies_during_outage = len(collector.replies) - replies_at_outage
        replies = wait_answered(collector, lambda r: r.key, set(keys), timeout=240, watch=[child])
        duration = time.monotonic() - started
        problems = scan_service([child], replies, [FAKE_API_KEY])
        assert child.terminate() == 0, child.log_text[-2000:]
        attempts = [r.at for r in scripted.requests]

    first: dict[str, Reply] = {}
    for reply in replies:
        first.setdefault(reply.key, reply)
    errors = {k: r.value["error"] for k, r in first.items() if "error" in r.value}
    calls = billed.snapshot()
    interval = 60 / RATE_PER_MINUTE
    busiest = busiest_window(attempts, 5.0)
    figures = tally(
        "5 backend chaos",
        sent=keys,
        answers=[r.key for r in replies],
        errors=list(errors),
        billed=calls,
        duration_s=duration,
        backend_attempts=len(attempts),
        attempts_per_request=round(len(attempts) / count, 2),
        fault_mix=dict(chaos.kinds),
        error_codes=dict(Counter(e["code"] for e in errors.values())),
        breaker_states_seen_during_outage=dict(breaker_states),
        replies_during_outage=replies_during_outage,
        busiest_5s_window=busiest,
        rate_limit_per_5s=round(5 / interval),
    )
    figure_book.add(figures)

    assert figures.lost == 0
    assert figures.duplicated == 0
    assert not problems, problems
    assert all(e["retryable"] is True and e["code"] in RETRYABLE_CODES for e in errors.values())
    assert all(echoed(first[k]) == k for k in keys if k not in errors)
    assert breaker_states["open"] > 0, breaker_states
    assert figures.max_llm_calls_per_request <= 1
    # Without pacing the 256 in-flight requests would hit the backend at once.
    # GCRA with burst 1 allows 5 s / interval (+1) requests in any 5 s; 5% and two
    # requests of slack absorb arrival jitter between the service and this server.
    assert busiest <= 1.05 * (5 / interval) + 2, busiest
    assert chaos.kinds["429 burst"] > 0
    assert chaos.kinds["timeout"] > 0
