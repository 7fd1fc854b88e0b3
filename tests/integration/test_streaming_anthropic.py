"""`stream` of both Anthropic clients (the SDK's and plain aiohttp) against the scripted
Messages API: text_delta events in order, the usage of message_start and message_delta,
failures before the stream mapped as `complete` maps them, an `error` event or a cut
inside it raised after the deltas already delivered."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import SecretStr

from chater_gpt.backends.anthropic import AnthropicBackend
from chater_gpt.backends.anthropic_direct import AnthropicDirectBackend
from chater_gpt.backends.anthropic_wire import messages_body
from chater_gpt.domain import ChatCall
from chater_gpt.errors import BackendError, ErrorCode
from tests.support.scripted_anthropic import (
    ERROR_MESSAGES,
    ScriptedAnthropic,
    count_input_tokens,
    rate_limited,
)
from tests.support.scripted_common import (
    Deltas,
    Fault,
    StreamFault,
    chars_to_tokens,
    split_for_stream,
)

KEY = "sk-ant-test-STREAM-0123456789"
CLAUDE = "claude-haiku-5-5"
ANSWER = "echo: tell me a short story please"
PIECES = split_for_stream(ANSWER)

Client = AnthropicBackend | AnthropicDirectBackend
CLIENTS: dict[str, type[Client]] = {"sdk": AnthropicBackend, "aiohttp": AnthropicDirectBackend}


@pytest.fixture
def server() -> Iterator[ScriptedAnthropic]:
    with ScriptedAnthropic(api_key=KEY, models={CLAUDE}) as scripted:
        yield scripted


@pytest.fixture(params=sorted(CLIENTS))
async def client(
    request: pytest.FixtureRequest, server: ScriptedAnthropic
) -> AsyncIterator[Client]:
    made = CLIENTS[str(request.param)](
        api_key=SecretStr(KEY), base_url=server.base_url, timeout=1.0
    )
    yield made
    await made.aclose()


def chat(max_tokens: int = 50) -> ChatCall:
    return ChatCall(
        model=CLAUDE,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "tell me a short story please"},
        ],
        max_tokens=max_tokens,
        temperature=0.4,
        request_id="corr-s",
    )


async def test_deltas_arrive_in_order_and_the_result_has_the_exact_usage(
    client: Client, server: ScriptedAnthropic
) -> None:
    deltas = Deltas()
    result = await client.stream(chat(), deltas)
    assert deltas.texts == PIECES
    assert result.text == deltas.joined == ANSWER
    sent = server.requests[-1].body
    assert sent == {**messages_body(chat(), send_temperature=False), "stream": True}
    assert result.prompt_tokens == count_input_tokens(sent)
    assert result.completion_tokens == chars_to_tokens(ANSWER)
    assert (result.finish_reason, result.model, result.usage_reported) == ("stop", CLAUDE, True)


async def test_a_stream_cut_at_max_tokens_says_length(client: Client) -> None:
    deltas = Deltas()
    result = await client.stream(chat(max_tokens=2), deltas)
    assert result.text == deltas.joined == ANSWER[:8]
    assert (result.finish_reason, result.completion_tokens) == ("length", 2)


@pytest.mark.parametrize(
    ("fault", "code", "retryable"),
    [
        (StreamFault(after=2, status=529), ErrorCode.BACKEND_ERROR, True),
        (StreamFault(after=3, status=500), ErrorCode.BACKEND_ERROR, True),
        (StreamFault(after=1, status=429), ErrorCode.RATE_LIMITED, True),
        (StreamFault(after=1, status=400), ErrorCode.BACKEND_ERROR, False),
        (StreamFault(after=2, cut=True), ErrorCode.BACKEND_UNAVAILABLE, True),
        (StreamFault(after=len(PIECES), cut=True), ErrorCode.BACKEND_UNAVAILABLE, True),
    ],
)
async def test_a_failure_inside_the_stream_raises_after_the_earlier_deltas(
    client: Client, server: ScriptedAnthropic, fault: StreamFault, code: ErrorCode, retryable: bool
) -> None:
    server.fail_stream_next(fault)
    deltas = Deltas()
    with pytest.raises(BackendError) as raised:
        await client.stream(chat(), deltas)
    assert deltas.texts == PIECES[: fault.after]
    assert (raised.value.code, raised.value.retryable) == (code, retryable)
    assert not any(message in raised.value.message for message in ERROR_MESSAGES.values())
    assert "127.0.0.1" not in raised.value.message


@pytest.mark.parametrize(
    ("fault", "code", "retryable", "retry_after"),
    [
        (Fault(status=400), ErrorCode.BACKEND_ERROR, False, None),
        (Fault(status=401), ErrorCode.BACKEND_AUTH_ERROR, False, None),
        (rate_limited(2), ErrorCode.RATE_LIMITED, True, 2.0),
        (Fault(status=529), ErrorCode.BACKEND_ERROR, True, None),
        (Fault(delay=1.3, status=500), ErrorCode.BACKEND_TIMEOUT, True, None),
    ],
)
async def test_a_failure_before_the_stream_maps_as_a_completion_does(
    client: Client,
    server: ScriptedAnthropic,
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
