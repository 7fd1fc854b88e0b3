"""Observability of the running service (real broker, real Redis, scripted backend).

After real traffic, `/metrics` shows exactly what happened: requests by outcome, code
and model; tokens by model equal to the replies' usage; one latency observation per
reply; the retry; error replies by code; nothing left in flight. `/readyz` turns 503
naming Redis while a private Redis is down and naming the breaker while it is open,
and 200 again after each; `/livez` stays 200; `/healthz` shows every check.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import SettingsFactory, Topics
from tests.support.images import b64, image_bytes
from tests.support.private_redis import PrivateRedis
from tests.support.scripted_openai import Fault, ScriptedOpenAI
from tests.support.service_runner import (
    Reply,
    ReplyCollector,
    envelope,
    produce_requests,
    running_service,
)

# --- a private Redis the test may stop and start ------------------------------------


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    with PrivateRedis(tmp_path / "redis", password="redis-PRIVATE-pw-3d9a61") as server:
        yield server


# --- probes and metrics over HTTP --------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    status: int
    body: dict[str, Any]


class Endpoints:
    """The service's health server, read over real HTTP like Kubernetes and Prometheus do."""

    def __init__(self, http: aiohttp.ClientSession, port: int) -> None:
        self._http = http
        self._base = f"http://127.0.0.1:{port}"

    async def get(self, path: str) -> Probe:
        async with self._http.get(self._base + path) as response:
            return Probe(response.status, orjson.loads(await response.read()))

    async def metrics(self) -> Metrics:
        async with self._http.get(self._base + "/metrics") as response:
            assert response.status == 200
            return Metrics(await response.text())

    async def until(
        self, path: str, predicate: Callable[[Probe], bool], timeout: float = 30
    ) -> Probe:
        """Poll a probe until it says what we wait for (the probe is the contract here)."""
        deadline = time.monotonic() + timeout
        while True:
            probe = await self.get(path)
            if predicate(probe):
                return probe
            if time.monotonic() > deadline:
                raise AssertionError(f"{path} still {probe.status} {probe.body} after {timeout} s")
            await asyncio.sleep(0.1)

    async def metrics_until(
        self, predicate: Callable[[Metrics], bool], timeout: float = 30
    ) -> Metrics:
        deadline = time.monotonic() + timeout
        while True:
            metrics = await self.metrics()
            if predicate(metrics):
                return metrics
            if time.monotonic() > deadline:
                raise AssertionError(f"metrics not as expected after {timeout} s")
            await asyncio.sleep(0.1)


class Metrics:
    """One scrape, parsed by prometheus_client's own parser."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: list[tuple[str, dict[str, str], float]] = [
            (sample.name, dict(sample.labels), sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels`."""
        return sum(
            value
            for sample, sample_labels, value in self.samples
            if sample == name and labels.items() <= sample_labels.items()
        )

    def by(self, name: str, label: str, **labels: str) -> dict[str, float]:
        """Non-zero values of `name` keyed by one label."""
        totals: dict[str, float] = {}
        for sample, sample_labels, value in self.samples:
            if sample == name and labels.items() <= sample_labels.items() and value:
                key = sample_labels[label]
                totals[key] = totals.get(key, 0.0) + value
        return totals


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


def endpoints_of(service: Any, http: aiohttp.ClientSession) -> Endpoints:
    assert service.health_port is not None
    return Endpoints(http, service.health_port)


# --- metrics after real traffic ---------------------------------------------------------


class FaultsByPrompt:
    """Scripted faults for given prompts, each served once: deterministic under concurrency."""

    def __init__(self, faults: dict[str, list[Fault]]) -> None:
        self._faults = {prompt: list(queue) for prompt, queue in faults.items()}

    def __call__(self, body: dict[str, Any]) -> Fault | None:
        for message in reversed(body.get("messages", [])):
            if message.get("role") == "user" and isinstance(message.get("content"), str):
                queue = self._faults.get(message["content"])
                return queue.pop(0) if queue else None
        return None


