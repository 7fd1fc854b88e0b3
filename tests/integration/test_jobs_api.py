"""The job API and the event endpoint end to end: real broker, the real service (`python
main.py run`) on a scripted OpenAI-compatible server, real Redis, and two real gateway
processes (`python main.py gateway`). One stack serves the whole module.

The job test submits 1,000 jobs across both gateways and restarts one of them half-way:
every job is collected through either gateway, its status history is queued →
processing → completed (or error, for the jobs scripted to fail), and the positions a
queued job shows only go down."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from chater_gpt.dev.ports import free_port
from chater_gpt.storage.keys import KeySpace
from tests.integration.conftest import Broker, Topics, service_config
from tests.support.gateway_stack import GatewayProc, gateway_settings, metric, wait_ready
from tests.support.scripted_common import Fault
from tests.support.scripted_openai import ScriptedOpenAI, user_text
from tests.support.service_runner import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APP_CODE = "app-" + uuid.uuid4().hex
SLOW_APP_CODE = "app-" + uuid.uuid4().hex  # rate limited: 2 per hour
API_KEY = "sk-event-test-" + uuid.uuid4().hex
JOBS = 1000
# Longer than any run of the test: no job may expire while the test still reads it.
JOB_TTL_SECONDS = 120
COLLECT_SECONDS = 90  # a bound for a stuck job (the 1,000 finish in seconds here)
POLL_INTERVAL = 0.05  # between rounds of status reads: a polling client's pace
FAIL_MARK = "please-fail"
GATEWAY_JOBS = "chater_gpt_gateway_jobs_submitted_total"
# The scripted backend's answers for the event endpoint's error mapping, by prompt.
EVENT_FAULTS = {
    "fault-401": Fault(status=401),
    "fault-400": Fault(status=400),
    "fault-503": Fault(status=503),
    "fault-garbled": Fault(status=200, raw=b"{not json"),
}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def fault_for(body: dict[str, Any]) -> Fault | None:
    text = user_text(body)
    if FAIL_MARK in text:
        return Fault(status=400)
    return next((fault for mark, fault in EVENT_FAULTS.items() if mark in text), None)


@dataclass
class Stack:
    scripted: ScriptedOpenAI
    core: ServiceProcess
    core_port: int  # the core's metrics
    redis_prefix: str
    gateways: dict[str, GatewayProc] = field(default_factory=dict)

    def url(self, name: str, path: str) -> str:
        return f"http://127.0.0.1:{self.gateways[name].port}{path}"

    def logs(self) -> str:
        paths = [self.core.log_path, *(g.log_path for g in self.gateways.values())]
        return "".join(Path(p).read_text(errors="replace") for p in paths)

    def warnings(self) -> str:
        """The processes' warnings and errors, for a failure's message."""
        lines = self.logs().splitlines()
        return "\n".join(line for line in lines if "WARNING" in line or "ERROR" in line)[-4000:]


@pytest.fixture(scope="module")
def stack(
    broker: Broker, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    run = uuid.uuid4().hex[:10]
    topics = Topics(f"jobs-send-{run}", f"jobs-resp-{run}", f"jobs-group-{run}", "", "unused")
    broker.create_topics([topics.request, topics.response])
    logs = tmp_path_factory.mktemp("jobs")
    policy = logs / "tenants.yaml"
    summarise = {"prompt_template": "Summarise: {text}", "model": "gpt-4o-mini", "max_tokens": 50}
    policy.write_text(
        json.dumps(
            {
                "unknown_app_code": "allow",
                "tenants": {
                    "shop": {
                        "name": "Shop",
                        "app_code_sha256": sha(APP_CODE),
                        "rate_limit": "100000/hour",
                        "request_types": {
                            "summarise": summarise,
                            "translate": {"prompt_template": "Translate: {request}"},
                        },
                    },
                    "slow": {
                        "app_code_sha256": sha(SLOW_APP_CODE),
                        "rate_limit": "2/hour",
                        "request_types": {"summarise": summarise},
                    },
                },
            }
        )
    )
    keys_file = logs / "keys.json"
    keys_file.write_text(json.dumps({"keys": {sha(API_KEY): "shop"}}))
    # 8 in flight at 20 ms: at most 400 jobs/s, so queued jobs are seen moving up.
    with ScriptedOpenAI(latency=0.02) as scripted:
        scripted.fault_for_body = fault_for
        common = service_config(
            broker,
            topics,
            scripted,
            gateway_reply_topic_prefix=f"jobs-reply-{run}-",
            redis_url=redis_url,
            tenant_policy_file=policy,
            gateway_job_ttl_seconds=JOB_TTL_SECONDS,
            gateway_job_max_wait_seconds=JOB_TTL_SECONDS - 5,
            gateway_job_queue_capacity=5000,
            max_in_flight=8,
        )
        common.pop("metrics_port")
        port = free_port()
        core = ServiceProcess({**common, "metrics_port": port}, logs / "service.log").start()
        built = Stack(scripted, core, port, common["redis_key_prefix"])
        try:
            wait_ready(port, core)
            for name in ("a", "b"):
                gateway_port = free_port()
                settings = gateway_settings(
                    common,
                    port=gateway_port,
                    instance_id=f"{name}-{run}",
                    gateway_api_keys_file=keys_file if name == "a" else None,
                )
                gateway = GatewayProc(name, gateway_port, settings, logs / name)
                built.gateways[name] = gateway.start()
            yield built
        finally:
            for gateway in built.gateways.values():
                gateway.stop()
            core.stop()


def restart(gateway: GatewayProc) -> None:
    assert gateway.process is not None
    code, _ = gateway.process.terminate(20)
    assert code == 0
    gateway.start()


async def submit(
    session: aiohttp.ClientSession, url: str, body: Any
) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with session.post(url, json=body) as response:
        return response.status, await response.json(), dict(response.headers)


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with session.get(url) as response:
        return response.status, await response.json()


def job_body(i: int) -> dict[str, Any]:
    text = f"{FAIL_MARK} {i}" if i % 50 == 7 else f"job {i}"
    return {"app_code": APP_CODE, "request_type": "summarise", "request": {"text": text}}


async def submit_all(stack: Stack, session: aiohttp.ClientSession) -> list[str]:
    """Half through each gateway, restarting b after the first half (while jobs run)."""
    ids: list[str] = []
    semaphore = asyncio.Semaphore(32)

    async def one(i: int, name: str) -> str:
        async with semaphore:
            status, body, _ = await submit(session, stack.url(name, "/ai_request"), job_body(i))
        assert status == 200, body
        assert body["status"] == "success"
        return str(body["request_id"])

    half = JOBS // 2
    ids += await asyncio.gather(*(one(i, "ab"[i % 2]) for i in range(half)))
    await asyncio.to_thread(restart, stack.gateways["b"])
    ids += await asyncio.gather(*(one(i, "ab"[i % 2]) for i in range(half, JOBS)))
    return ids


async def collect(
    stack: Stack, session: aiohttp.ClientSession, ids: list[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, list[int]]]:
    """Poll every unfinished job (through both gateways, in turn) until each is final:
    the client-visible API is the event here, with a deadline. Rounds are paced as a
    client would pace them: a tight loop of status reads would take the CPU the core
    needs to finish the jobs (two cores run the whole stack)."""
    final: dict[str, dict[str, Any]] = {}
    last: dict[str, dict[str, Any]] = {}  # the latest view of each job, for the message
    positions: dict[str, list[int]] = {job: [] for job in ids}
    deadline = time.monotonic() + COLLECT_SECONDS
    semaphore = asyncio.Semaphore(32)

    async def look(n: int, job: str) -> None:
        async with semaphore:
            status, body = await get(session, stack.url("ab"[n % 2], f"/get_request/{job}"))
        assert status == 200, body
        last[job] = body
        if body["status"] == "queued":
            positions[job].append(body["position"])
        elif body["status"] in ("completed", "error", "expired"):
            final[job] = body

    while len(final) < len(ids):
        if time.monotonic() >= deadline:
            unfinished = [last.get(job) for job in ids if job not in final]
            pytest.fail(f"{len(unfinished)} jobs unfinished: {unfinished}\n{stack.warnings()}")
        await asyncio.gather(*(look(n, job) for n, job in enumerate(ids) if job not in final))
        await asyncio.sleep(POLL_INTERVAL)
    return final, positions


def finished(stack: Stack) -> dict[str, float]:
    """The core's count of finished jobs, by status."""
    return {
        status: metric(stack.core_port, "chater_gpt_jobs_finished_total", status=status)
        for status in ("completed", "error", "expired")
    }


