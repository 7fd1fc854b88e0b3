"""The Gemini backends (GeminiBackend through the SDK, GeminiDirectBackend over plain
aiohttp) against the scripted Gemini API (tests/support/scripted_gemini.py): the
request the server receives, the result read from its answer, every failure mapped to
its documented error (no key, address or upstream body in the message), the deadline,
an unreachable server, and the ping the breaker's probe makes."""

from __future__ import annotations

import base64
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from chater_gpt.backends.gemini import GeminiBackend
from chater_gpt.backends.gemini_direct import GeminiDirectBackend
from chater_gpt.dev.ports import free_port
from chater_gpt.domain import ChatCall, ChatMessage, ResponseFormat
from chater_gpt.errors import BackendConfigError, BackendError, ErrorCode
from tests.support import scripted_gemini
from tests.support.images import b64, image_bytes
from tests.support.scripted_common import Fault
from tests.support.scripted_gemini import ScriptedGemini

pytestmark = pytest.mark.integration

KEY = "AIza-test-BACKEND-0123456789"
MODEL = "gemini-3.5-flash"
PNG = image_bytes("PNG", (32, 16))
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
}


@pytest.fixture
def server() -> Iterator[ScriptedGemini]:
    with ScriptedGemini(api_key=KEY, models={MODEL}) as scripted:
        yield scripted


# The SDK client (GEMINI_CLIENT=sdk) and the plain one (aiohttp): every test runs against
# both, so their requests and their error semantics stay the same.
CLIENTS: dict[str, type[GeminiBackend | GeminiDirectBackend]] = {
    "sdk": GeminiBackend,
    "aiohttp": GeminiDirectBackend,
}


@pytest.fixture(params=sorted(CLIENTS))
def client(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make(client: str, **options: Any) -> GeminiBackend | GeminiDirectBackend:
    return CLIENTS[client](**options)


@pytest.fixture
async def backend(
    server: ScriptedGemini, client: str
) -> AsyncIterator[GeminiBackend | GeminiDirectBackend]:
    gemini = make(client, api_key=SecretStr(KEY), base_url=server.base_url, timeout=5.0)
    yield gemini
    await gemini.aclose()


def chat(messages: list[ChatMessage] | None = None, **fields: Any) -> ChatCall:
    params: dict[str, Any] = {"model": MODEL, "max_tokens": 50, "temperature": 0.3}
    params.update(fields)
    return ChatCall(messages=messages or [{"role": "user", "content": "hi"}], **params)


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def assert_clean(error: BackendError, server: ScriptedGemini) -> None:
    """No key, address or upstream body in what a caller may read."""
    for secret in (KEY, "127.0.0.1", str(server.port), "scripted failure", "Resource has"):
        assert secret not in error.message
    assert "gemini" in error.message


# --- the request ----------------------------------------------------------------------


async def test_the_request_the_api_receives(
    backend: GeminiBackend | GeminiDirectBackend, server: ScriptedGemini
) -> None:
    messages: list[ChatMessage] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in it?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(PNG)}"}},
            ],
        },
    ]
    fmt = ResponseFormat("json_schema", schema=SCHEMA, name="answer", strict=True)
    await backend.complete(chat(messages, response_format=fmt, request_id="corr-1", seed=7))
    sent = server.requests[-1]
    assert (sent.api_version, sent.model, sent.method) == ("v1", MODEL, "generateContent")
    body = sent.body
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    contents = body["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[0]["parts"] == [{"text": "hi"}]
    assert contents[1]["parts"] == [{"text": "Hello."}]
    text, image = contents[2]["parts"]
    assert text == {"text": "What is in it?"}
    blob = image.get("inlineData") or image["inline_data"]
    assert (blob.get("mimeType") or blob["mime_type"]) == "image/png"
    assert base64.urlsafe_b64decode(blob["data"]) == PNG
    assert body["generationConfig"] == {
        "maxOutputTokens": 50,
        "temperature": 0.3,
        "seed": 7,
        "responseMimeType": "application/json",
        "responseJsonSchema": SCHEMA,
    }
    assert set(body) == {"contents", "systemInstruction", "generationConfig"}
    headers = lower(sent.headers)
    assert headers["x-goog-api-key"] == KEY
    assert headers["x-request-id"] == "corr-1"
    assert "key" not in sent.query  # the key travels in the header only


async def test_json_object_and_plain_text(
    backend: GeminiBackend | GeminiDirectBackend, server: ScriptedGemini
) -> None:
    result = await backend.complete(chat(response_format=ResponseFormat("json_object")))
    assert server.requests[-1].body["generationConfig"]["responseMimeType"] == "application/json"
    assert "responseJsonSchema" not in server.requests[-1].body["generationConfig"]
    assert result.text == '{"answer":"echo: hi"}'
    await backend.complete(chat())
    assert "responseMimeType" not in server.requests[-1].body["generationConfig"]
    assert "systemInstruction" not in server.requests[-1].body


async def test_an_image_url_is_sent_as_file_data(
    backend: GeminiBackend | GeminiDirectBackend, server: ScriptedGemini
) -> None:
    url = "https://images.example/meal.jpg"
    result = await backend.complete(
        chat(
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "kcal?"},
                        {"type": "image_url", "image_url": {"url": url}},
                    ],
                }
            ]
        )
    )
    part = server.requests[-1].body["contents"][0]["parts"][1]
    file_data = part.get("fileData") or part["file_data"]
    assert (file_data.get("fileUri") or file_data["file_uri"]) == url
    assert (file_data.get("mimeType") or file_data["mime_type"]) == "image/jpeg"
    assert result.prompt_tokens == 2 + scripted_gemini.IMAGE_TOKENS  # "kcal?" and the image


