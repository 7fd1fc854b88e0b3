"""The demo's HTTP leg: the gateway (`python main.py gateway`) started next to the
service, and its three doors used over HTTP, each answered through Kafka by the same
service that answers the Kafka requests: one streamed OpenAI chat completion, one job
(submitted, then polled until it is done) and one event.

The job API needs a registered app: the demo registers one (a tenant policy file with
the SHA-256 of a fresh app code) and shares one in-memory job store between the gateway
and the core (they run in one process here; deployments share Redis)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from chater_gpt.config import Settings
from chater_gpt.storage.jobs import FINAL, JobStore
from chater_gpt.wiring.gateway import build_gateway

QUESTION = "Name a fruit that is yellow, in one short sentence."
JOB_TYPE = "short_answer"
JOB_QUESTION = "What colour is the sky on a clear day?"
EVENT_CONTENT = "Name a planet of the solar system, in one short sentence."
JOB_POLL_SECONDS = 0.1  # the job API is polled: there is nothing to wait on


def demo_tenant_policy(app_code: str) -> dict[str, Any]:
    """One registered app with one request type; other requests pass as before."""
    return {
        "unknown_app_code": "allow",
        "tenants": {
            "demo-app": {
                "name": "Demo app",
                "app_code_sha256": hashlib.sha256(app_code.encode()).hexdigest(),
                "rate_limit": "100/hour",
                "request_types": {
                    JOB_TYPE: {
                        "prompt_template": "Answer in one short sentence: {question}",
                        "max_tokens": 32,
                    }
                },
            }
        },
    }


@contextlib.asynccontextmanager
async def running_gateway(settings: Settings, jobs: JobStore | None = None) -> AsyncIterator[str]:
    """The gateway on a free port of 127.0.0.1, keeping job state in `jobs` when given
    (the store of a core in this process); yields its base URL."""
    gateway = build_gateway(
        settings.model_copy(update={"gateway_host": "127.0.0.1", "gateway_port": 0}), jobs=jobs
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


async def run_job(base_url: str, app_code: str, timeout: float) -> tuple[dict[str, Any], float]:
    """`POST /ai_request`, then `GET /get_request/<id>` until the job is done: its last
    status (or the rejection) and the seconds it took."""
    body = {"app_code": app_code, "request_type": JOB_TYPE, "request": {"question": JOB_QUESTION}}
    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async with session.post(f"{base_url}/ai_request", json=body) as response:
            answer: dict[str, Any] = await response.json()
        if answer.get("status") != "success":
            return answer, time.monotonic() - started
        url = f"{base_url}/get_request/{answer['request_id']}"
        while time.monotonic() - started < timeout:
            async with session.get(url) as response:
                answer = await response.json()
            if answer.get("status") in FINAL or "error_code" in answer:
                break
            await asyncio.sleep(JOB_POLL_SECONDS)
    return answer, time.monotonic() - started


async def send_event(base_url: str, timeout: float) -> dict[str, Any]:
    """`POST /event` with a prompt: `{"completion"}` or `{"error", "details"}`."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.post(f"{base_url}/event", json={"content": EVENT_CONTENT}) as response,
    ):
        answer: dict[str, Any] = await response.json()
        return answer


def print_job(job: dict[str, Any], elapsed: float) -> None:
    print(f"[HTTP POST /ai_request, then GET /get_request/<id>] asked: {JOB_QUESTION}")
    history = " -> ".join(entry["status"] for entry in job.get("status_history", []))
    if job.get("status") != "completed":
        code, message = job.get("error_code", job.get("status")), job.get("message")
        print(f"  job {code}: {message} ({history})\n")
        return
    print(f"  job completed, {job.get('model_used')}: {history}, {elapsed:.2f} s")
    print(f"  answer: {' '.join(str(job.get('ai_response', '')).split())}")
    usage = job.get("token_usage") or {}
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    print(f"  usage:  prompt={prompt} completion={completion} total={usage.get('total_tokens')}\n")


def print_event(answer: dict[str, Any]) -> None:
    print(f"[HTTP POST /event] content: {EVENT_CONTENT}")
    if "completion" in answer:
        print(f"  completion: {' '.join(str(answer['completion']).split())}\n")
    else:
        print(f"  error {answer.get('error')}: {answer.get('details')}\n")