async def test_a_thousand_jobs_across_two_gateways_one_restarted(stack: Stack) -> None:
    before = await asyncio.to_thread(finished, stack)
    gateway_a = stack.gateways["a"].port
    accepted_before = await asyncio.to_thread(metric, gateway_a, GATEWAY_JOBS, outcome="accepted")
    async with aiohttp.ClientSession() as session:
        ids = await submit_all(stack, session)
        assert len(set(ids)) == JOBS
        final, positions = await collect(stack, session, ids)
    failing = {i for i in range(JOBS) if i % 50 == 7}
    for i, job in enumerate(ids):
        body = final[job]
        history = [entry["status"] for entry in body["status_history"]]
        if i in failing:
            assert history == ["queued", "processing", "error"], body
            assert body["error_code"] == "BACKEND_ERROR"
            assert body["retry_possible"] is False
        else:
            assert history == ["queued", "processing", "completed"], body
            assert body["ai_response"] == f"echo: Summarise: job {i}"
            assert body["model_used"] == "gpt-4o-mini"
            assert body["token_usage"]["total_tokens"] > 0
            assert body["completion_time"]
        seen = positions[job]
        assert seen == sorted(seen, reverse=True), seen  # positions only go down
    assert sum(1 for seen in positions.values() if len(set(seen)) > 1) > 0  # some moved
    assert APP_CODE not in stack.logs()
    # Each job counted once by the core, by its status; gateway a (never restarted)
    # counted each of its submissions accepted.
    after = await asyncio.to_thread(finished, stack)
    counted = {status: after[status] - before[status] for status in after}
    assert counted == {"completed": JOBS - len(failing), "error": len(failing), "expired": 0}
    accepted = await asyncio.to_thread(metric, gateway_a, GATEWAY_JOBS, outcome="accepted")
    assert accepted - accepted_before == JOBS / 2


