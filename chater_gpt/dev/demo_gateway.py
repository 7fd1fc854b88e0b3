"""The demo's HTTP leg: the gateway (`python main.py gateway`) started next to the
service, and one streamed OpenAI chat completion sent to it over HTTP, answered through
Kafka by the same service that answers the Kafka requests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from chater_gpt.config import Settings
from chater_gpt.wiring.gateway import build_gateway

QUESTION = "Name a fruit that is yellow, in one short sentence."


@contextlib.asynccontextmanager
async def running_gateway(settings: Settings) -> AsyncIterator[str]:
    """The gateway on a free port of 127.0.0.1; yields its base URL."""
    gateway = build_gateway(
        settings.model_copy(update={"gateway_host": "127.0.0.1", "gateway_port": 0})
    )
    running = asyncio.create_task(gateway.run(install_signal_handlers=False))
    try:
        await gateway.wait_started(60)
        yield f"http://127.0.0.1:{gateway.port}"
    finally:
        gateway.request_stop()
        await running


@dataclass
class GatewayAnswer:
    status: int
    text: str = ""
    chunks: int = 0  # server-sent events that carried text
    model: str = ""
    usage: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] = field(default_factory=dict)


async def ask_gateway(base_url: str, model: str, timeout: float) -> GatewayAnswer:
    """One streamed `POST /v1/chat/completions`, as any OpenAI client sends it: the
    answer arrives as server-sent events while the model writes it."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": QUESTION}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.post(f"{base_url}/v1/chat/completions", json=body) as response,
    ):
        if response.status != 200:
            return GatewayAnswer(response.status, error=(await response.json()).get("error", {}))
        answer = GatewayAnswer(response.status)
        async for line in response.content:
            data = line.decode().strip().removeprefix("data: ")
            if not data or data == "[DONE]" or not line.startswith(b"data: "):
                continue
            _read_chunk(answer, orjson.loads(data))
        return answer


def _read_chunk(answer: GatewayAnswer, chunk: dict[str, Any]) -> None:
    if "error" in chunk:
        answer.error = chunk["error"]
        return
    answer.model = chunk.get("model") or answer.model
    answer.usage = chunk.get("usage") or answer.usage
    for choice in chunk.get("choices", []):
        content = choice.get("delta", {}).get("content")
        if content:
            answer.text += content
            answer.chunks += 1


def print_gateway_answer(answer: GatewayAnswer, elapsed: float) -> None:
    print(f"[HTTP POST /v1/chat/completions, stream] asked: {QUESTION}")
    if answer.status != 200 or answer.error:
        error = answer.error
        print(f"  HTTP {answer.status} {error.get('code')}: {error.get('message')}\n")
        return
    usage = answer.usage
    streamed = f"{answer.chunks} chunks streamed through Kafka"
    print(f"  HTTP 200, {answer.model}: {streamed}, {elapsed:.2f} s")
    print(f"  answer: {' '.join(answer.text.split())}")
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    print(f"  usage:  prompt={prompt} completion={completion} total={usage.get('total_tokens')}\n")