OK_TEXT = [f"plain question {i}" for i in range(3)]
OK_VISION = [f"what is in picture {i}?" for i in range(2)]


async def test_metrics_count_exactly_what_the_traffic_did(
    make_settings: SettingsFactory,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
    http: aiohttp.ClientSession,
) -> None:
    # "flaky" fails once with a 500 and is answered by its one retry; the others fail for good.
    scripted.fault_for_body = FaultsByPrompt(
        {
            "flaky": [Fault(status=500)],
            "auth please": [Fault(status=401)],
            "bad request": [Fault(status=400)],
        }
    )
    settings = make_settings(max_retries=1, breaker_fail_max=50)
    png = b64(image_bytes("PNG"))
    requests = [
        *(envelope(f"text-{i}", message=text) for i, text in enumerate(OK_TEXT)),
        *(envelope(f"vision-{i}", message=t, images=[png]) for i, t in enumerate(OK_VISION)),
        envelope("flaky", message="flaky"),
        envelope("auth", message="auth please"),
        envelope("bad", message="bad request"),
        envelope("forbidden-model", message="hi", model="gpt-not-allowed"),
        ("broken-json", b'{"key": "broken-json", "value": {"message": '),
    ]
    expected_codes = {
        "auth": "backend_auth_error",
        "bad": "backend_error",
        "forbidden-model": "model_not_allowed",
        "broken-json": "invalid_json",
    }
    async with running_service(settings) as service:
        endpoints = endpoints_of(service, http)
        produce_requests(settings.bootstrap_server, topics.request, requests)
        by_key = await replies.await_keys({key for key, _ in requests}, timeout=60)
        # A reply is visible to readers a moment before its delivery report reaches the
        # service: wait until the service has counted every acknowledgement.
        metrics = await endpoints.metrics_until(
            lambda m: (
                m.value("chater_gpt_replies_total") >= len(requests)
                and m.value("chater_gpt_unfinished_requests") == 0
            )
        )

    assert all(len(answers) == 1 for answers in by_key.values())
    answers = {key: answers[0].value for key, answers in by_key.items()}
    assert {k: v["error"]["code"] for k, v in answers.items() if "error" in v} == expected_codes
    ok = [value for value in answers.values() if "response" in value]
    assert Counter(v["model"] for v in ok) == {"gpt-4o-mini": 4, "gpt-4o": 2}

    # Requests by outcome, code and model; one backend.
    assert metrics.by("chater_gpt_requests_total", "model", outcome="ok") == {
        "gpt-4o-mini": 4,
        "gpt-4o": 2,
    }
    assert metrics.by("chater_gpt_requests_total", "code", outcome="error") == Counter(
        expected_codes.values()
    )
    assert metrics.by("chater_gpt_requests_total", "outcome") == {"ok": 6, "error": 4}
    assert set(metrics.by("chater_gpt_requests_total", "backend", outcome="ok")) == {"openai"}
    # Rejected requests are counted without a model, backend failures under theirs.
    assert metrics.by("chater_gpt_requests_total", "model", outcome="error") == {
        "": 2,
        "gpt-4o-mini": 2,
    }
    assert metrics.by("chater_gpt_error_replies_total", "code") == Counter(expected_codes.values())

    # Tokens by model are the sums of the replies' usage.
    for model in ("gpt-4o-mini", "gpt-4o"):
        usages = [v["usage"] for v in ok if v["model"] == model]
        assert metrics.value("chater_gpt_prompt_tokens_total", model=model) == sum(
            u["prompt_tokens"] for u in usages
        )
        assert metrics.value("chater_gpt_completion_tokens_total", model=model) == sum(
            u["completion_tokens"] for u in usages
        )

    # One latency observation per reply; one backend latency per successful call.
    assert metrics.value("chater_gpt_end_to_end_latency_seconds_count") == len(requests)
    assert metrics.value("chater_gpt_processing_seconds_count") == len(requests)
    assert metrics.value("chater_gpt_replies_total") == len(requests)
    assert metrics.value("chater_gpt_messages_consumed_total") == len(requests)
    assert metrics.value("chater_gpt_backend_latency_seconds_count", backend="openai") == 6
    assert metrics.value("chater_gpt_backend_latency_seconds_sum", backend="openai") > 0
    assert metrics.value("chater_gpt_end_to_end_latency_seconds_sum") > 0

    # The one retry, nothing left in flight, the breaker closed, no delivery failure.
    assert metrics.by("chater_gpt_retries_total", "backend") == {"openai": 1}
    assert scripted.calls == 6 + 1 + 2  # six answers, the failed first try, two failures
    assert metrics.value("chater_gpt_unfinished_requests") == 0
    assert metrics.value("chater_gpt_breaker_state", backend="openai") == 0
    assert metrics.value("chater_gpt_reply_delivery_failures_total") == 0
    assert metrics.value("chater_gpt_paused_partitions") == 0


