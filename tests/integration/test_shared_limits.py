"""Three service processes, one Redis, one backend: REQUESTS_PER_MINUTE holds for the
whole group, not per replica (the known failure of per-replica limits)."""

from __future__ import annotations

from pathlib import Path

from tests.integration.conftest import Broker, Topics, service_config
from tests.support.scripted_openai import ScriptedOpenAI
from tests.support.service_runner import (
    ReplyCollector,
    ServiceProcess,
    envelope,
    produce_requests,
)

RATE_PER_MINUTE = 60  # one call a second, shared by the three replicas
WINDOW = 20.0


def test_three_replicas_share_one_rate_limit(
    broker: Broker,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
    redis_url: str,
    tmp_path: Path,
) -> None:
    config = service_config(
        broker,
        topics,
        scripted,
        redis_url=redis_url,
        requests_per_minute=RATE_PER_MINUTE,
        consumer_group=f"{topics.group}-shared",
    )
    produce_requests(
        broker.bootstrap,
        topics.request,
        [envelope(f"rate-{i}", message=f"paced {i}") for i in range(60)],
    )
    replicas = [ServiceProcess(config, tmp_path / f"replica-{n}.log").start() for n in range(3)]
    try:
        scripted.wait_until(lambda s: s.calls >= 1, timeout=60)
        first = scripted.requests[0].at
        scripted.wait_until(
            lambda s: bool(s.requests) and s.requests[-1].at >= first + WINDOW, timeout=WINDOW + 30
        )
        assert len(replies.replies) < 60  # the limit, not the work, decided the pace
    finally:
        for replica in replicas:
            replica.stop()

    times = sorted(r.at for r in scripted.requests)
    busiest = max(sum(1 for t in times if start <= t < start + WINDOW) for start in times)
    allowed = RATE_PER_MINUTE * WINDOW / 60
    assert busiest <= allowed + 1, f"{busiest} calls in {WINDOW} s (limit {allowed})"
    assert busiest >= allowed - 3  # and the three together did use the whole rate
    logs = [(tmp_path / f"replica-{n}.log").read_text() for n in range(3)]
    assert sum("partitions assigned" in log for log in logs) >= 2  # spread over replicas
