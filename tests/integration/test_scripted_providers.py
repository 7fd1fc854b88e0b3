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
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from tests.support import scripted_anthropic, scripted_gemini
from tests.support.images import image_bytes
from tests.support.scripted_anthropic import ScriptedAnthropic
from tests.support.scripted_common import Fault, StreamFault
from tests.support.scripted_gemini import ScriptedGemini

pytestmark = [
    pytest.mark.integration,
    # google-genai 3.6.1 subclasses aiohttp.ClientSession for each async session it opens
    pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning"),
]

ANTHROPIC_KEY = "sk-ant-test-SCRIPTED-0123456789"
GEMINI_KEY = "AIza-test-SCRIPTED-0123456789"
CLAUDE = "claude-haiku-5-5"
GEMINI = "gemini-3.5-flash"


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


async def test_anthropic_model_list(
    claude: anthropic.AsyncAnthropic, claude_server: ScriptedAnthropic
) -> None:
    """`GET /v1/models` as the SDK reads it; spends no tokens; down during an outage."""
    page = await claude.models.list(limit=1)
    assert [(m.type, m.id, m.lifecycle) for m in page.data] == [("model", CLAUDE, "active")]
    assert (page.has_more, page.first_id, page.last_id) == (False, CLAUDE, CLAUDE)
    assert (claude_server.model_lists, claude_server.calls, claude_server.requests) == (1, 0, [])
    claude_server.outage_status = 529
    with pytest.raises(anthropic.OverloadedError):
        await claude.models.list(limit=1)
    async with anthropic.AsyncAnthropic(
        base_url=claude_server.base_url, api_key="sk-ant-wrong", max_retries=0
    ) as wrong:
        with pytest.raises(anthropic.AuthenticationError):
            await wrong.models.list()
    assert claude_server.model_lists == 3


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


async def test_anthropic_timeouts_are_per_read(claude_server: ScriptedAnthropic) -> None:
    """The SDK's `timeout` bounds each wait for bytes (httpx semantics): a slow answer is
    an APITimeoutError (an APIConnectionError), a stream slower in total still ends."""
    claude_server.stream_interval = 0.15
    async with anthropic.AsyncAnthropic(
        base_url=claude_server.base_url, api_key=ANTHROPIC_KEY, max_retries=0, timeout=0.5
    ) as client:
        async with client.messages.stream(
            model=CLAUDE, max_tokens=100, messages=[{"role": "user", "content": "a b c d e f"}]
        ) as stream:
            final = await stream.get_final_message()
        assert final.stop_reason == "end_turn"  # 7 deltas, 0.9 s in all
        claude_server.latency = 1.0
        with pytest.raises(anthropic.APITimeoutError):
            await client.messages.create(
                model=CLAUDE, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )


# --- Gemini -----------------------------------------------------------------------


@pytest.fixture
def gemini_server() -> Iterator[ScriptedGemini]:
    with ScriptedGemini(api_key=GEMINI_KEY, models={GEMINI}) as server:
        yield server


def gemini_client(server: ScriptedGemini, *, key: str = GEMINI_KEY, **options: Any) -> genai.Client:
    return genai.Client(
        api_key=key,
        http_options=genai_types.HttpOptions(
            base_url=server.base_url,
            # attempts=1: no retries, and none of the client's implicit retry of a
            # refused connection (a 1..10 s sleep) either
            retry_options=genai_types.HttpRetryOptions(attempts=1),
            timeout=5000,
            **options,
        ),
    )


@pytest.fixture
async def gemini(gemini_server: ScriptedGemini) -> AsyncIterator[genai.Client]:
    client = gemini_client(gemini_server)
    yield client
    await client.aio.aclose()