async def test_another_api_version(server: ScriptedGemini, client: str) -> None:
    gemini = make(
        client, api_key=SecretStr(KEY), base_url=server.base_url, timeout=5.0, api_version="v1beta"
    )
    try:
        await gemini.complete(chat())
        await gemini.ping()
    finally:
        await gemini.aclose()
    assert server.requests[-1].path == f"/v1beta/models/{MODEL}:generateContent"


# --- the result ---------------------------------------------------------------------


async def test_the_result(
    backend: GeminiBackend | GeminiDirectBackend, server: ScriptedGemini
) -> None:
    result = await backend.complete(chat())
    assert (result.text, result.model, result.finish_reason, result.backend) == (
        "echo: hi",
        MODEL,
        "stop",
        "gemini",
    )
    assert result.prompt_tokens == scripted_gemini.count_prompt_tokens(server.requests[-1].body)
    assert result.completion_tokens == 2  # "echo: hi": 8 characters, 4 a token


async def test_max_tokens_cuts_the_answer_with_finish_reason_length(
    backend: GeminiBackend | GeminiDirectBackend,
) -> None:
    result = await backend.complete(
        chat([{"role": "user", "content": "a long question"}], max_tokens=2)
    )
    assert (result.text, result.finish_reason, result.completion_tokens) == (
        "echo: a ",
        "length",
        2,
    )


def scripted_answer(**fields: Any) -> Fault:
    """A 200 answer of our own making (the scripted server sends a Fault's body as is)."""
    return Fault(status=200, body=fields)


@pytest.mark.parametrize(
    ("finish", "word"),
    [("SAFETY", "content_filter"), ("RECITATION", "content_filter"), ("OTHER", "other")],
)
async def test_finish_reasons_in_openai_words(
    backend: GeminiBackend | GeminiDirectBackend, server: ScriptedGemini, finish: str, word: str
) -> None:
    server.fail_next(
        scripted_answer(
            candidates=[
                {"content": {"role": "model", "parts": [{"text": "x"}]}, "finishReason": finish}
            ],
            usageMetadata={
                "promptTokenCount": 3,
                "candidatesTokenCount": 1,
                "thoughtsTokenCount": 4,
            },
            modelVersion="gemini-3.5-flash-002",
        )
    )
    result = await backend.complete(chat())
    assert (result.finish_reason, result.model) == (word, "gemini-3.5-flash-002")
    assert (result.prompt_tokens, result.completion_tokens) == (3, 5)


