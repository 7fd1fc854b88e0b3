"""The demo's HTTP leg: the gateway (`python main.py gateway`) started next to the
service, and one OpenAI chat completion sent to it over HTTP, answered through Kafka
by the same service that answers the Kafka requests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

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


async def ask_gateway(base_url: str, model: str, timeout: float) -> tuple[int, dict[str, Any]]:
    """One `POST /v1/chat/completions`, as any OpenAI client sends it."""
    body = {"model": model, "messages": [{"role": "user", "content": QUESTION}]}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.post(f"{base_url}/v1/chat/completions", json=body) as response,
    ):
        return response.status, await response.json()


def print_gateway_answer(status: int, answer: dict[str, Any], elapsed: float) -> None:
    print(f"[HTTP POST /v1/chat/completions] asked: {QUESTION}")
    if status != 200:
        error = answer.get("error", {})
        print(f"  HTTP {status} {error.get('code')}: {error.get('message')}\n")
        return
    usage = answer["usage"]
    text = answer["choices"][0]["message"]["content"]
    print(f"  HTTP 200, {answer['model']} ({elapsed:.2f} s, through Kafka)")
    print(f"  answer: {' '.join(text.split())}")
    print(
        f"  usage:  prompt={usage['prompt_tokens']} completion={usage['completion_tokens']} "
        f"total={usage['total_tokens']}\n"
    )