# --- probes ----------------------------------------------------------------------------


def failing(probe: Probe) -> dict[str, str]:
    failures: dict[str, str] = probe.body.get("failing", {})
    return failures


async def test_readyz_fails_while_redis_is_down_and_recovers(
    make_settings: SettingsFactory,
    topics: Topics,
    replies: ReplyCollector,
    private_redis: PrivateRedis,
    http: aiohttp.ClientSession,
) -> None:
    settings = make_settings(redis_url=private_redis.url)
    async with running_service(settings) as service:
        endpoints = endpoints_of(service, http)
        await endpoints.until("/readyz", lambda p: p.status == 200)
        health = await endpoints.get("/healthz")
        assert health.body["checks"]["redis"] == {"ok": True, "detail": "PING answered"}

        private_redis.stop(save=False)
        down = await endpoints.until("/readyz", lambda p: p.status == 503)
        assert down.body["status"] == "not ready"
        assert set(failing(down)) == {"redis"}
        assert (await endpoints.get("/livez")).status == 200  # not wedged, only not ready
        health = await endpoints.get("/healthz")
        assert (health.status, health.body["status"]) == (200, "degraded")
        assert health.body["checks"]["redis"]["ok"] is False
        assert private_redis.password not in orjson.dumps(health.body).decode()
        assert private_redis.password not in orjson.dumps(down.body).decode()

        private_redis.start()
        assert (await endpoints.until("/readyz", lambda p: p.status == 200)).body == {
            "status": "ready"
        }
        # And the service works with Redis again.
        produce_requests(
            settings.bootstrap_server, topics.request, [envelope("after", message="back")]
        )
        reply = (await replies.await_keys({"after"}, timeout=30))["after"][0]
        assert reply.value["response"] == "echo: back"


async def test_readyz_fails_while_the_breaker_is_open_and_recovers(
    make_settings: SettingsFactory,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
    http: aiohttp.ClientSession,
) -> None:
    scripted.outage_status = 503
    settings = make_settings(breaker_fail_max=2, max_retries=0, breaker_reset_seconds=2)
    failed, waiting = ["fail-0", "fail-1"], ["wait-0", "wait-1"]
    async with running_service(settings) as service:
        endpoints = endpoints_of(service, http)
        await endpoints.until("/readyz", lambda p: p.status == 200)
        # Two failures open the breaker (their callers get an error reply at once)...
        produce_requests(
            settings.bootstrap_server, topics.request, [envelope(k, message=k) for k in failed]
        )
        opened = await endpoints.until("/readyz", lambda p: "breaker" in failing(p))
        assert opened.status == 503
        assert failing(opened) == {"breaker": "open: openai"}
        health = await endpoints.get("/healthz")
        assert health.body["breakers"] == {"openai": "open"}
        assert health.body["checks"]["breaker"]["ok"] is False
        assert (await endpoints.metrics()).value("chater_gpt_breaker_state", backend="openai") == 2
        # ...and the requests that come while it is open wait for it to close.
        produce_requests(
            settings.bootstrap_server, topics.request, [envelope(k, message=k) for k in waiting]
        )
        await endpoints.until("/healthz", lambda p: "breaker" in p.body["pause_reasons"])
        # (Polled: during a half-open probe the breaker is briefly not "open".)
        await endpoints.until("/readyz", lambda p: p.status == 503 and "breaker" in failing(p))

        scripted.outage_status = None  # the next half-open probe succeeds
        assert (await endpoints.until("/readyz", lambda p: p.status == 200)).body == {
            "status": "ready"
        }
        by_key = await replies.await_keys({*failed, *waiting}, timeout=60)
        metrics = await endpoints.metrics()

    assert all(len(answers) == 1 for answers in by_key.values())
    assert {k: error_code(by_key[k][0]) for k in failed} == dict.fromkeys(failed, "backend_error")
    assert all(by_key[k][0].value["error"]["retryable"] for k in failed)
    assert {k: by_key[k][0].value["response"] for k in waiting} == {
        k: f"echo: {k}" for k in waiting
    }
    assert metrics.value("chater_gpt_breaker_state", backend="openai") == 0


