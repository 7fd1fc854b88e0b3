"""The KoboldCPP backend against a scripted server that follows KoboldCPP's API."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from pydantic import SecretStr

from chater_gpt.backends.koboldcpp import JSON_OBJECT_GRAMMAR, KoboldCppBackend
from chater_gpt.domain import ChatCall, ResponseFormat
from chater_gpt.errors import (
    BackendAuthError,
    BackendBadResponse,
    BackendConfigError,
    BackendError,
    BackendRateLimited,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
)
from chater_gpt.json_output import check_answer, json_instruction
from chater_gpt.resilience.guards import RetryingBackend
from chater_gpt.resilience.retry import RetryPolicy
from tests.support.scripted_kobold import KoboldFault, ScriptedKobold, grammar_for

pytestmark = pytest.mark.integration

KEY = "kobold-secret-FAKE-9d1e"
PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def chat_call(*, image: bool = False) -> ChatCall:
    content: object = "Tell me a story"
    if image:
        content = [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
        ]
    return ChatCall(
        model="local-model",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": content}],
        max_tokens=42,
        temperature=0.3,
        request_id="req-7",
    )


@pytest.fixture
def native_server() -> Iterator[ScriptedKobold]:
    with ScriptedKobold(chat_enabled=False, report_usage=False) as server:
        yield server


def backend_for(server: ScriptedKobold, *, timeout: float = 5.0) -> KoboldCppBackend:
    return KoboldCppBackend(base_url=server.base_url, api_key=SecretStr(KEY), timeout=timeout)


async def test_chat_endpoint_is_used_when_present() -> None:
    with ScriptedKobold(password=KEY) as server:
        backend = backend_for(server)
        try:
            result = await backend.complete(chat_call())
        finally:
            await backend.aclose()
    assert backend.api == "chat"
    assert server.paths() == ["/v1/chat/completions"]
    assert result.text == "Hello from Kobold"
    assert result.model == "koboldcpp/scripted"
    assert (result.prompt_tokens, result.completion_tokens) == (6, 3)
    request = server.requests[0]
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["X-Request-ID"] == "req-7"
    assert request.body["max_tokens"] == 42


async def test_falls_back_to_the_native_api_and_remembers_it(native_server: ScriptedKobold) -> None:
    backend = backend_for(native_server)
    try:
        first = await backend.complete(chat_call(image=True))
        second = await backend.complete(chat_call())
    finally:
        await backend.aclose()
    assert backend.api == "native"
    generate = [r for r in native_server.requests if r.path == "/api/v1/generate"]
    chat = [r for r in native_server.requests if r.path == "/v1/chat/completions"]
    assert len(chat) == 1
    assert len(generate) == 2
    body = generate[0].body
    assert body["images"] == [PNG_B64]
    assert body["max_length"] == 42
    assert body["temperature"] == 0.3
    assert body["prompt"] == "System: Be brief.\nUser: What is this?\nAssistant:"
    assert "images" not in generate[1].body
    assert first.text == second.text == "Hello from Kobold"
    assert first.model == "local-model"
    # no usage in the answer: counted by the server's tokencount endpoint
    assert (first.prompt_tokens, first.completion_tokens) == (8, 3)
    assert native_server.paths().count("/api/extra/tokencount") == 4


async def test_native_usage_reported_by_the_server_needs_no_tokencount() -> None:
    with ScriptedKobold(chat_enabled=False, report_usage=True) as server:
        backend = backend_for(server)
        try:
            result = await backend.complete(chat_call())
        finally:
            await backend.aclose()
    assert "/api/extra/tokencount" not in server.paths()
    assert result.prompt_tokens == 9  # "System: Be brief.\nUser: Tell me a story\nAssistant:"


@pytest.mark.parametrize(
    ("fault", "error", "retryable"),
    [
        (KoboldFault(401), BackendAuthError, False),
        (KoboldFault(403), BackendAuthError, False),
        (KoboldFault(400), BackendRejected, False),
        (KoboldFault(422), BackendRejected, False),
        (KoboldFault(408), BackendError, True),
        (KoboldFault(500), BackendError, True),
        (KoboldFault(503), BackendError, True),
        (KoboldFault(429, headers={"Retry-After": "7"}), BackendRateLimited, True),
        (KoboldFault(200, body=b"<html>busy</html>"), BackendBadResponse, False),
        (KoboldFault(200, body=b'{"results": []}'), BackendBadResponse, False),
        (KoboldFault(200, body=b'{"results": [{"txt": "x"}]}'), BackendBadResponse, False),
    ],
)
async def test_native_errors_map_to_our_codes(
    native_server: ScriptedKobold, fault: KoboldFault, error: type[BackendError], retryable: bool
) -> None:
    backend = backend_for(native_server)
    try:
        await backend.complete(chat_call())  # settles on the native API
        native_server.fail_next(fault)
        with pytest.raises(error) as caught:
            await backend.complete(chat_call())
    finally:
        await backend.aclose()
    exc = caught.value
    assert type(exc) is error
    assert exc.retryable is retryable
    if fault.status == 429:
        assert exc.retry_after == 7
    for secret in (KEY, native_server.base_url, "scripted failure", "busy"):
        assert secret not in exc.message


async def test_chat_endpoint_errors_map_too() -> None:
    with ScriptedKobold() as server:
        server.fail_next(KoboldFault(502))
        backend = backend_for(server)
        try:
            with pytest.raises(BackendError) as caught:
                await backend.complete(chat_call())
        finally:
            await backend.aclose()
    assert caught.value.retryable
    assert "/api/v1/generate" not in server.paths()


async def test_wrong_key_is_an_auth_error() -> None:
    with ScriptedKobold(password="other") as server:
        backend = backend_for(server)
        try:
            with pytest.raises(BackendAuthError):
                await backend.complete(chat_call())
        finally:
            await backend.aclose()


async def test_unreachable_server_is_unavailable() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = KoboldCppBackend(base_url=f"http://127.0.0.1:{port}", api_key=None, timeout=5)
    try:
        with pytest.raises(BackendUnavailable) as caught:
            await backend.complete(chat_call())
    finally:
        await backend.aclose()
    assert str(port) not in caught.value.message


async def test_a_stalled_server_times_out(native_server: ScriptedKobold) -> None:
    backend = backend_for(native_server, timeout=0.5)
    try:
        await backend.complete(chat_call())
        native_server.fail_next(KoboldFault(200, delay=3.0))
        with pytest.raises(BackendTimeout):
            await backend.complete(chat_call())
    finally:
        await backend.aclose()


async def test_a_server_with_neither_api_is_a_configuration_error() -> None:
    with ScriptedKobold(chat_enabled=False) as server:
        backend = backend_for(server)
        server.fail_next(KoboldFault(404))  # the generate call: 404 as well
        try:
            with pytest.raises(BackendConfigError):
                await backend.complete(chat_call())
        finally:
            await backend.aclose()


async def test_429_with_retry_after_is_retried_after_the_wait(
    native_server: ScriptedKobold,
) -> None:
    backend = backend_for(native_server)
    retrying = RetryingBackend(backend, RetryPolicy(max_retries=2, retry_after_cap=30))
    try:
        await backend.complete(chat_call())
        native_server.fail_next(KoboldFault(429, headers={"Retry-After": "1"}))
        started = time.monotonic()
        result = await retrying.complete(chat_call())
        elapsed = time.monotonic() - started
    finally:
        await retrying.aclose()
    assert result.text == "Hello from Kobold"
    assert elapsed >= 1.0
    assert native_server.paths().count("/api/v1/generate") == 3


# --- JSON answers: each API in its own dialect ---------------------------------------------

WEIGHT_SCHEMA = {
    "type": "object",
    "properties": {"weight": {"type": "number"}},
    "required": ["weight"],
    "additionalProperties": False,
}


def json_call(fmt: ResponseFormat) -> ChatCall:
    return replace(chat_call(), response_format=fmt)


@pytest.mark.parametrize(
    "fmt",
    [ResponseFormat(type="json_object"), ResponseFormat(type="json_schema", schema=WEIGHT_SCHEMA)],
)
async def test_the_chat_api_gets_openais_response_format(fmt: ResponseFormat) -> None:
    with ScriptedKobold(answer='{"weight": 2}') as server:
        backend = backend_for(server)
        try:
            result = await backend.complete(json_call(fmt))
        finally:
            await backend.aclose()
    assert check_answer(result.text, fmt) == '{"weight": 2}'
    [body] = server.bodies("/v1/chat/completions")
    assert body["response_format"] == fmt.to_openai()
    assert "/api/extra/json_to_grammar" not in server.paths()  # the server converts itself


async def test_the_native_api_gets_a_grammar_for_any_object() -> None:
    fmt = ResponseFormat(type="json_object")
    with ScriptedKobold(chat_enabled=False, answer='{"weight": 2}') as server:
        backend = backend_for(server)
        try:
            result = await backend.complete(json_call(fmt))
        finally:
            await backend.aclose()
    assert check_answer(result.text, fmt) == '{"weight": 2}'
    [body] = server.bodies("/api/v1/generate")
    assert body["grammar"] == JSON_OBJECT_GRAMMAR
    assert body["grammar_retain_state"] is False
    assert body["prompt"] == (
        f"System: Be brief.\nUser: Tell me a story\nSystem: {json_instruction(fmt)}\nAssistant:"
    )
    assert "/api/extra/json_to_grammar" not in server.paths()


async def test_the_native_api_gets_the_servers_grammar_for_a_schema() -> None:
    fmt = ResponseFormat(type="json_schema", schema=WEIGHT_SCHEMA)
    with ScriptedKobold(chat_enabled=False, answer='{"weight": 2}', password=KEY) as server:
        backend = backend_for(server)
        try:
            first = await backend.complete(json_call(fmt))
            await backend.complete(json_call(fmt))
        finally:
            await backend.aclose()
    assert check_answer(first.text, fmt) == '{"weight": 2}'
    assert server.bodies("/api/extra/json_to_grammar") == [{"schema": WEIGHT_SCHEMA}]  # cached
    converter = next(r for r in server.requests if r.path == "/api/extra/json_to_grammar")
    assert converter.headers["Authorization"] == f"Bearer {KEY}"
    generated = server.bodies("/api/v1/generate")
    assert [body["grammar"] for body in generated] == [grammar_for(WEIGHT_SCHEMA)] * 2
    assert json_instruction(fmt) in generated[0]["prompt"]


@pytest.mark.parametrize("grammar_api", [False, True])
async def test_an_old_or_unable_server_gets_the_object_grammar(grammar_api: bool) -> None:
    schema = {**WEIGHT_SCHEMA, "x-unconvertible": True}
    fmt = ResponseFormat(type="json_schema", schema=schema)
    with ScriptedKobold(chat_enabled=False, grammar_api=grammar_api) as server:
        backend = backend_for(server)
        try:
            await backend.complete(json_call(fmt))
            await backend.complete(json_call(fmt))
        finally:
            await backend.aclose()
    conversions = server.paths().count("/api/extra/json_to_grammar")
    assert conversions == (2 if grammar_api else 1)  # a missing endpoint is remembered
    grammars = [body["grammar"] for body in server.bodies("/api/v1/generate")]
    assert grammars == [JSON_OBJECT_GRAMMAR] * 2
