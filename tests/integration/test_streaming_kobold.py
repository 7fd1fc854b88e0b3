"""`stream` of the KoboldCPP backend against the scripted KoboldCPP server, on both of
its APIs: the chat API's OpenAI chunks (usage from the usage chunk, else counted by the
server's tokenizer) and the native `/api/extra/generate/stream` token events; a failed
generation or a cut connection raises after the deltas already delivered."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from chater_gpt.backends.koboldcpp import KoboldCppBackend
from chater_gpt.backends.koboldcpp_prompt import render_prompt
from chater_gpt.domain import ChatCall
from chater_gpt.errors import BackendError, ErrorCode
from tests.support.scripted_common import Deltas, StreamFault, split_for_stream
from tests.support.scripted_kobold import KoboldFault, ScriptedKobold, count_tokens

ANSWER = "Hello from Kobold, streaming word by word"
APIS = {"chat": True, "native": False}


@pytest.fixture(params=sorted(APIS))
def server(request: pytest.FixtureRequest) -> Iterator[ScriptedKobold]:
    with ScriptedKobold(chat_enabled=APIS[str(request.param)], answer=ANSWER) as scripted:
        yield scripted


@pytest.fixture
async def backend(server: ScriptedKobold) -> AsyncIterator[KoboldCppBackend]:
    made = KoboldCppBackend(base_url=server.base_url, api_key=None, timeout=2.0)
    yield made
    await made.aclose()


def chat() -> ChatCall:
    return ChatCall(
        model="koboldcpp/scripted",
        messages=[{"role": "user", "content": "say hello"}],
        max_tokens=40,
        temperature=0.2,
    )


async def test_deltas_arrive_in_order_and_join_to_the_text(
    backend: KoboldCppBackend, server: ScriptedKobold
) -> None:
    deltas = Deltas()
    result = await backend.stream(chat(), deltas)
    assert result.text == deltas.joined == ANSWER
    assert len(deltas.texts) == len(split_for_stream(ANSWER))
    assert (result.finish_reason, result.usage_reported) == ("stop", True)
    assert result.completion_tokens == count_tokens(ANSWER)
    if server.chat_enabled:  # the usage chunk: the server's count of its own prompt
        prompt = "say hello"
        assert server.bodies("/v1/chat/completions")[-1]["stream_options"] == {
            "include_usage": True
        }
    else:  # counted by the server's tokenizer (/api/extra/tokencount)
        prompt = render_prompt(chat().messages)[0]
        assert server.bodies("/api/extra/generate/stream")[-1]["trim_stop"] is True
    assert result.prompt_tokens == count_tokens(prompt)


async def test_usage_the_stream_does_not_report_is_counted_by_the_server(
    backend: KoboldCppBackend, server: ScriptedKobold
) -> None:
    server.report_usage = False
    result = await backend.stream(chat(), Deltas())
    assert result.usage_reported
    assert result.completion_tokens == count_tokens(ANSWER)
    assert "/api/extra/tokencount" in server.paths()


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (StreamFault(after=3), ErrorCode.BACKEND_ERROR),
        (StreamFault(after=3, cut=True), ErrorCode.BACKEND_UNAVAILABLE),
    ],
)
async def test_a_failure_inside_the_stream_raises_after_the_earlier_deltas(
    backend: KoboldCppBackend, server: ScriptedKobold, fault: StreamFault, code: ErrorCode
) -> None:
    server.fail_stream_next(fault)
    deltas = Deltas()
    with pytest.raises(BackendError) as raised:
        await backend.stream(chat(), deltas)
    assert deltas.texts  # some text went out before the failure
    assert ANSWER.startswith(deltas.joined)
    assert raised.value.code is code
    assert "127.0.0.1" not in raised.value.message


async def test_a_failure_before_the_stream_maps_as_a_completion_does(
    backend: KoboldCppBackend, server: ScriptedKobold
) -> None:
    server.fail_next(KoboldFault(status=503, headers={"Retry-After": "2"}))
    deltas = Deltas()
    with pytest.raises(BackendError) as raised:
        await backend.stream(chat(), deltas)
    assert deltas.texts == []
    assert (raised.value.code, raised.value.retryable, raised.value.retry_after) == (
        ErrorCode.BACKEND_ERROR,
        True,
        2.0,
    )
    assert "scripted failure" not in raised.value.message


async def test_a_server_without_the_chat_api_streams_natively_from_then_on(
    backend: KoboldCppBackend, server: ScriptedKobold
) -> None:
    await backend.stream(chat(), Deltas())
    await backend.stream(chat(), Deltas())
    expected = "chat" if server.chat_enabled else "native"
    assert backend.api == expected
    assert server.paths().count("/v1/chat/completions") == (2 if server.chat_enabled else 1)