async def test_rejections_are_the_job_systems_codes(stack: Stack) -> None:
    url = stack.url("b", "/ai_request")
    good = {"app_code": APP_CODE, "request_type": "summarise", "request": {"text": "x"}}
    cases = [
        ({**good, "app_code": "app-unknown"}, 401, "INVALID_APP_CODE"),
        ({**good, "request_type": "poetry"}, 403, "UNSUPPORTED_REQUEST_TYPE"),
        ({"app_code": APP_CODE, "request_type": "summarise"}, 400, "INVALID_REQUEST"),
        ({**good, "request": {"wrong": "field"}}, 400, "INVALID_REQUEST"),
        ([1, 2], 400, "INVALID_REQUEST"),
    ]
    async with aiohttp.ClientSession() as session:
        for body, status, code in cases:
            got, answer, _ = await submit(session, url, body)
            assert (got, answer["status"], answer["error_code"]) == (status, "error", code)
        async with session.post(url, data=b"{not json") as response:
            assert response.status == 400
            assert (await response.json())["error_code"] == "INVALID_REQUEST"
        slow = {**good, "app_code": SLOW_APP_CODE}
        answers = [await submit(session, url, slow) for _ in range(3)]
        assert [status for status, _, _ in answers] == [200, 200, 429]
        assert answers[2][1]["error_code"] == "RATE_LIMIT_EXCEEDED"
        assert int(answers[2][2]["Retry-After"]) > 0
        status, answer = await get(session, stack.url("a", "/get_request/no-such-job"))
        assert (status, answer["error_code"]) == (404, "REQUEST_NOT_FOUND")
        # The whole request as the template's `{request}`.
        whole = {"app_code": APP_CODE, "request_type": "translate", "request": "hola"}
        status, answer, _ = await submit(session, url, whole)
        assert status == 200
    assert APP_CODE not in stack.logs()
    assert SLOW_APP_CODE not in stack.logs()