async def test_a_blocked_prompt_is_rejected_naming_the_reason(
    backend: GeminiBackend | GeminiDirectBackend, server: ScriptedGemini
) -> None:
    server.fail_next(
        scripted_answer(
            promptFeedback={"blockReason": "SAFETY", "blockReasonMessage": "scripted failure"},
            usageMetadata={"promptTokenCount": 3, "totalTokenCount": 3},
        )
    )
    with pytest.raises(BackendError) as raised:
        await backend.complete(chat())
    error = raised.value
    assert (error.code, error.retryable) == (ErrorCode.BACKEND_ERROR, False)
    assert "SAFETY" in error.message
    assert_clean(error, server)


# --- failures -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "code", "retryable", "retry_after"),
    [
        (Fault(status=400), ErrorCode.BACKEND_ERROR, False, None),
        (Fault(status=401), ErrorCode.BACKEND_AUTH_ERROR, False, None),
        (Fault(status=403), ErrorCode.BACKEND_AUTH_ERROR, False, None),
        (Fault(status=404), ErrorCode.BACKEND_ERROR, False, None),
        (Fault(status=409), ErrorCode.BACKEND_ERROR, False, None),
        (Fault(status=429), ErrorCode.RATE_LIMITED, True, None),
        (scripted_gemini.rate_limited(retry_delay=17), ErrorCode.RATE_LIMITED, True, 17.0),
        (
            scripted_gemini.rate_limited(retry_delay=17, retry_after=5),
            ErrorCode.RATE_LIMITED,
            True,
            5.0,
        ),
        (Fault(status=499), ErrorCode.BACKEND_ERROR, False, None),
        (Fault(status=500), ErrorCode.BACKEND_ERROR, True, None),
        (scripted_gemini.unavailable(), ErrorCode.BACKEND_ERROR, True, None),
        (Fault(status=503, headers={"Retry-After": "3"}), ErrorCode.BACKEND_ERROR, True, 3.0),
        (Fault(status=504), ErrorCode.BACKEND_ERROR, True, None),
        (Fault(status=200, raw=b"<html>oops</html>"), ErrorCode.BACKEND_BAD_RESPONSE, False, None),
        (Fault(status=200, body={"candidates": 5}), ErrorCode.BACKEND_BAD_RESPONSE, False, None),
        (Fault(status=200, body={"responseId": "x"}), ErrorCode.BACKEND_BAD_RESPONSE, False, None),
    ],
)
async def test_every_failure_maps_to_its_documented_error(
    backend: GeminiBackend | GeminiDirectBackend,
    server: ScriptedGemini,
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
    assert_clean(error, server)
    if fault.status != 200 and client == "sdk":
        assert error.__cause__ is not None  # the SDK's error is kept for the logs


async def test_a_wrong_key_is_an_auth_error_and_an_unknown_model_a_rejection(
    server: ScriptedGemini, client: str
) -> None:
    wrong = make(client, api_key=SecretStr("AIza-wrong"), base_url=server.base_url, timeout=5.0)
    try:
        with pytest.raises(BackendError) as raised:
            await wrong.complete(chat())
    finally:
        await wrong.aclose()
    # The API answers a bad key with 400 INVALID_ARGUMENT, reason API_KEY_INVALID.
    assert (raised.value.code, raised.value.retryable) == (ErrorCode.BACKEND_AUTH_ERROR, False)
    assert "AIza-wrong" not in raised.value.message
    gemini = make(client, api_key=SecretStr(KEY), base_url=server.base_url, timeout=5.0)
    try:
        with pytest.raises(BackendError) as missing:
            await gemini.complete(chat(model="gemini-nope"))
    finally:
        await gemini.aclose()
    assert (missing.value.code, missing.value.retryable) == (ErrorCode.BACKEND_ERROR, False)
    assert_clean(missing.value, server)


async def test_a_stalled_answer_is_a_timeout(server: ScriptedGemini, client: str) -> None:
    gemini = make(client, api_key=SecretStr(KEY), base_url=server.base_url, timeout=0.2)
    server.fail_next(Fault(delay=1.2))
    started = time.monotonic()
    try:
        with pytest.raises(BackendError) as raised:
            await gemini.complete(chat())
    finally:
        await gemini.aclose()
    assert time.monotonic() - started < 1.0
    assert (raised.value.code, raised.value.retryable) == (ErrorCode.BACKEND_TIMEOUT, True)
    assert_clean(raised.value, server)


async def test_an_unreachable_server_is_backend_unavailable_at_once(client: str) -> None:
    port = free_port()
    gemini = make(client, api_key=SecretStr(KEY), base_url=f"http://127.0.0.1:{port}", timeout=5.0)
    started = time.monotonic()
    try:
        with pytest.raises(BackendError) as raised:
            await gemini.complete(chat())
    finally:
        await gemini.aclose()
    # No SDK retry, not even its implicit 1..10 s retry of a refused connection.
    assert time.monotonic() - started < 1.0
    assert (raised.value.code, raised.value.retryable) == (ErrorCode.BACKEND_UNAVAILABLE, True)
    assert "127.0.0.1" not in raised.value.message
    assert str(port) not in raised.value.message


def test_a_missing_key_or_a_bad_url_is_a_configuration_error(client: str) -> None:
    with pytest.raises(BackendConfigError):
        make(client, api_key=None, base_url=None, timeout=5.0)
    with pytest.raises(BackendConfigError):
        make(client, api_key=SecretStr(""), base_url=None, timeout=5.0)
    with pytest.raises(BackendConfigError):
        make(client, api_key=SecretStr(KEY), base_url="ftp://example.org", timeout=5.0)


async def test_no_deprecation_warning_from_the_sdk_session(
    server: ScriptedGemini, client: str
) -> None:
    """google-genai's own aiohttp session subclasses aiohttp.ClientSession (deprecated:
    one DeprecationWarning per session); the backend hands the SDK a plain session."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        gemini = make(client, api_key=SecretStr(KEY), base_url=server.base_url, timeout=5.0)
        await gemini.complete(chat())
        await gemini.ping()
        await gemini.aclose()
        await gemini.aclose()  # twice is harmless
        await gemini.complete(chat())  # and a closed backend opens a new session
        await gemini.aclose()


# --- ping ---------------------------------------------------------------------------


async def test_ping_lists_the_models_and_spends_no_tokens(
    backend: GeminiBackend | GeminiDirectBackend, server: ScriptedGemini
) -> None:
    await backend.ping()
    assert (server.model_lists, server.calls) == (1, 0)


async def test_a_ping_fails_like_a_call_while_the_server_is_down(
    backend: GeminiBackend | GeminiDirectBackend, server: ScriptedGemini
) -> None:
    server.outage_status = 503
    with pytest.raises(BackendError) as raised:
        await backend.ping()
    assert (raised.value.code, raised.value.retryable) == (ErrorCode.BACKEND_ERROR, True)
    assert_clean(raised.value, server)
    server.outage_status = None
    await backend.ping()
    assert server.model_lists == 2


async def test_a_ping_with_a_wrong_key_is_an_auth_error(
    server: ScriptedGemini, client: str
) -> None:
    wrong = make(client, api_key=SecretStr("AIza-wrong"), base_url=server.base_url, timeout=5.0)
    try:
        with pytest.raises(BackendError) as raised:
            await wrong.ping()
    finally:
        await wrong.aclose()
    assert raised.value.code is ErrorCode.BACKEND_AUTH_ERROR


async def test_a_ping_to_an_unreachable_server_is_backend_unavailable(client: str) -> None:
    gemini = make(
        client, api_key=SecretStr(KEY), base_url=f"http://127.0.0.1:{free_port()}", timeout=5.0
    )
    try:
        with pytest.raises(BackendError) as raised:
            await gemini.ping()
    finally:
        await gemini.aclose()
    assert raised.value.code is ErrorCode.BACKEND_UNAVAILABLE


async def test_the_scripted_model_list_pages_and_checks_the_key(server: ScriptedGemini) -> None:
    server.models = {MODEL, "gemini-3.5-pro"}
    base = f"{server.base_url}/v1beta/models"
    async with aiohttp.ClientSession(headers={"x-goog-api-key": KEY}) as session:
        async with session.get(base, params={"pageSize": "1"}) as response:
            first = await response.json()
        async with session.get(
            base, params={"pageSize": "1", "pageToken": first["nextPageToken"]}
        ) as response:
            second = await response.json()
    assert [m["name"] for m in first["models"] + second["models"]] == [
        "models/gemini-3.5-flash",
        "models/gemini-3.5-pro",
    ]
    assert "nextPageToken" not in second
    async with aiohttp.ClientSession() as session, session.get(base) as response:
        assert response.status == 403
    assert server.model_lists == 3
