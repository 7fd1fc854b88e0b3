"""The scripted Anthropic and Gemini servers speak the providers' real wire formats: the
official SDKs pinned in requirements.txt (anthropic, google-genai), pointed at them,
send, parse and stream as they would against the real APIs, and every scripted error
surfaces as the SDK's own exception for that status. SDK retries are off (except where
a test is about them), so failures are immediate."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import anthropic
import httpx2
import pytest

from tests.support import scripted_anthropic
from tests.support.images import image_bytes
from tests.support.scripted_anthropic import ScriptedAnthropic
from tests.support.scripted_common import Fault, StreamFault

pytestmark = [
    pytest.mark.integration,
]

ANTHROPIC_KEY = "sk-ant-test-SCRIPTED-0123456789"
CLAUDE = "claude-haiku-5-5"


def png_b64(size: tuple[int, int] = (32, 16)) -> str:
    return base64.b64encode(image_bytes("PNG", size)).decode("ascii")


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


# --- Anthropic --------------------------------------------------------------------


@pytest.fixture
def claude_server() -> Iterator[ScriptedAnthropic]:
    with ScriptedAnthropic(api_key=ANTHROPIC_KEY, models={CLAUDE}) as server:
        yield server


@pytest.fixture
async def claude(claude_server: ScriptedAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(
        base_url=claude_server.base_url, api_key=ANTHROPIC_KEY, max_retries=0, timeout=5.0
    )
    yield client
    await client.close()


async def test_anthropic_text_with_a_system_prompt(
    claude: anthropic.AsyncAnthropic, claude_server: ScriptedAnthropic
) -> None:
    message = await claude.messages.create(
        model=CLAUDE,
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "hello there"}],
    )
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == CLAUDE
    assert [(b.type, b.text) for b in message.content] == [("text", "echo: hello there")]  # type: ignore[union-attr]
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    sent = claude_server.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.body == {
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hello there"}],
        "model": CLAUDE,
        "system": "Be brief.",
    }
    # 3 + system ceil(9/4)=3 + message 4 + ceil(11/4)=3; the answer's 17 chars -> 5
    assert (message.usage.input_tokens, message.usage.output_tokens) == (13, 5)
    assert scripted_anthropic.count_input_tokens(sent.body) == 13
    # SDK 2.x: the key as a bearer token, API version 2026-10-21
    headers = lower(sent.headers)
    assert headers["authorization"] == f"Bearer {ANTHROPIC_KEY}"
    assert headers["anthropic-version"] == "2026-10-21"
    assert sent.api_key == ANTHROPIC_KEY
    assert message._request_id is not None


async def test_anthropic_system_blocks_turns_and_an_image(
    claude: anthropic.AsyncAnthropic, claude_server: ScriptedAnthropic
) -> None:
    image = {"type": "base64", "media_type": "image/png", "data": png_b64((1500, 1000))}
    message = await claude.messages.create(
        model=CLAUDE,
        max_tokens=100,
        system=[{"type": "text", "text": "You describe photos."}],
        messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hello."},
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": image},  # type: ignore[typeddict-item]
                    {"type": "text", "text": "What is in it?"},
                ],
            },
        ],
    )
    assert message.content[0].text == "echo: What is in it?"  # type: ignore[union-attr]
    sent = claude_server.requests[-1].body
    assert sent["messages"][2]["content"][0] == {"type": "image", "source": image}
    # 1500x1000 is scaled to 1.15 MP (1313x875) before counting: ceil(1313*875/750) = 1532
    assert scripted_anthropic.image_tokens(1500, 1000) == 1532
    assert message.usage.input_tokens == 3 + 5 + (4 + 1) + (4 + 2) + (4 + 1532 + 4)


async def test_anthropic_an_invalid_image_is_a_bad_request(
    claude: anthropic.AsyncAnthropic,
) -> None:
    image = {
        "type": "base64",
        "media_type": "image/png",
        "data": base64.b64encode(b"nope").decode(),
    }
    with pytest.raises(anthropic.BadRequestError) as caught:
        await claude.messages.create(
            model=CLAUDE,
            max_tokens=10,
            messages=[{"role": "user", "content": [{"type": "image", "source": image}]}],  # type: ignore[list-item]
        )
    assert caught.value.type == "invalid_request_error"
    assert caught.value.api_message == "messages.0.content.0: Could not process image"


async def test_anthropic_max_tokens_cuts_the_answer(claude: anthropic.AsyncAnthropic) -> None:
    message = await claude.messages.create(
        model=CLAUDE, max_tokens=2, messages=[{"role": "user", "content": "a long question"}]
    )
    assert message.stop_reason == "max_tokens"
    assert message.content[0].text == "echo: a "  # type: ignore[union-attr]
    assert message.usage.output_tokens == 2


async def test_anthropic_streaming_events(
    claude: anthropic.AsyncAnthropic, claude_server: ScriptedAnthropic
) -> None:
    stream = await claude.messages.create(
        model=CLAUDE,
        max_tokens=100,
        stream=True,
        messages=[{"role": "user", "content": "one two three"}],
    )
    events = [event async for event in stream]
    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]  # the ping is read and dropped by the SDK
    deltas = [e.delta.text for e in events if e.type == "content_block_delta"]  # type: ignore[union-attr]
    assert deltas == ["echo: ", "one ", "two ", "three"]
    start, delta = events[0], events[-2]
    assert start.message.usage.input_tokens == 11  # type: ignore[union-attr]
    assert delta.delta.stop_reason == "end_turn"  # type: ignore[union-attr]
    assert delta.usage.output_tokens == 5  # type: ignore[union-attr]
    assert claude_server.requests[-1].body["stream"] is True


async def test_anthropic_stream_helper_collects_the_final_message(
    claude: anthropic.AsyncAnthropic,
) -> None:
    async with claude.messages.stream(
        model=CLAUDE, max_tokens=100, messages=[{"role": "user", "content": "one two"}]
    ) as stream:
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(pieces) == "echo: one two"
    assert final.content[0].text == "echo: one two"  # type: ignore[union-attr]
    assert (final.stop_reason, final.usage.input_tokens, final.usage.output_tokens) == (
        "end_turn",
        9,
        4,
    )


async def test_anthropic_count_tokens_matches_the_usage(
    claude: anthropic.AsyncAnthropic, claude_server: ScriptedAnthropic
) -> None:
    messages: Any = [{"role": "user", "content": [{"type": "text", "text": "count me, please"}]}]
    counted = await claude.messages.count_tokens(model=CLAUDE, system="Sys.", messages=messages)
    assert claude_server.requests[-1].path == "/v1/messages/count_tokens"
    assert "max_tokens" not in claude_server.requests[-1].body
    used = await claude.messages.create(
        model=CLAUDE, max_tokens=50, system="Sys.", messages=messages
    )
    assert counted.input_tokens == used.usage.input_tokens == 3 + 1 + 4 + 4


async def test_anthropic_json_schema_output(claude: anthropic.AsyncAnthropic) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    message = await claude.messages.create(
        model=CLAUDE,
        max_tokens=100,
        output_config={"format": {"type": "json_schema", "schema": schema}},
        messages=[{"role": "user", "content": "hi"}],
    )
    assert message.content[0].text == '{"answer":"echo: hi"}'  # type: ignore[union-attr]


async def test_anthropic_sampling_parameters_follow_the_api_version(
    claude_server: ScriptedAnthropic,
) -> None:
    """2026-10-21 (the SDK's) rejects temperature even at its default; 2023-06-01 takes it."""
    async with anthropic.AsyncAnthropic(
        base_url=claude_server.base_url, api_key=ANTHROPIC_KEY, max_retries=0
    ) as new:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await new.messages.create(
                model=CLAUDE,
                max_tokens=10,
                messages=[{"role": "user", "content": "hi"}],
                extra_body={"temperature": 1.0},
            )
    assert caught.value.api_message == "temperature: Extra inputs are not permitted"
    async with anthropic.AsyncAnthropic(
        base_url=claude_server.base_url,
        api_key=ANTHROPIC_KEY,
        max_retries=0,
        default_headers={"anthropic-version": "2023-06-01"},
    ) as old:
        message = await old.messages.create(
            model=CLAUDE,
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"temperature": 0.2},
        )
    assert message.content[0].text == "echo: hi"  # type: ignore[union-attr]
    assert claude_server.requests[-1].version == "2023-06-01"


