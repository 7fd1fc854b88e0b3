"""The gateway's HTTP edges through the real process (issue 14): body limit (413), the
reply timeout (504 `gateway_timeout`), API keys stored as SHA-256 hashes (200, 401,
403), CORS for browser clients, and a plain `curl -N` call. Raw HTTP (aiohttp, curl),
so the status codes and OpenAI's error objects are read as sent. One stack (broker,
`python main.py run`, `python main.py gateway`) serves the whole module."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import Broker, Topics, service_config
from tests.support.gateway_stack import GatewayProc, served_gateway, write_keys_file
from tests.support.scripted_openai import ScriptedOpenAI

API_KEY = "sk-http-test-" + uuid.uuid4().hex
REVOKED_KEY = "sk-http-revoked-" + uuid.uuid4().hex
MAX_BODY = 64 * 1024
TIMEOUT = 2.0  # GATEWAY_TIMEOUT_SECONDS: short, so the 504 test is quick
ORIGIN = "https://chat.example.com"


@dataclass
class Stack:
    scripted: ScriptedOpenAI
    gateway: GatewayProc

    @property
    def chat_url(self) -> str:
        return f"{self.gateway.base_url}/chat/completions"


@pytest.fixture(scope="module")
def stack(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    run = uuid.uuid4().hex[:10]
    topics = Topics(f"gwh-send-{run}", f"gwh-resp-{run}", f"gwh-group-{run}", "", "unused")
    broker.create_topics([topics.request, topics.response])
    logs = tmp_path_factory.mktemp("gateway-http")
    keys = write_keys_file(logs / "keys.json", {API_KEY: "shop", REVOKED_KEY: None})
    with ScriptedOpenAI() as scripted:
        common = service_config(
            broker, topics, scripted, gateway_reply_topic_prefix=f"gwh-reply-{run}-"
        )
        common.pop("metrics_port")
        with served_gateway(
            common,
            logs,
            name="h",
            instance_id=f"h-{run}",
            gateway_api_keys_file=keys,
            gateway_max_body_bytes=MAX_BODY,
            gateway_timeout_seconds=TIMEOUT,
            gateway_cors_origins=ORIGIN,
        ) as gateway:
            warm_up(gateway)
            yield Stack(scripted, gateway)


def warm_up(gateway: GatewayProc, timeout: float = 60.0) -> None:
    """Until one request is answered: the core's first request loads its tokenizer,
    which can take longer than this module's short gateway timeout (a 504)."""
    request = urllib.request.Request(
        f"{gateway.base_url}/chat/completions",
        data=json.dumps(chat_body("warm up")).encode(),
        headers={**bearer(API_KEY), "Content-Type": "application/json"},
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code != 504:
                raise
        assert time.monotonic() < deadline, "the stack never answered"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


def chat_body(text: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_openai_error(body: dict[str, Any], code: str, kind: str) -> None:
    """OpenAI's error object, exactly: {error: {message, type, param, code}}."""
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert (error["code"], error["type"]) == (code, kind)
    assert isinstance(error["message"], str)
    assert error["message"]


async def test_a_body_over_the_limit_is_413_payload_too_large(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    body = chat_body("x" * (MAX_BODY + 1024))
    async with http.post(stack.chat_url, json=body, headers=bearer(API_KEY)) as response:
        assert response.status == 413
        assert_openai_error(await response.json(), "payload_too_large", "invalid_request_error")
    # Just under the limit goes through. Words, not one repeated character: BPE over a
    # single 60 KB pre-token is quadratic (seconds of the core's CPU), not what is tested.
    text = " ".join(f"w{i % 1000}" for i in range((MAX_BODY - 1024) // 5))
    under = chat_body(text)
    async with http.post(stack.chat_url, json=under, headers=bearer(API_KEY)) as response:
        assert response.status == 200, await response.text()
        answer = await response.json()
    # (The core may cut a long message to its token limit: only the start is compared.)
    assert answer["choices"][0]["message"]["content"].startswith("echo: w0 w1 w2")


async def test_no_answer_within_the_timeout_is_504_gateway_timeout(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    scripted = stack.scripted
    calls_before = scripted.calls
    scripted.latency = TIMEOUT + 2  # the core answers, but after the gateway gave up
    try:
        started = time.monotonic()
        async with http.post(
            stack.chat_url, json=chat_body("too slow"), headers=bearer(API_KEY)
        ) as response:
            elapsed = time.monotonic() - started
            assert response.status == 504
            assert_openai_error(await response.json(), "gateway_timeout", "api_error")
        # The wait, not the backend, ended it: it got there and is still answering.
        assert scripted.calls > calls_before
        assert TIMEOUT <= elapsed < TIMEOUT + 2
        await asyncio.to_thread(scripted.wait_until, lambda s: s.concurrent == 0, 10)
    finally:
        scripted.latency = 0.0


async def test_api_keys_right_200_wrong_401_none_401_revoked_403(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    body = chat_body("who am I")
    async with http.post(stack.chat_url, json=body, headers=bearer(API_KEY)) as response:
        assert response.status == 200
        assert (await response.json())["choices"][0]["message"]["content"] == "echo: who am I"
    for headers, status, code, kind in (
        (bearer("sk-not-a-key"), 401, "unauthorized", "authentication_error"),
        ({}, 401, "unauthorized", "authentication_error"),
        ({"Authorization": API_KEY}, 401, "unauthorized", "authentication_error"),  # no scheme
        (bearer(REVOKED_KEY), 403, "forbidden", "permission_error"),
    ):
        async with http.post(stack.chat_url, json=body, headers=headers) as response:
            assert response.status == status, headers
            assert_openai_error(await response.json(), code, kind)
    async with http.get(f"{stack.gateway.base_url}/models") as response:
        assert response.status == 401
    # Keys are never logged, not even a refused one.
    log = stack.gateway.log_path.read_text()
    assert API_KEY not in log
    assert "sk-not-a-key" not in log


async def test_cors_preflight_and_response_headers_for_an_allowed_origin_only(
    stack: Stack, http: aiohttp.ClientSession
) -> None:
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    # A browser's preflight carries no credentials: it is answered before auth.
    async with http.options(stack.chat_url, headers=preflight) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
        assert response.headers["Access-Control-Allow-Headers"] == "authorization, content-type"
        assert response.headers["Vary"] == "Origin"
    async with http.post(
        stack.chat_url,
        json=chat_body("from a browser"),
        headers={**bearer(API_KEY), "Origin": ORIGIN},
    ) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    stranger = {**preflight, "Origin": "https://evil.example.net"}
    async with http.options(stack.chat_url, headers=stranger) as response:
        assert "Access-Control-Allow-Origin" not in response.headers
        assert response.status != 204


def curl(*args: str) -> tuple[int, dict[str, Any]]:
    """`curl -N` (no buffering, as for SSE); returns the status and the JSON body."""
    done = subprocess.run(
        ["curl", "-sS", "-N", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    body, _, status = done.stdout.rpartition("\n")
    return int(status), json.loads(body)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_gets_a_completion_and_an_openai_error(stack: Stack) -> None:
    data = json.dumps(chat_body("hello from curl"))
    status, body = curl(
        "-H",
        f"Authorization: Bearer {API_KEY}",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        data,
        stack.chat_url,
    )
    assert status == 200
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "echo: hello from curl",
    }
    assert body["usage"]["total_tokens"] > 0
    status, body = curl("--data-binary", data, stack.chat_url)
    assert status == 401
    assert_openai_error(body, "unauthorized", "authentication_error")
