"""The Anthropic backends (chater_gpt/backends/anthropic.py, the SDK's, and
anthropic_direct.py, plain aiohttp) against the scripted Anthropic
server, which validates requests as the Messages API does: what goes over the wire,
the result read from the answer, and every failure mapped to its documented error."""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from chater_gpt.backends.anthropic import AnthropicBackend
from chater_gpt.backends.anthropic_direct import AnthropicDirectBackend
from chater_gpt.backends.base import LLMBackend
from chater_gpt.dev.ports import free_port
from chater_gpt.domain import ChatCall, ChatMessage, ResponseFormat
from chater_gpt.errors import BackendError, ErrorCode
from chater_gpt.json_output import json_instruction
from tests.support import scripted_anthropic
from tests.support.images import b64, image_bytes
from tests.support.scripted_anthropic import ScriptedAnthropic
from tests.support.scripted_common import Fault

KEY = "sk-ant-test-BACKEND-0123456789"
CLAUDE = "claude-haiku-5-5"
PNG = b64(image_bytes("PNG", (32, 16)))


@pytest.fixture
def server() -> Iterator[ScriptedAnthropic]:
    with ScriptedAnthropic(api_key=KEY, models={CLAUDE}) as scripted:
        yield scripted


# The SDK client (ANTHROPIC_CLIENT=sdk) and the plain one (aiohttp): every test runs
# against both, so their requests and their error semantics stay the same.
CLIENTS: dict[str, type[AnthropicBackend | AnthropicDirectBackend]] = {
    "sdk": AnthropicBackend,
    "aiohttp": AnthropicDirectBackend,
}


@pytest.fixture(params=sorted(CLIENTS))
def client(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make(client: str, **options: Any) -> AnthropicBackend | AnthropicDirectBackend:
    return CLIENTS[client](**options)


@pytest.fixture
async def backend(
    server: ScriptedAnthropic, client: str
) -> AsyncIterator[AnthropicBackend | AnthropicDirectBackend]:
    made = make(client, api_key=SecretStr(KEY), base_url=server.base_url, timeout=1.0)
    yield made
    await made.aclose()


def chat(
    messages: list[ChatMessage] | None = None,
    *,
    max_tokens: int = 50,
    fmt: ResponseFormat | None = None,
    model: str = CLAUDE,
) -> ChatCall:
    return ChatCall(
        model=model,
        messages=messages
        or [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        max_tokens=max_tokens,
        temperature=0.4,
        request_id="corr-1",
        seed=7,
        extra_headers={"X-Team": "chater"},
        response_format=fmt,
    )


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def test_the_backend_fits_the_protocol(backend: AnthropicBackend | AnthropicDirectBackend) -> None:
    assert isinstance(backend, LLMBackend)
    assert backend.name == "anthropic"


async def test_the_request_and_the_result(
    backend: AnthropicBackend | AnthropicDirectBackend, server: ScriptedAnthropic
) -> None:
    messages: list[ChatMessage] = [
        {"role": "system", "content": "Be brief."},
        {"role": "assistant", "content": "Earlier answer."},
        {"role": "user", "content": "first"},
        {"role": "user", "content": "second"},
        {"role": "assistant", "content": "Noted."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in it?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            ],
        },
    ]
    result = await backend.complete(chat(messages))
    sent = server.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.body == {
        "model": CLAUDE,
        "max_tokens": 50,
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "(The conversation so far follows.)"},
            {"role": "assistant", "content": "Earlier answer."},
            {"role": "user", "content": "first\n\nsecond"},
            {"role": "assistant", "content": "Noted."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in it?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                ],
            },
        ],
    }  # no temperature (API version 2026-10-21), no seed
    headers = lower(sent.headers)
    assert sent.api_key == KEY  # SDK: Authorization: Bearer; plain: x-api-key
    assert headers["anthropic-version"] == "2026-10-21"
    assert headers["x-request-id"] == "corr-1"
    assert headers["x-team"] == "chater"
    assert (result.text, result.model, result.finish_reason, result.backend) == (
        "echo: What is in it?",
        CLAUDE,
        "stop",
        "anthropic",
    )
    assert result.prompt_tokens == scripted_anthropic.count_input_tokens(sent.body)
    assert result.completion_tokens == 5  # ceil(len("echo: What is in it?") / 4)


async def test_max_tokens_cuts_the_answer(
    backend: AnthropicBackend | AnthropicDirectBackend,
) -> None:
    result = await backend.complete(
        chat([{"role": "user", "content": "a long question"}], max_tokens=2)
    )
    assert (result.text, result.completion_tokens, result.finish_reason) == (
        "echo: a ",
        2,
        "length",
    )


