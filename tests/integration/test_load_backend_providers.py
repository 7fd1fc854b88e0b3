"""The load backend (tests/load/load_backend.py) speaking each provider's API, answered
through the service's own backends (the providers' SDKs) as benchmark B calls them."""

from __future__ import annotations

import itertools
import time

import aiohttp
import orjson
import pytest
from pydantic import SecretStr

from chater_gpt.backends.anthropic import AnthropicBackend
from chater_gpt.backends.base import LLMBackend
from chater_gpt.backends.gemini import GeminiBackend
from chater_gpt.backends.openai import OpenAIBackend
from chater_gpt.domain import ChatCall, ResponseFormat
from tests.load._stack import PROVIDER_MODELS
from tests.load.load_backend import Provider, build_server, parse_args
from tests.load.sdk_overhead import check_equivalence
from tests.support.scripted_openai import ScriptedOpenAI


def backend_for(provider: str, root: str) -> LLMBackend:
    key = SecretStr("load-test-key")
    if provider == "anthropic":
        return AnthropicBackend(api_key=key, base_url=root, timeout=10)
    if provider == "gemini":
        return GeminiBackend(api_key=key, base_url=root, timeout=10)
    return OpenAIBackend(api_key=key, base_url=f"{root}/v1", timeout=10)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
async def test_each_providers_sdk_gets_padded_answers_and_json(provider: str) -> None:
    args = parse_args([f"--provider={provider}", "--latency=fixed:0", "--answer-tokens=32"])
    with build_server(args) as server:
        backend = backend_for(provider, f"http://127.0.0.1:{server.port}")
        try:
            results = [
                await backend.complete(
                    ChatCall(
                        model=PROVIDER_MODELS[provider],
                        messages=[
                            {"role": "system", "content": "Be brief."},
                            {"role": "user", "content": "hello"},
                        ],
                        max_tokens=100,
                        temperature=0.7,
                        response_format=fmt,
                    )
                )
                for fmt in (None, ResponseFormat("json_object"))
            ]
        finally:
            await backend.aclose()
    text, json_answer = results
    assert text.text.startswith("echo: hello tok")
    assert 30 <= text.completion_tokens <= 34
    assert json_answer.text.startswith('{"type":"food_processing"')
    assert server.calls == 2
    assert server.requests == []  # nothing recorded in long runs


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
async def test_sdk_overhead_compares_clients_that_send_and_fail_alike(provider: Provider) -> None:
    """tests/load/sdk_overhead.py's plain clients send the body their SDK sends (a photo
    included), read the same result and map every scripted error alike."""
    assert await check_equivalence(provider, history=4) == []


async def test_openai_streams_its_first_word_after_the_latency_then_one_per_interval() -> None:
    args = parse_args(["--latency=fixed:0.2", "--stream-interval=0.05", "--answer-tokens=8"])
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hello"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    words: list[float] = []
    frames: list[bytes] = []
    with build_server(args) as server:
        url = f"http://127.0.0.1:{server.port}/v1/chat/completions"
        async with aiohttp.ClientSession() as session:
            started = time.monotonic()
            r = await session.post(url, json=body)
            assert r.headers["Content-Type"].startswith("text/event-stream")
            async for line in r.content:
                if line.startswith(b"data: "):
                    frames.append(line[6:].strip())
                    if frames[-1] != b"[DONE]":
                        choices = orjson.loads(frames[-1])["choices"]
                        if choices and choices[0]["delta"].get("content"):
                            words.append(time.monotonic() - started)
            r.release()
        assert isinstance(server, ScriptedOpenAI)
        non_streamed = server._completion({"messages": body["messages"]})
    assert frames[-1] == b"[DONE]"
    usage = orjson.loads(frames[-2])
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] == non_streamed["usage"]["completion_tokens"]
    assert 0.19 <= words[0] < 0.3  # the first word after the latency
    gaps = [b - a for a, b in itertools.pairwise(words)]
    assert len(gaps) >= 5
    assert all(gap >= 0.045 for gap in gaps)  # then one word every 0.05 s