async def test_gemini_text_with_a_system_instruction(
    gemini: genai.Client, gemini_server: ScriptedGemini
) -> None:
    response = await gemini.aio.models.generate_content(
        model=GEMINI,
        contents="hello there",
        config=genai_types.GenerateContentConfig(
            system_instruction="Be brief.", max_output_tokens=50, temperature=0.3
        ),
    )
    assert response.text == "echo: hello there"
    candidate = response.candidates[0]  # type: ignore[index]
    assert candidate.finish_reason == genai_types.FinishReason.STOP
    assert candidate.content.role == "model"  # type: ignore[union-attr]
    assert response.model_version == GEMINI
    usage = response.usage_metadata
    assert usage is not None
    # ceil(11/4)=3 + ceil(9/4)=3; the answer's 17 chars -> 5
    assert (usage.prompt_token_count, usage.candidates_token_count) == (6, 5)
    assert usage.total_token_count == 11
    sent = gemini_server.requests[-1]
    assert sent.path == f"/v1/models/{GEMINI}:generateContent"  # google-genai 3.6.1: v1
    assert (sent.api_version, sent.model, sent.method) == ("v1", GEMINI, "generateContent")
    assert sent.body == {
        "contents": [{"parts": [{"text": "hello there"}], "role": "user"}],
        "systemInstruction": {"parts": [{"text": "Be brief."}], "role": "user"},
        "generationConfig": {"temperature": 0.3, "maxOutputTokens": 50},
    }
    assert lower(sent.headers)["x-goog-api-key"] == GEMINI_KEY
    assert scripted_gemini.count_prompt_tokens(sent.body) == 6


async def test_gemini_v1beta_turns_and_an_image(gemini_server: ScriptedGemini) -> None:
    client = gemini_client(gemini_server, api_version="v1beta")
    contents = [
        genai_types.Content(role="user", parts=[genai_types.Part(text="hi")]),
        genai_types.Content(role="model", parts=[genai_types.Part(text="Hello.")]),
        genai_types.Content(
            role="user",
            parts=[
                genai_types.Part.from_bytes(
                    data=image_bytes("PNG", (800, 400)), mime_type="image/png"
                ),
                genai_types.Part(text="What is in it?"),
            ],
        ),
    ]
    response = await client.aio.models.generate_content(model=GEMINI, contents=contents)
    await client.aio.aclose()
    assert response.text == "echo: What is in it?"
    sent = gemini_server.requests[-1]
    assert sent.api_version == "v1beta"
    image_part = sent.body["contents"][2]["parts"][0]
    blob = image_part.get("inlineData") or image_part["inline_data"]
    # google-genai 3.6.1 sends the bytes url-safe base64 encoded, beside `mime_type`
    assert base64.urlsafe_b64decode(blob["data"]) == image_bytes("PNG", (800, 400))
    # 800x400: two 768-pixel tiles of 258 tokens
    usage = response.usage_metadata
    assert usage is not None
    assert usage.prompt_token_count == 1 + 2 + 516 + 4
    details = {d.modality: d.token_count for d in usage.prompt_tokens_details or []}
    assert details == {genai_types.MediaModality.IMAGE: 516, genai_types.MediaModality.TEXT: 7}


async def test_gemini_max_output_tokens_cuts_the_answer(gemini: genai.Client) -> None:
    response = await gemini.aio.models.generate_content(
        model=GEMINI,
        contents="a long question",
        config=genai_types.GenerateContentConfig(max_output_tokens=2),
    )
    assert response.text == "echo: a "
    assert response.candidates[0].finish_reason == genai_types.FinishReason.MAX_TOKENS  # type: ignore[index]


async def test_gemini_json_answers(gemini: genai.Client) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    response = await gemini.aio.models.generate_content(
        model=GEMINI,
        contents="hi",
        config=genai_types.GenerateContentConfig(
            response_mime_type="application/json", response_json_schema=schema
        ),
    )
    assert response.parsed == {"answer": "echo: hi"}
    with pytest.raises(genai_errors.ClientError) as caught:
        await gemini.aio.models.generate_content(
            model=GEMINI, contents="hi", config={"response_json_schema": schema}
        )
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")