async def event(
    stack: Stack, body: Any, *, gateway: str = "b", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(stack.url(gateway, "/event"), json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


async def test_the_event_endpoint_answers_a_prompt_or_messages(stack: Stack) -> None:
    assert await event(stack, {"content": "plain prompt"}) == (
        200,
        {"completion": "echo: plain prompt"},
    )
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "from messages"},
    ]
    assert await event(stack, {"content": json.dumps({"messages": messages})}) == (
        200,
        {"completion": "echo: from messages"},
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ([1, 2], "invalid_input_format"),
        ({"text": "no content"}, "missing_content_field"),
        ({"content": json.dumps({"no": "messages"})}, "prompt_extraction_failed"),
        (
            {"content": json.dumps([{"role": "assistant", "content": "x"}])},
            "prompt_extraction_failed",
        ),
        ({"content": "fault-401"}, "api_authentication_error"),
        ({"content": "fault-400"}, "api_client_error"),
        ({"content": "fault-503"}, "api_connection_error"),
        ({"content": "fault-garbled"}, "api_response_format_error"),
    ],
)
async def test_event_errors_are_the_event_systems_codes(stack: Stack, body: Any, code: str) -> None:
    status, answer = await event(stack, body)
    assert status >= 400
    assert answer["error"] == code
    assert isinstance(answer["details"], str)


async def test_event_api_keys_by_header_or_bearer_probes_open(stack: Stack) -> None:
    body = {"content": "keyed"}
    assert (await event(stack, body, gateway="a"))[0] == 401
    assert (await event(stack, body, gateway="a", headers={"X-API-Key": "sk-wrong"}))[0] == 401
    ok = {"completion": "echo: keyed"}
    assert await event(stack, body, gateway="a", headers={"X-API-Key": API_KEY}) == (200, ok)
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    assert await event(stack, body, gateway="a", headers=bearer) == (200, ok)
    async with aiohttp.ClientSession() as session:
        for path in ("/readyz", "/livez", "/metrics"):
            async with session.get(stack.url("a", path)) as response:
                assert response.status == 200
    assert API_KEY not in stack.logs()


async def test_a_finished_job_is_gone_after_its_time(stack: Stack, redis_url: str) -> None:
    """The record lives GATEWAY_JOB_TTL_SECONDS after the job finished (Redis's TTL, set
    by the core), then every gateway answers 404. The time passing is the TTL shortened
    in Redis (Redis's own expiry is Redis's to prove, and waiting costs the suite 30 s)."""
    async with aiohttp.ClientSession() as session:
        _, answer, _ = await submit(session, stack.url("a", "/ai_request"), job_body(0))
        job = answer["request_id"]
        url = stack.url("b", f"/get_request/{job}")
        deadline = time.monotonic() + 20
        while (body := (await get(session, url))[1])["status"] != "completed":
            assert time.monotonic() < deadline, body  # polled: the client-visible API
            await asyncio.sleep(0.05)
        client = Redis.from_url(redis_url)
        try:
            key = KeySpace(stack.redis_prefix).job(job)
            assert JOB_TTL_SECONDS * 1000 - 5000 < await client.pttl(key) <= JOB_TTL_SECONDS * 1000
            await client.pexpireat(key, 1)  # its time is up: Redis drops it at once
            assert not await client.exists(key)
        finally:
            await client.aclose()
        for name in ("a", "b"):
            status, body = await get(session, stack.url(name, f"/get_request/{job}"))
            assert (status, body["error_code"]) == (404, "REQUEST_NOT_FOUND")
