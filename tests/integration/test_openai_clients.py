"""Both OpenAI clients (the official SDK and plain aiohttp) speak the same wire format
and map every failure to the same documented error, against a real HTTP server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from chater_gpt.backends.base import LLMBackend
from chater_gpt.backends.openai import OpenAIBackend
from chater_gpt.backends.openai_direct import OpenAIDirectBackend
from chater_gpt.dev.ports import free_port
from chater_gpt.domain import ChatCall
from chater_gpt.errors import BackendError, ErrorCode
from tests.support.scripted_openai import Fault, ScriptedOpenAI

KEY = "sk-test-CLIENTS-0123456789"


@pytest.fixture(params=["sdk", "aiohttp"])
async def client(
    request: pytest.FixtureRequest, scripted: ScriptedOpenAI
) -> AsyncIterator[LLMBackend]:
    backend = make_client(str(request.param), scripted.base_url, timeout=1.0)
    yield backend
    await backend.aclose()


def make_client(kind: str, base_url: str, *, timeout: float) -> LLMBackend:
    if kind == "sdk":
        return OpenAIBackend(api_key=SecretStr(KEY), base_url=base_url, timeout=timeout)
    return OpenAIDirectBackend(api_key=SecretStr(KEY), base_url=base_url, timeout=timeout)


def chat(model: str = "gpt-4o-mini") -> ChatCall:
    return ChatCall(
        model=model,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        max_tokens=50,
        temperature=0.2,
        request_id="corr-1",
        seed=7,
    )


async def test_the_request_and_the_result(client: LLMBackend, scripted: ScriptedOpenAI) -> None:
    result = await client.complete(chat())
    assert (result.text, result.model, result.finish_reason) == ("echo: hi", "gpt-4o-mini", "stop")
    assert result.prompt_tokens > 0
    assert result.completion_tokens > 0
    sent = scripted.requests[-1]
    assert sent.body == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        "temperature": 0.2,
        "max_tokens": 50,
        "seed": 7,
    }
    headers = {k.lower(): v for k, v in sent.headers.items()}
    assert headers["x-request-id"] == "corr-1"
    assert headers["authorization"] == f"Bearer {KEY}"


async def test_reasoning_models_get_max_completion_tokens(
    client: LLMBackend, scripted: ScriptedOpenAI
) -> None:
    await client.complete(chat("o4-mini"))
    body = scripted.requests[-1].body
    assert body["max_completion_tokens"] == 50
    assert "max_tokens" not in body


@pytest.mark.parametrize(
    ("fault", "code", "retryable", "retry_after"),
    [
        (Fault(status=400), ErrorCode.BACKEND_ERROR, False, None),
        (Fault(status=404), ErrorCode.BACKEND_ERROR, False, None),
        (Fault(status=401), ErrorCode.BACKEND_AUTH_ERROR, False, None),
        (Fault(status=403), ErrorCode.BACKEND_AUTH_ERROR, False, None),
        (Fault(status=408), ErrorCode.BACKEND_ERROR, True, None),
        (Fault(status=429, headers={"Retry-After": "2"}), ErrorCode.RATE_LIMITED, True, 2.0),
        (Fault(status=429, headers={"retry-after-ms": "1500"}), ErrorCode.RATE_LIMITED, True, 1.5),
        (Fault(status=500), ErrorCode.BACKEND_ERROR, True, None),
        (Fault(status=503, headers={"Retry-After": "3"}), ErrorCode.BACKEND_ERROR, True, 3.0),
        (Fault(status=200, raw=b"<html>oops</html>"), ErrorCode.BACKEND_BAD_RESPONSE, False, None),
        (Fault(status=200, body={"choices": []}), ErrorCode.BACKEND_BAD_RESPONSE, False, None),
        (Fault(status=200, body={"id": "x"}), ErrorCode.BACKEND_BAD_RESPONSE, False, None),
        (Fault(delay=3.0, status=500), ErrorCode.BACKEND_TIMEOUT, True, None),
    ],
)
async def test_every_failure_maps_to_its_documented_error(
    client: LLMBackend,
    scripted: ScriptedOpenAI,
    fault: Fault,
    code: ErrorCode,
    retryable: bool,
    retry_after: float | None,
) -> None:
    scripted.fail_next(fault)
    with pytest.raises(BackendError) as raised:
        await client.complete(chat())
    error = raised.value
    assert (error.code, error.retryable) == (code, retryable)
    assert error.retry_after == retry_after
    assert "scripted failure" not in error.message  # never the upstream body
    assert "127.0.0.1" not in error.message  # never the address
    assert KEY not in error.message


@pytest.mark.parametrize("kind", ["sdk", "aiohttp"])
async def test_an_unreachable_server_is_backend_unavailable(kind: str) -> None:
    backend = make_client(kind, f"http://127.0.0.1:{free_port()}/v1", timeout=2.0)
    try:
        with pytest.raises(BackendError) as raised:
            await backend.complete(chat())
    finally:
        await backend.aclose()
    assert raised.value.code is ErrorCode.BACKEND_UNAVAILABLE
    assert raised.value.retryable