async def test_gemini_streaming(gemini: genai.Client, gemini_server: ScriptedGemini) -> None:
    chunks = [
        chunk
        async for chunk in await gemini.aio.models.generate_content_stream(
            model=GEMINI, contents="one two three"
        )
    ]
    assert [c.text for c in chunks] == ["echo: ", "one ", "two ", "three"]
    last = chunks[-1]
    assert last.candidates[0].finish_reason == genai_types.FinishReason.STOP  # type: ignore[index]
    assert chunks[0].candidates[0].finish_reason is None  # type: ignore[index]
    assert last.usage_metadata is not None
    assert (last.usage_metadata.prompt_token_count, last.usage_metadata.candidates_token_count) == (
        4,
        5,
    )
    sent = gemini_server.requests[-1]
    assert (sent.method, sent.query) == ("streamGenerateContent", {"alt": "sse"})


async def test_gemini_count_tokens_matches_the_usage(
    gemini: genai.Client, gemini_server: ScriptedGemini
) -> None:
    counted = await gemini.aio.models.count_tokens(model=GEMINI, contents="count me, please")
    assert gemini_server.requests[-1].method == "countTokens"
    assert gemini_server.requests[-1].body == {
        "contents": [{"parts": [{"text": "count me, please"}], "role": "user"}]
    }
    used = await gemini.aio.models.generate_content(model=GEMINI, contents="count me, please")
    assert used.usage_metadata is not None
    assert counted.total_tokens == used.usage_metadata.prompt_token_count == 4


async def test_gemini_documented_wire_without_the_sdk(gemini_server: ScriptedGemini) -> None:
    """The key as a `key` query parameter; no key at all (403); streamGenerateContent
    without alt=sse (one JSON array); countTokens of a whole generateContentRequest."""
    base = f"{gemini_server.base_url}/v1beta/models/{GEMINI}"
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}:generateContent?key={GEMINI_KEY}", json=body) as response:
            assert response.status == 200
            answer = await response.json()
        assert answer["candidates"][0]["content"] == {
            "role": "model",
            "parts": [{"text": "echo: hi"}],
        }
        assert answer["usageMetadata"]["totalTokenCount"] == 1 + 2
        async with session.post(f"{base}:generateContent", json=body) as response:
            assert response.status == 403
            assert (await response.json())["error"]["status"] == "PERMISSION_DENIED"
        async with session.post(
            f"{base}:streamGenerateContent?key={GEMINI_KEY}", json=body
        ) as response:
            chunks = await response.json()
        assert [c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks] == [
            "echo: ",
            "hi",
        ]
        wrapped = {
            "generateContentRequest": {
                "model": f"models/{GEMINI}",
                "systemInstruction": {"parts": [{"text": "Be brief."}]},
                **body,
            }
        }
        async with session.post(f"{base}:countTokens?key={GEMINI_KEY}", json=wrapped) as response:
            assert await response.json() == {
                "totalTokens": 1 + 3,  # "hi" and "Be brief."
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 4}],
            }
        async with session.post(
            f"{base}:generateContent?key={GEMINI_KEY}", json={**body, "temprature": 1}
        ) as response:
            assert response.status == 400
            assert "Unknown name" in (await response.json())["error"]["message"]


@pytest.mark.parametrize(
    ("status", "exception", "google_status"),
    [
        (400, genai_errors.ClientError, "INVALID_ARGUMENT"),
        (401, genai_errors.ClientError, "UNAUTHENTICATED"),
        (403, genai_errors.ClientError, "PERMISSION_DENIED"),
        (404, genai_errors.ClientError, "NOT_FOUND"),
        (429, genai_errors.ClientError, "RESOURCE_EXHAUSTED"),
        (500, genai_errors.ServerError, "INTERNAL"),
        (503, genai_errors.ServerError, "UNAVAILABLE"),
        (504, genai_errors.ServerError, "DEADLINE_EXCEEDED"),
    ],
)
async def test_gemini_errors_surface_as_the_sdk_exceptions(
    gemini: genai.Client,
    gemini_server: ScriptedGemini,
    status: int,
    exception: type[genai_errors.APIError],
    google_status: str,
) -> None:
    gemini_server.fail_next(Fault(status=status))
    with pytest.raises(exception) as caught:
        await gemini.aio.models.generate_content(model=GEMINI, contents="hi")
    error = caught.value
    assert (error.code, error.status) == (status, google_status)
    assert error.message
    assert error.details["error"]["code"] == status


