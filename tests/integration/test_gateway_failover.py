"""A service replica killed with SIGKILL mid-request does not fail the HTTP call (issue 14):
two real service processes (`python main.py run`) share one consumer group behind one
real gateway; one replica is killed while every request is in flight at the backend,
and the other replays its uncommitted requests after the rebalance, within the
gateway's timeout."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import openai
import pytest

from chater_gpt.dev.ports import free_port
from tests.integration.conftest import Broker, Topics, service_config
from tests.support.gateway_stack import GatewayProc, gateway_settings, get_json, wait_ready
from tests.support.scripted_openai import ScriptedOpenAI
from tests.support.service_runner import ServiceProcess

IN_FLIGHT = 24  # random keys over 3 partitions: every replica surely holds some
BACKEND_LATENCY = 1.5  # long enough that all of them are at the backend at once
GATEWAY_TIMEOUT = 30.0  # session timeout (3 s) + Tansu's join + the replayed calls, with room


@dataclass
class Replica:
    process: ServiceProcess
    port: int

    def partitions(self) -> int:
        """How many request partitions this member owns (its Kafka readiness check)."""
        detail = get_json(self.port, "/healthz")["checks"]["kafka"]["detail"]
        found = re.match(r"(\d+) partition", detail)
        return int(found.group(1)) if found else 0


@dataclass
class Stack:
    scripted: ScriptedOpenAI
    replicas: list[Replica]
    gateway: GatewayProc


@pytest.fixture(scope="module")
def stack(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    run = uuid.uuid4().hex[:10]
    topics = Topics(f"gwf-send-{run}", f"gwf-resp-{run}", f"gwf-group-{run}", "", "unused")
    broker.create_topics([topics.request, topics.response])
    logs = tmp_path_factory.mktemp("gateway-failover")
    with ScriptedOpenAI() as scripted:
        common = service_config(
            broker, topics, scripted, gateway_reply_topic_prefix=f"gwf-reply-{run}-"
        )
        common.pop("metrics_port")
        replicas: list[Replica] = []
        gateway: GatewayProc | None = None
        try:
            # Everything starts at once: the two members' joins overlap the gateway's start.
            for name in ("one", "two"):
                port = free_port()
                process = ServiceProcess(
                    {**common, "metrics_port": port}, logs / f"service-{name}.log"
                ).start()
                replicas.append(Replica(process, port))
            gateway_port = free_port()
            settings = gateway_settings(
                common,
                port=gateway_port,
                instance_id=f"f-{run}",
                gateway_timeout_seconds=GATEWAY_TIMEOUT,
            )
            gateway = GatewayProc("f", gateway_port, settings, logs / "gateway.log").launch()
            for replica in replicas:
                wait_ready(replica.port, replica.process)
            gateway.wait_ready()
            yield Stack(scripted, replicas, gateway)
        finally:
            if gateway is not None:
                gateway.stop()
            for replica in replicas:
                replica.process.stop()


def wait_for_split(replicas: list[Replica], timeout: float = 30.0) -> None:
    """Until the group has settled with both members owning partitions: the second
    member's join is a rebalance in another process, read from its probes."""
    deadline = time.monotonic() + timeout
    while True:
        owned = [replica.partitions() for replica in replicas]
        if all(owned) and sum(owned) == 3:
            return
        assert time.monotonic() < deadline, f"partitions never split: {owned}"
        time.sleep(0.1)


async def test_sigkill_of_the_replica_holding_requests_does_not_fail_the_http_calls(
    stack: Stack,
) -> None:
    await asyncio.to_thread(wait_for_split, stack.replicas)
    scripted = stack.scripted
    client = openai.AsyncOpenAI(
        base_url=stack.gateway.base_url,
        api_key="unused",
        max_retries=0,  # a failed call must fail the test, not be retried by the SDK
        timeout=GATEWAY_TIMEOUT + 10,
    )
    calls_before = scripted.calls
    scripted.latency = BACKEND_LATENCY
    try:

        async def ask(i: int) -> str | None:
            answer = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"failover {i}"}]
            )
            return answer.choices[0].message.content

        started = time.monotonic()
        calls = [asyncio.create_task(ask(i)) for i in range(IN_FLIGHT)]
        # Every request is at the backend, so each replica is holding its share.
        await asyncio.to_thread(
            scripted.wait_until, lambda s: s.concurrent >= IN_FLIGHT, GATEWAY_TIMEOUT
        )
        # The member with two partitions surely holds requests (the other one too).
        victim = max(stack.replicas, key=Replica.partitions)
        await asyncio.to_thread(victim.process.kill)
        answers = await asyncio.gather(*calls)
        elapsed = time.monotonic() - started
    finally:
        scripted.latency = 0.0
    assert answers == [f"echo: failover {i}" for i in range(IN_FLIGHT)]
    assert elapsed < GATEWAY_TIMEOUT
    # The killed member's requests were asked again by the survivor: a replay happened.
    assert scripted.calls - calls_before > IN_FLIGHT
