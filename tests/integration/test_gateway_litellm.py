"""LiteLLM's OpenAI-compatible client against the real gateway (issue 14's proof names it):
`litellm.completion` and `litellm.acompletion` with `model="openai/<model>"` and the
gateway as `api_base`, and LiteLLM's own exception types for the gateway's errors.
One stack (broker, `python main.py run`, `python main.py gateway`) serves the module."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest

from tests.integration.conftest import Broker, Topics, service_config
from tests.support.gateway_stack import GatewayProc, served_gateway, write_keys_file
from tests.support.scripted_openai import ScriptedOpenAI

API_KEY = "sk-litellm-test-" + uuid.uuid4().hex
MODEL = "openai/gpt-4o-mini"  # LiteLLM's prefix for "any OpenAI-compatible server"


@pytest.fixture(scope="module")
def litellm() -> Iterator[ModuleType]:
    """LiteLLM, imported offline: its model cost map from the copy it ships (it would
    fetch it from the internet at import), and no telemetry. The environment is put
    back afterwards, so no other test (or child process) sees these variables."""
    saved = dict(os.environ)
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    os.environ["LITELLM_TELEMETRY"] = "False"
    try:
        import litellm as module

        module.telemetry = False
        module.suppress_debug_info = True
        yield module
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass
class Stack:
    scripted: ScriptedOpenAI
    gateway: GatewayProc

    def kwargs(self, **overrides: Any) -> dict[str, Any]:
        # num_retries=0: a failure must show, not be retried away by LiteLLM.
        return {
            "model": MODEL,
            "api_base": self.gateway.base_url,
            "api_key": API_KEY,
            "num_retries": 0,
            "timeout": 30,
            **overrides,
        }


@pytest.fixture(scope="module")
def stack(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    run = uuid.uuid4().hex[:10]
    topics = Topics(f"gwl-send-{run}", f"gwl-resp-{run}", f"gwl-group-{run}", "", "unused")
    broker.create_topics([topics.request, topics.response])
    logs = tmp_path_factory.mktemp("gateway-litellm")
    keys = write_keys_file(logs / "keys.json", {API_KEY: "shop"})
    with ScriptedOpenAI() as scripted:
        common = service_config(
            broker, topics, scripted, gateway_reply_topic_prefix=f"gwl-reply-{run}-"
        )
        common.pop("metrics_port")
        with served_gateway(
            common, logs, name="l", instance_id=f"l-{run}", gateway_api_keys_file=keys
        ) as gateway:
            yield Stack(scripted, gateway)


def test_litellm_completion_through_the_gateway(litellm: ModuleType, stack: Stack) -> None:
    answer = litellm.completion(
        **stack.kwargs(
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hello from litellm"},
            ],
            max_tokens=40,
            temperature=0,
        )
    )
    assert answer.choices[0].message.content == "echo: hello from litellm"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    call = next(r for r in stack.scripted.requests if r.last_user_text == "hello from litellm")
    assert [m["role"] for m in call.messages] == ["system", "user"]
    assert call.body["max_tokens"] == 40


async def test_litellm_acompletion_concurrent_callers_each_get_their_answer(
    litellm: ModuleType, stack: Stack
) -> None:
    async def ask(i: int) -> str:
        answer = await litellm.acompletion(
            **stack.kwargs(messages=[{"role": "user", "content": f"litellm async {i}"}])
        )
        text: str = answer.choices[0].message.content
        return text

    try:
        answers = await asyncio.gather(*(ask(i) for i in range(12)))
    finally:
        # LiteLLM keeps its async HTTP clients per event loop; this test's loop ends here.
        await litellm.close_litellm_async_clients()
    assert answers == [f"echo: litellm async {i}" for i in range(12)]


def test_litellm_raises_its_own_errors_for_the_gateway_statuses(
    litellm: ModuleType, stack: Stack
) -> None:
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(litellm.AuthenticationError) as denied:
        litellm.completion(**stack.kwargs(messages=messages, api_key="sk-wrong"))
    assert denied.value.status_code == 401
    with pytest.raises(litellm.NotFoundError) as unknown:
        litellm.completion(**stack.kwargs(messages=messages, model="openai/gpt-9-ultra"))
    assert unknown.value.status_code == 404
    assert "is not allowed" in str(unknown.value)  # the gateway's message, relayed