async def test_anthropic_documented_headers_on_the_wire(claude_server: ScriptedAnthropic) -> None:
    """Without the SDK: `x-api-key` works and wins over a bearer token; no version, 400."""
    url = f"{claude_server.base_url}/v1/messages"
    body = {"model": CLAUDE, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    key = {"x-api-key": ANTHROPIC_KEY, "authorization": "Bearer wrong"}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=body, headers=key) as response:
            assert response.status == 400
            error = await response.json()
        assert error["type"] == "error"
        assert error["error"] == {
            "type": "invalid_request_error",
            "message": "anthropic-version: header is required",
        }
        assert error["request_id"] == response.headers["request-id"]
        headers = {**key, "anthropic-version": "2023-06-01"}
        async with session.post(url, json=body, headers=headers) as response:
            assert response.status == 200
            assert (await response.json())["content"] == [{"type": "text", "text": "echo: hi"}]
        async with session.post(
            url, json=body, headers={"anthropic-version": "2023-06-01"}
        ) as response:
            assert response.status == 401
            assert (await response.json())["error"]["message"] == "x-api-key header is required"


@pytest.mark.parametrize(
    ("status", "exception", "error_type"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (403, anthropic.PermissionDeniedError, "permission_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
        (413, anthropic.ContentTooLargeError, "request_too_large"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
async def test_anthropic_errors_surface_as_the_sdk_exceptions(
    claude: anthropic.AsyncAnthropic,
    claude_server: ScriptedAnthropic,
    status: int,
    exception: type[anthropic.APIStatusError],
    error_type: str,
) -> None:
    claude_server.fail_next(Fault(status=status))
    with pytest.raises(exception) as caught:
        await claude.messages.create(
            model=CLAUDE, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    error = caught.value
    assert error.status_code == status
    assert error.type == error_type
    assert error.request_id is not None
    assert isinstance(error.body, dict)
    assert error.body["request_id"] == error.request_id
    if status >= 500:
        assert isinstance(error, anthropic.InternalServerError)


async def test_anthropic_rate_limit_carries_retry_after(
    claude: anthropic.AsyncAnthropic, claude_server: ScriptedAnthropic
) -> None:
    claude_server.fail_next(scripted_anthropic.rate_limited(retry_after=7))
    with pytest.raises(anthropic.RateLimitError) as caught:
        await claude.messages.create(
            model=CLAUDE, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.api_message is not None


async def test_anthropic_sdk_retries_honour_retry_after(claude_server: ScriptedAnthropic) -> None:
    """With retries on, the SDK waits what `retry-after-ms` says and retries (with a
    retry count header); the test's queued 429 is followed by an answer."""
    claude_server.fail_next(Fault(status=429, headers={"retry-after-ms": "10"}))
    async with anthropic.AsyncAnthropic(
        base_url=claude_server.base_url, api_key=ANTHROPIC_KEY, max_retries=1
    ) as client:
        message = await client.messages.create(
            model=CLAUDE, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert message.content[0].text == "echo: hi"  # type: ignore[union-attr]
    assert claude_server.calls == 2
    retries = [lower(r.headers)["x-stainless-retry-count"] for r in claude_server.requests]
    assert retries == ["0", "1"]


async def test_anthropic_refusals_of_key_and_model(claude_server: ScriptedAnthropic) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=claude_server.base_url, api_key="sk-ant-wrong", max_retries=0
    ) as wrong:
        with pytest.raises(anthropic.AuthenticationError) as caught:
            await wrong.messages.create(
                model=CLAUDE, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )
    assert caught.value.api_message == "invalid x-api-key"
    async with anthropic.AsyncAnthropic(
        base_url=claude_server.base_url, api_key=ANTHROPIC_KEY, max_retries=0
    ) as client:
        with pytest.raises(anthropic.NotFoundError) as missing:
            await client.messages.create(
                model="claude-nope", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )
    assert missing.value.api_message == "model: claude-nope"


async def test_anthropic_outage_and_rejections_leave_queued_faults(
    claude: anthropic.AsyncAnthropic, claude_server: ScriptedAnthropic
) -> None:
    claude_server.fail_next(scripted_anthropic.overloaded())
    with pytest.raises(anthropic.BadRequestError):  # refused before any fault
        await claude.messages.create(model=CLAUDE, max_tokens=0, messages=[])
    with pytest.raises(anthropic.OverloadedError):
        await claude.messages.count_tokens(
            model=CLAUDE, messages=[{"role": "user", "content": "x"}]
        )
    claude_server.outage_status = 500
    with pytest.raises(anthropic.InternalServerError):
        await claude.messages.create(
            model=CLAUDE, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert claude_server.calls == 3


async def test_anthropic_error_event_mid_stream(
    claude: anthropic.AsyncAnthropic, claude_server: ScriptedAnthropic
) -> None:
    """An `event: error` after the 200: the SDK raises APIStatusError with the event's
    error type, but the HTTP status it reports is the stream's (200), not 529."""
    claude_server.fail_stream_next(StreamFault(after=2, status=529))
    texts: list[str] = []
    stream = await claude.messages.create(
        model=CLAUDE, max_tokens=100, stream=True, messages=[{"role": "user", "content": "a b c"}]
    )

    async def read() -> None:
        async for event in stream:
            if event.type == "content_block_delta":
                texts.append(event.delta.text)  # type: ignore[union-attr]

    with pytest.raises(anthropic.APIStatusError) as caught:
        await read()
    assert texts == ["echo: ", "a "]
    assert caught.value.type == "overloaded_error"
    assert caught.value.status_code == 200
    assert not isinstance(caught.value, anthropic.InternalServerError)


async def test_anthropic_stream_cut_mid_way(
    claude: anthropic.AsyncAnthropic, claude_server: ScriptedAnthropic
) -> None:
    """A connection closed mid-stream: anthropic 2.14.0 lets the transport's own error
    through (httpx2.RemoteProtocolError), not an anthropic.APIConnectionError."""
    claude_server.fail_stream_next(StreamFault(after=1, cut=True))
    stream = await claude.messages.create(
        model=CLAUDE, max_tokens=100, stream=True, messages=[{"role": "user", "content": "a b"}]
    )
    with pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)):
        async for _event in stream:
            pass