def error_code(reply: Reply) -> str:
    return "answered" if "response" in reply.value else str(reply.value["error"]["code"])


async def test_livez_and_healthz_describe_the_running_service(
    make_settings: SettingsFactory,
    private_redis: PrivateRedis,
    http: aiohttp.ClientSession,
) -> None:
    async with running_service(make_settings(redis_url=private_redis.url)) as service:
        endpoints = endpoints_of(service, http)
        live = await endpoints.get("/livez")
        assert (live.status, live.body["status"]) == (200, "ok")
        health = await endpoints.until("/healthz", lambda p: p.body["status"] == "ok")

    body = health.body
    assert health.status == 200
    assert {"kafka", "redis", "breaker", "heartbeat", "draining", "budget"} <= set(body["checks"])
    assert all(check["ok"] for check in body["checks"].values())
    # Three partitions of the chat topic and three of the photo topic: both routes.
    assert body["checks"]["kafka"]["detail"] == "6 partition(s) assigned"
    assert body["breakers"] == {"openai": "closed"}
    assert body["unfinished"] == 0
    assert body["paused_partitions"] == 0
    assert body["memory"]["rss_bytes"] > 10 * 1024 * 1024  # a real Python process


async def test_an_idle_service_probes_its_open_breaker_and_becomes_ready_again(
    make_settings: SettingsFactory,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
    http: aiohttp.ClientSession,
) -> None:
    # After an outage with no traffic, nobody calls the backend; the service's own
    # half-open probe (the model list) closes the breaker once the backend is back.
    scripted.outage_status = 503
    settings = make_settings(breaker_fail_max=2, max_retries=0, breaker_reset_seconds=1)
    failed = ["down-0", "down-1"]
    async with running_service(settings) as service:
        endpoints = endpoints_of(service, http)
        await endpoints.until("/readyz", lambda p: p.status == 200)
        produce_requests(
            settings.bootstrap_server, topics.request, [envelope(k, message=k) for k in failed]
        )
        await replies.await_keys(set(failed), timeout=30)
        await endpoints.until("/readyz", lambda p: "breaker" in failing(p))
        # Still down: the probes fail and the breaker opens again after each (between a
        # reset and the next probe it is half-open, which readiness does not fail), and
        # no chat call is made (counted at the end).
        await asyncio.to_thread(scripted.wait_until, lambda s: s.model_lists >= 2, 30)
        await endpoints.until("/readyz", lambda p: failing(p).get("breaker") == "open: openai")

        scripted.outage_status = None
        ready = await endpoints.until("/readyz", lambda p: p.status == 200)
        metrics = await endpoints.metrics()

    assert ready.body == {"status": "ready"}
    assert scripted.calls == len(failed)  # only the two requests' calls: no completion probe
    assert metrics.value("chater_gpt_breaker_state", backend="openai") == 0