async def test_an_image_url_is_sent_as_a_url_source(
    backend: AnthropicBackend | AnthropicDirectBackend, server: ScriptedAnthropic
) -> None:
    url = "https://images.example/cat.jpg"
    part: dict[str, Any] = {"type": "image_url", "image_url": {"url": url, "detail": "low"}}
    await backend.complete(chat([{"role": "user", "content": [part]}]))
    block = server.requests[-1].messages[0]["content"][0]
    assert block == {"type": "image", "source": {"type": "url", "url": url}}


async def test_a_pinned_older_api_version_gets_the_temperature(
    server: ScriptedAnthropic, client: str
) -> None:
    backend = make(
        client,
        api_key=SecretStr(KEY),
        base_url=server.base_url,
        timeout=1.0,
        api_version="2023-06-01",
    )
    try:
        result = await backend.complete(chat())
    finally:
        await backend.aclose()
    assert result.text == "echo: hi"
    sent = server.requests[-1]
    assert sent.version == "2023-06-01"
    assert sent.body["temperature"] == 0.4


async def test_without_a_key_the_environment_is_not_consulted(
    monkeypatch: pytest.MonkeyPatch, client: str
) -> None:
    """A proxy that needs no key: the SDK gets a placeholder, never a key of its own
    finding (ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN, profile files)."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-the-environment")
    with ScriptedAnthropic() as open_server:
        backend = make(client, api_key=None, base_url=open_server.base_url, timeout=1.0)
        try:
            await backend.complete(chat())
        finally:
            await backend.aclose()
        assert open_server.requests[-1].api_key == "not-needed"
    assert backend.api_version == "2026-10-21"


async def test_a_strict_schema_is_asked_for_as_structured_output(
    backend: AnthropicBackend | AnthropicDirectBackend, server: ScriptedAnthropic
) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    fmt = ResponseFormat(type="json_schema", schema=schema, strict=True)
    result = await backend.complete(chat(fmt=fmt))
    assert result.text == '{"answer":"echo: hi"}'
    body = server.requests[-1].body
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert body["system"] == f"Be brief.\n\n{json_instruction(fmt)}"


async def test_json_object_is_asked_for_in_the_system_prompt(
    backend: AnthropicBackend | AnthropicDirectBackend, server: ScriptedAnthropic
) -> None:
    fmt = ResponseFormat(type="json_object")
    await backend.complete(chat(fmt=fmt))
    body = server.requests[-1].body
    assert body["system"] == f"Be brief.\n\n{json_instruction(fmt)}"
    assert "output_config" not in body


def _no_secrets(error: BackendError, *upstream: str) -> None:
    for text in (error.message, str(error), repr(error)):
        assert KEY not in text
        assert "127.0.0.1" not in text
        assert "localhost" not in text
        for words in upstream:
            assert words not in text


@pytest.mark.parametrize(
    ("fault", "code", "retryable", "retry_after"),
    [
        (Fault(status=400), ErrorCode.BACKEND_ERROR, False, None),
        (Fault(status=402), ErrorCode.BACKEND_ERROR, False, None),
        (Fault(status=404), ErrorCode.BACKEND_ERROR, False, None),
        (Fault(status=413), ErrorCode.BACKEND_ERROR, False, None),
        (Fault(status=422), ErrorCode.BACKEND_ERROR, False, None),
        (Fault(status=401), ErrorCode.BACKEND_AUTH_ERROR, False, None),
        (Fault(status=403), ErrorCode.BACKEND_AUTH_ERROR, False, None),
        (Fault(status=408), ErrorCode.BACKEND_ERROR, True, None),
        (scripted_anthropic.rate_limited(retry_after=7), ErrorCode.RATE_LIMITED, True, 7.0),
        (
            Fault(
                status=429,
                headers={"retry-after-ms": "1500", "retry-after": "2"},
                body=scripted_anthropic.error_body(429),
            ),
            ErrorCode.RATE_LIMITED,
            True,
            1.5,
        ),
        (Fault(status=429), ErrorCode.RATE_LIMITED, True, None),
        (Fault(status=500), ErrorCode.BACKEND_ERROR, True, None),
        (Fault(status=503, headers={"retry-after": "3"}), ErrorCode.BACKEND_ERROR, True, 3.0),
        (scripted_anthropic.overloaded(), ErrorCode.BACKEND_ERROR, True, None),
        (Fault(status=200, raw=b"<html>oops</html>"), ErrorCode.BACKEND_BAD_RESPONSE, False, None),
        (
            Fault(status=200, raw=b"{oops", headers={"Content-Type": "application/json"}),
            ErrorCode.BACKEND_BAD_RESPONSE,
            False,
            None,
        ),
        (Fault(status=200, body={"id": "x"}), ErrorCode.BACKEND_BAD_RESPONSE, False, None),
        (Fault(status=200, body={"content": "x"}), ErrorCode.BACKEND_BAD_RESPONSE, False, None),
        (Fault(delay=3.0, status=500), ErrorCode.BACKEND_TIMEOUT, True, None),
    ],
)
async def test_every_failure_maps_to_its_documented_error(
    backend: AnthropicBackend | AnthropicDirectBackend,
    server: ScriptedAnthropic,
    fault: Fault,
    code: ErrorCode,
    retryable: bool,
    retry_after: float | None,
    client: str,
) -> None:
    server.fail_next(fault)
    with pytest.raises(BackendError) as raised:
        await backend.complete(chat())
    error = raised.value
    assert (error.code, error.retryable, error.retry_after) == (code, retryable, retry_after)
    if fault.status != 200 and client == "sdk":
        assert error.__cause__ is not None  # the SDK's error is kept for the logs
    _no_secrets(error, "Overloaded", "Internal server error", "per-minute", "scripted", "oops")


async def test_the_apis_own_rejections(server: ScriptedAnthropic, client: str) -> None:
    """Not scripted faults: the server refusing a wrong key and an unknown model."""
    wrong = make(client, api_key=SecretStr("sk-ant-wrong"), base_url=server.base_url, timeout=1)
    try:
        with pytest.raises(BackendError) as raised:
            await wrong.complete(chat())
    finally:
        await wrong.aclose()
    assert (raised.value.code, raised.value.retryable) == (ErrorCode.BACKEND_AUTH_ERROR, False)
    _no_secrets(raised.value, "x-api-key", "sk-ant-wrong")
    right = make(client, api_key=SecretStr(KEY), base_url=server.base_url, timeout=1)
    try:
        with pytest.raises(BackendError) as raised:
            await right.complete(chat(model="claude-unknown"))
    finally:
        await right.aclose()
    assert (raised.value.code, raised.value.retryable) == (ErrorCode.BACKEND_ERROR, False)
    _no_secrets(raised.value, "claude-unknown")


async def test_an_unreachable_server_is_backend_unavailable(client: str) -> None:
    backend = make(
        client, api_key=SecretStr(KEY), base_url=f"http://127.0.0.1:{free_port()}", timeout=2.0
    )
    try:
        with pytest.raises(BackendError) as raised:
            await backend.complete(chat())
    finally:
        await backend.aclose()
    assert (raised.value.code, raised.value.retryable) == (ErrorCode.BACKEND_UNAVAILABLE, True)
    _no_secrets(raised.value)


@pytest.fixture
def cutting_server() -> Iterator[str]:
    """Answers every request with the start of a 200 response, then closes the socket."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b'Content-Length: 500\r\n\r\n{"id": '
                )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    listener.close()