async def test_gemini_rate_limit_carries_the_retry_delay(
    gemini: genai.Client, gemini_server: ScriptedGemini
) -> None:
    gemini_server.fail_next(scripted_gemini.rate_limited(retry_delay=17, retry_after=5))
    with pytest.raises(genai_errors.ClientError) as caught:
        await gemini.aio.models.generate_content(model=GEMINI, contents="hi")
    error = caught.value
    assert (error.code, error.status) == (429, "RESOURCE_EXHAUSTED")
    delays = [d["retryDelay"] for d in error.details["error"]["details"] if "retryDelay" in d]
    assert delays == ["17s"]
    assert error.response.headers["retry-after"] == "5"  # type: ignore[union-attr]


async def test_gemini_refusals_of_key_and_model(gemini_server: ScriptedGemini) -> None:
    wrong = gemini_client(gemini_server, key="AIza-wrong")
    with pytest.raises(genai_errors.ClientError) as caught:
        await wrong.aio.models.generate_content(model=GEMINI, contents="hi")
    await wrong.aio.aclose()
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    assert caught.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    client = gemini_client(gemini_server)
    with pytest.raises(genai_errors.ClientError) as missing:
        await client.aio.models.generate_content(model="gemini-nope", contents="hi")
    await client.aio.aclose()
    assert (missing.value.code, missing.value.status) == (404, "NOT_FOUND")


async def test_gemini_error_mid_stream(gemini: genai.Client, gemini_server: ScriptedGemini) -> None:
    gemini_server.fail_stream_next(StreamFault(after=2, status=503))
    texts: list[str | None] = []

    async def read() -> None:
        async for chunk in await gemini.aio.models.generate_content_stream(
            model=GEMINI, contents="a b c"
        ):
            texts.append(chunk.text)

    with pytest.raises(genai_errors.ServerError) as caught:
        await read()
    assert texts == ["echo: ", "a "]
    assert (caught.value.code, caught.value.status) == (503, "UNAVAILABLE")


async def test_gemini_stream_cut_mid_way(
    gemini: genai.Client, gemini_server: ScriptedGemini
) -> None:
    """A connection closed mid-stream: google-genai 3.6.1 (on aiohttp, since aiohttp is
    installed) lets aiohttp's own error through (ClientPayloadError)."""
    gemini_server.fail_stream_next(StreamFault(after=1, cut=True))
    with pytest.raises((genai_errors.APIError, aiohttp.ClientError)):
        async for _chunk in await gemini.aio.models.generate_content_stream(
            model=GEMINI, contents="a b"
        ):
            pass


async def test_gemini_timeout_is_a_whole_request_deadline(gemini_server: ScriptedGemini) -> None:
    """`HttpOptions.timeout` (milliseconds) bounds the whole call, a stream's reading
    included, and surfaces as the builtin TimeoutError, not a google.genai error."""
    gemini_server.stream_interval = 0.15
    client = genai.Client(
        api_key=GEMINI_KEY,
        http_options=genai_types.HttpOptions(
            base_url=gemini_server.base_url,
            retry_options=genai_types.HttpRetryOptions(attempts=1),
            timeout=500,
        ),
    )

    async def read() -> None:
        async for _chunk in await client.aio.models.generate_content_stream(
            model=GEMINI, contents="a b c d e f"
        ):
            pass

    with pytest.raises(TimeoutError):
        await read()
    assert lower(gemini_server.requests[-1].headers)["x-server-timeout"] == "1"
    await client.aio.aclose()
