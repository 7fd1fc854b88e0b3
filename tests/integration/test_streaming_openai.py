"""`stream` of both OpenAI clients (the SDK's and plain aiohttp) against the scripted
OpenAI server: deltas in order, the exact usage of the last chunk, failures before
the stream mapped as `complete` maps them, and failures inside it raised after the
deltas already delivered, never as a truncated success."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from chater_gpt.backends.openai import OpenAIBackend
from chater_gpt.backends.openai_direct import OpenAIDirectBackend
from chater_gpt.dev.ports import free_port
from chater_gpt.domain import ChatCall
from chater_gpt.errors import BackendError, ErrorCode
from tests.support.scripted_common import Deltas, Fault, StreamFault, split_for_stream
from tests.support.scripted_openai import ScriptedOpenAI

KEY = "sk-test-STREAM-0123456789"
ANSWER = "echo: tell me a short story please"
PIECES = split_for_stream(ANSWER)

Client = OpenAIBackend | OpenAIDirectBackend


def make_client(kind: str, base_url: str, *, timeout: float = 2.0) -> Client:
    if kind == "sdk":
        return OpenAIBackend(api_key=SecretStr(KEY), base_url=base_url, timeout=timeout)
    return OpenAIDirectBackend(api_key=SecretStr(KEY), base_url=base_url, timeout=timeout)


@pytest.fixture(params=["sdk", "aiohttp"])
async def client(request: pytest.FixtureRequest, scripted: ScriptedOpenAI) -> AsyncIterator[Client]:
    backend = make_client(str(request.param), scripted.base_url, timeout=1.0)
    yield backend
    await backend.aclose()


def chat() -> ChatCall:
    return ChatCall(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "tell me a short story please"},
        ],
        max_tokens=50,
        temperature=0.2,
        request_id="corr-s",
    )


def expected_usage() -> tuple[int, int]:
    """The scripted server's count: per message len(content)//4 + 4; the answer len//4."""
    prompt = (len("Be brief.") // 4 + 4) + (len("tell me a short story please") // 4 + 4)
    return prompt, len(ANSWER) // 4


async def test_deltas_arrive_in_order_and_the_result_has_the_exact_usage(
    client: Client, scripted: ScriptedOpenAI
) -> None:
    deltas = Deltas()
    result = await client.stream(chat(), deltas)
    assert deltas.texts == PIECES
    assert result.text == deltas.joined == ANSWER
    assert (result.prompt_tokens, result.completion_tokens) == expected_usage()
    assert (result.finish_reason, result.model, result.usage_reported) == (
        "stop",
        "gpt-4o-mini",
        True,
    )
    sent = scripted.requests[-1]
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
    assert {k.lower(): v for k, v in sent.headers.items()}["x-request-id"] == "corr-s"


async def test_a_server_without_usage_says_so(client: Client, scripted: ScriptedOpenAI) -> None:
    scripted.stream_usage = False
    result = await client.stream(chat(), Deltas())
    assert result.text == ANSWER
    assert (result.usage_reported, result.prompt_tokens, result.completion_tokens) == (False, 0, 0)


@pytest.mark.parametrize(
    ("fault", "code", "retryable"),
    [
        (StreamFault(after=2, status=500), ErrorCode.BACKEND_ERROR, True),
        (StreamFault(after=3, status=429), ErrorCode.RATE_LIMITED, True),
        (StreamFault(after=1, status=400), ErrorCode.BACKEND_ERROR, False),
        (StreamFault(after=2, cut=True), ErrorCode.BACKEND_UNAVAILABLE, True),
        (StreamFault(after=len(PIECES), cut=True), ErrorCode.BACKEND_UNAVAILABLE, True),
    ],
)
async def test_a_failure_inside_the_stream_raises_after_the_earlier_deltas(
    client: Client, scripted: ScriptedOpenAI, fault: StreamFault, code: ErrorCode, retryable: bool
) -> None:
    scripted.fail_stream_next(fault)
    deltas = Deltas()
    with pytest.raises(BackendError) as raised:
        await client.stream(chat(), deltas)
    assert deltas.texts == PIECES[: fault.after]
    assert (raised.value.code, raised.value.retryable) == (code, retryable)
    assert "server had an error" not in raised.value.message  # never the upstream text
    assert "127.0.0.1" not in raised.value.message


@pytest.mark.parametrize(
    ("fault", "code", "retryable", "retry_after"),
    [
        (Fault(status=400), ErrorCode.BACKEND_ERROR, False, None),
        (Fault(status=401), ErrorCode.BACKEND_AUTH_ERROR, False, None),
        (Fault(status=429, headers={"Retry-After": "2"}), ErrorCode.RATE_LIMITED, True, 2.0),
        (Fault(status=503, headers={"Retry-After": "3"}), ErrorCode.BACKEND_ERROR, True, 3.0),
        (Fault(delay=1.3, status=500), ErrorCode.BACKEND_TIMEOUT, True, None),
    ],
)
async def test_a_failure_before_the_stream_maps_as_a_completion_does(
    client: Client,
    scripted: ScriptedOpenAI,
    fault: Fault,
    code: ErrorCode,
    retryable: bool,
    retry_after: float | None,
) -> None:
    scripted.fail_next(fault)
    deltas = Deltas()
    with pytest.raises(BackendError) as raised:
        await client.stream(chat(), deltas)
    assert deltas.texts == []
    error = raised.value
    assert (error.code, error.retryable, error.retry_after) == (code, retryable, retry_after)
    assert KEY not in error.message
    assert "scripted failure" not in error.message


@pytest.mark.parametrize("kind", ["sdk", "aiohttp"])
async def test_an_unreachable_server_is_backend_unavailable(kind: str) -> None:
    backend = make_client(kind, f"http://127.0.0.1:{free_port()}/v1")
    try:
        with pytest.raises(BackendError) as raised:
            await backend.stream(chat(), Deltas())
    finally:
        await backend.aclose()
    assert raised.value.code is ErrorCode.BACKEND_UNAVAILABLE


async def test_the_callers_own_failure_is_never_taken_for_the_backends(client: Client) -> None:
    async def failing_sink(text: str) -> None:
        raise TimeoutError("the caller's producer timed out")

    with pytest.raises(TimeoutError, match="caller's producer"):
        await client.stream(chat(), failing_sink)
    # The connection was given up cleanly: the next stream works.
    assert (await client.stream(chat(), Deltas())).text == ANSWER
