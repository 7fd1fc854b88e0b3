"""The HTTP gateway end to end: real broker, the real service (`python main.py run`) on
a scripted OpenAI-compatible server, and two real gateway processes (`python main.py
gateway`), called with the official `openai` SDK. One stack serves the whole module."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import openai
import pytest

from chater_gpt.dev.ports import free_port
from tests.integration.conftest import Broker, Topics, service_config
from tests.support.gateway_stack import (
    GatewayProc,
    eventually,
    gateway_settings,
    metric,
    wait_ready,
    write_keys_file,
)
from tests.support.scripted_openai import ScriptedOpenAI
from tests.support.service_runner import ServiceProcess

API_KEY = "sk-gateway-test-" + uuid.uuid4().hex


@dataclass
class Stack:
    scripted: ScriptedOpenAI
    service_port: int
    gateways: dict[str, GatewayProc] = field(default_factory=dict)

    def client(self, name: str, **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.gateways[name].base_url, api_key=API_KEY, **kwargs)

    def async_client(self, name: str, **kwargs: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.gateways[name].base_url, api_key=API_KEY, **kwargs)


@pytest.fixture(scope="module")
def stack(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    run = uuid.uuid4().hex[:10]
    topics = Topics(f"gw-send-{run}", f"gw-resp-{run}", f"gw-group-{run}", "", "unused")
    broker.create_topics([topics.request, topics.response])
    prefix = f"gw-reply-{run}-"
    logs = tmp_path_factory.mktemp("gateway")
    keys_file = write_keys_file(logs / "keys.json", {API_KEY: "shop"})
    processes: list[ServiceProcess] = []
    with ScriptedOpenAI() as scripted:
        common = service_config(broker, topics, scripted, gateway_reply_topic_prefix=prefix)
        common.pop("metrics_port")
        service = Stack(scripted, free_port())
        core = ServiceProcess(
            {**common, "metrics_port": service.service_port}, logs / "service.log"
        ).start()
        processes.append(core)
        try:
            wait_ready(service.service_port, core)
            for name, keys in (("a", keys_file), ("b", None)):
                port = free_port()
                settings = gateway_settings(
                    common, port=port, instance_id=f"{name}-{run}", gateway_api_keys_file=keys
                )
                gateway = GatewayProc(name, port, settings, logs / f"gateway-{name}.log").start()
                service.gateways[name] = gateway
            yield service
        finally:
            for gateway in service.gateways.values():
                gateway.stop()
            core.stop()


def test_the_sync_sdk_gets_a_chat_completion_with_usage(stack: Stack) -> None:
    client = stack.client("a")
    answer = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": [{"type": "text", "text": "sync hello"}]},
        ],
        max_completion_tokens=50,
        temperature=0,
    )
    assert answer.object == "chat.completion"
    assert answer.choices[0].message.content == "echo: sync hello"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.model == "gpt-4o-mini"
    assert answer.usage is not None
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    call = next(r for r in stack.scripted.requests if r.last_user_text == "sync hello")
    assert [(m["role"], m["content"]) for m in call.messages] == [
        ("system", "Be brief."),
        ("user", "first question"),
        ("assistant", "first answer"),
        ("user", "sync hello"),
    ]
    assert call.body["max_tokens"] == 50


async def test_the_async_sdk_and_the_models_list(stack: Stack) -> None:
    client = stack.async_client("b")
    answer = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "async hello"}]
    )
    assert answer.choices[0].message.content == "echo: async hello"
    models = await client.models.list()
    assert {"gpt-4o-mini", "gpt-4o"} <= {model.id for model in models.data}


def test_errors_are_openai_errors_with_the_core_codes(stack: Stack) -> None:
    client = stack.client("a", max_retries=0)
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(
            model="gpt-9-ultra", messages=[{"role": "user", "content": "hi"}]
        )
    assert unknown.value.code == "model_not_allowed"
    stranger = openai.OpenAI(base_url=stack.gateways["a"].base_url, api_key="sk-wrong")
    with pytest.raises(openai.AuthenticationError) as denied:
        stranger.models.list()
    assert denied.value.code == "unauthorized"
    assert "sk-wrong" not in stack.gateways["a"].log_path.read_text()


async def test_two_gateways_with_interleaved_requests_each_caller_gets_its_own_answer(
    stack: Stack,
) -> None:
    clients = [stack.async_client("a"), stack.async_client("b")]

    async def ask(i: int) -> tuple[int, str | None]:
        answer = await clients[i % 2].chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"interleaved {i}"}]
        )
        return i, answer.choices[0].message.content

    answers = await asyncio.gather(*(ask(i) for i in range(24)))
    assert all(text == f"echo: interleaved {i}" for i, text in answers)


def test_many_sequential_single_requests_never_miss_a_reply(stack: Stack) -> None:
    # The embedded broker's live reader can miss a message (FIELD-NOTES): every one of
    # these single requests must still be answered well within the timeout.
    client = stack.client("b", max_retries=0, timeout=15)
    for i in range(60):
        answer = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"one by one {i}"}]
        )
        assert answer.choices[0].message.content == f"echo: one by one {i}"


def test_a_user_names_the_owner_of_a_stored_conversation(stack: Stack) -> None:
    client = stack.client("b")
    owner = f"ada-{uuid.uuid4().hex[:6]}@example.com"
    for text in ("remember the colour blue", "which colour?"):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": text}], user=owner
        )
    call = next(r for r in stack.scripted.requests if r.last_user_text == "which colour?")
    assert ("user", "remember the colour blue") in [
        (m["role"], m["content"]) for m in call.messages
    ]


async def test_a_restarted_gateway_fails_only_its_own_open_request_with_a_503(
    stack: Stack,
) -> None:
    scripted, restarted = stack.scripted, stack.gateways["a"]
    calls_before = scripted.calls
    scripted.latency = 2.0
    try:
        mine = asyncio.create_task(
            stack.async_client("a", max_retries=0).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "open on a"}]
            )
        )
        other = asyncio.create_task(
            stack.async_client("b", max_retries=0).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "open on b"}]
            )
        )
        # Both requests reached the LLM: both are open on their gateways.
        await asyncio.to_thread(scripted.wait_until, lambda s: s.calls >= calls_before + 2, 20)
        assert restarted.process is not None
        code, _ = await asyncio.to_thread(restarted.process.terminate, 15)
        assert code == 0
        with pytest.raises(openai.InternalServerError) as failed:
            await mine
        assert failed.value.status_code == 503
        assert failed.value.code == "gateway_unavailable"
        answer = await other
        assert answer.choices[0].message.content == "echo: open on b"
    finally:
        scripted.latency = 0.0
    # The same instance comes back on the same reply topic and answers again.
    await asyncio.to_thread(restarted.start)
    again = await stack.async_client("a").chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "after the restart"}]
    )
    assert again.choices[0].message.content == "echo: after the restart"


async def test_a_caller_that_leaves_stops_waiting_while_the_core_still_answers(
    stack: Stack,
) -> None:
    scripted, gateway = stack.scripted, stack.gateways["b"]
    before = metric(stack.service_port, "chater_gpt_replies_total")
    scripted.latency = 1.5
    try:
        impatient = stack.async_client("b", max_retries=0, timeout=0.5)
        with pytest.raises(openai.APITimeoutError):
            await impatient.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "left early"}]
            )
    finally:
        scripted.latency = 0.0
    # The gateway stopped waiting; the core still answered (and recorded) it. Both are
    # other processes' counters: there is no event to await, so they are polled.
    await eventually(lambda: metric(gateway.port, "chater_gpt_gateway_open_requests") == 0)
    await eventually(lambda: metric(stack.service_port, "chater_gpt_replies_total") > before)