async def test_a_connection_cut_mid_answer_is_backend_unavailable(
    cutting_server: str, client: str
) -> None:
    backend = make(client, api_key=SecretStr(KEY), base_url=cutting_server, timeout=2.0)
    try:
        with pytest.raises(BackendError) as raised:
            await backend.complete(chat())
    finally:
        await backend.aclose()
    assert (raised.value.code, raised.value.retryable) == (ErrorCode.BACKEND_UNAVAILABLE, True)
    _no_secrets(raised.value)


async def test_ping_reads_the_model_list_and_spends_no_tokens(
    backend: AnthropicBackend | AnthropicDirectBackend, server: ScriptedAnthropic
) -> None:
    await backend.ping()
    assert (server.model_lists, server.calls) == (1, 0)


@pytest.mark.parametrize("status", [503, 529])
async def test_a_ping_fails_like_a_call_while_the_server_is_down(
    backend: AnthropicBackend | AnthropicDirectBackend, server: ScriptedAnthropic, status: int
) -> None:
    server.outage_status = status
    with pytest.raises(BackendError) as raised:
        await backend.ping()
    # As a completion's 5xx is: retryable, and counted by the breaker.
    assert (raised.value.code, raised.value.retryable) == (ErrorCode.BACKEND_ERROR, True)
    assert server.model_lists == 1


async def test_a_ping_with_a_wrong_key_is_an_auth_error(
    server: ScriptedAnthropic, client: str
) -> None:
    backend = make(client, api_key=SecretStr("sk-ant-wrong"), base_url=server.base_url, timeout=1)
    try:
        with pytest.raises(BackendError) as raised:
            await backend.ping()
    finally:
        await backend.aclose()
    assert (raised.value.code, raised.value.retryable) == (ErrorCode.BACKEND_AUTH_ERROR, False)


async def test_a_ping_to_an_unreachable_server_is_backend_unavailable(client: str) -> None:
    backend = make(
        client, api_key=SecretStr(KEY), base_url=f"http://127.0.0.1:{free_port()}", timeout=2.0
    )
    try:
        with pytest.raises(BackendError) as raised:
            await backend.ping()
    finally:
        await backend.aclose()
    assert raised.value.code is ErrorCode.BACKEND_UNAVAILABLE
