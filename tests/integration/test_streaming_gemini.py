"""`stream` of both Gemini clients (the SDK's `generate_content_stream` and plain aiohttp
on `:streamGenerateContent?alt=sse`) against the scripted Gemini API: chunks' text in
order, the last chunk's usageMetadata, failures before the stream mapped as `complete`
maps them, an error chunk or a cut inside it raised after the deltas delivered."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import SecretStr

from chater_gpt.backends.gemini import GeminiBackend
from chater_gpt.backends.gemini_direct import GeminiDirectBackend
from chater_gpt.domain import ChatCall
from chater_gpt.errors import BackendError, ErrorCode
from tests.support.scripted_common import (
    Deltas,
    Fault,
    StreamFault,
    chars_to_tokens,
    split_for_stream,
)
from tests.support.scripted_gemini import (
    MESSAGES,
    ScriptedGemini,
    count_prompt_tokens,
    rate_limited,
    unavailable,
)

KEY = "AIza-test-STREAM-0123456789"
MODEL = "gemini-3.5-flash"
ANSWER = "echo: tell me a short story please"
PIECES = split_for_stream(ANSWER)

Client = GeminiBackend | GeminiDirectBackend
CLIENTS: dict[str, type[Client]] = {"sdk": GeminiBackend, "aiohttp": GeminiDirectBackend}


@pytest.fixture
def server() -> Iterator[ScriptedGemini]:
    with ScriptedGemini(api_key=KEY, models={MODEL}) as scripted:
        yield scripted


@pytest.fixture(params=sorted(CLIENTS))
async def client(request: pytest.FixtureRequest, server: ScriptedGemini) -> AsyncIterator[Client]:
    made = CLIENTS[str(request.param)](
        api_key=SecretStr(KEY), base_url=server.base_url, timeout=1.0
    )
    yield made
    await made.aclose()


def chat(max_tokens: int = 50) -> ChatCall:
    return ChatCall(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "tell me a short story please"},
        ],
        max_tokens=max_tokens,
        temperature=0.3,
        request_id="corr-s",
    )


async def test_deltas_arrive_in_order_and_the_result_has_the_exact_usage(
    client: Client, server: ScriptedGemini
) -> None:
    deltas = Deltas()
    result = await client.stream(chat(), deltas)
    assert deltas.texts == PIECES
    assert result.text == deltas.joined == ANSWER
    sent = server.requests[-1]
    assert (sent.method, sent.query.get("alt")) == ("streamGenerateContent", "sse")
    assert result.prompt_tokens == count_prompt_tokens(sent.body)
    assert result.completion_tokens == chars_to_tokens(ANSWER)
    assert (result.finish_reason, result.model, result.usage_reported) == ("stop", MODEL, True)


async def test_a_stream_cut_at_max_tokens_says_length(client: Client) -> None:
    deltas = Deltas()
    result = await client.stream(chat(max_tokens=2), deltas)
    assert result.text == deltas.joined == ANSWER[:8]
    assert (result.finish_reason, result.completion_tokens) == ("length", 2)


@pytest.mark.parametrize(
    ("fault", "code", "retryable"),
    [
        (StreamFault(after=2, status=503), ErrorCode.BACKEND_ERROR, True),
        (StreamFault(after=1, status=429), ErrorCode.RATE_LIMITED, True),
        (StreamFault(after=3, status=400), ErrorCode.BACKEND_ERROR, False),
        (StreamFault(after=2, cut=True), ErrorCode.BACKEND_UNAVAILABLE, True),
        (StreamFault(after=len(PIECES) - 1, cut=True), ErrorCode.BACKEND_UNAVAILABLE, True),
    ],
)
async def test_a_failure_inside_the_stream_raises_after_the_earlier_deltas(
    client: Client, server: ScriptedGemini, fault: StreamFault, code: ErrorCode, retryable: bool
) -> None:
    server.fail_stream_next(fault)
    deltas = Deltas()
    with pytest.raises(BackendError) as raised:
        await client.stream(chat(), deltas)
    assert deltas.texts == PIECES[: fault.after]
    assert (raised.value.code, raised.value.retryable) == (code, retryable)
    assert not any(message in raised.value.message for message in MESSAGES.values())
    assert "127.0.0.1" not in raised.value.message


@pytest.mark.parametrize(
    ("fault", "code", "retryable", "retry_after"),
    [
        (Fault(status=400), ErrorCode.BACKEND_ERROR, False, None),
        (Fault(status=403), ErrorCode.BACKEND_AUTH_ERROR, False, None),
        (rate_limited(retry_delay=2), ErrorCode.RATE_LIMITED, True, 2.0),
        (unavailable(), ErrorCode.BACKEND_ERROR, True, None),
        (Fault(delay=1.3, status=500), ErrorCode.BACKEND_TIMEOUT, True, None),
    ],
)
async def test_a_failure_before_the_stream_maps_as_a_completion_does(
    client: Client,
    server: ScriptedGemini,
    fault: Fault,
    code: ErrorCode,
    retryable: bool,
    retry_after: float | None,
) -> None:
    server.fail_next(fault)
    deltas = Deltas()
    with pytest.raises(BackendError) as raised:
        await client.stream(chat(), deltas)
    assert deltas.texts == []
    error = raised.value
    assert (error.code, error.retryable, error.retry_after) == (code, retryable, retry_after)
    assert KEY not in error.message
