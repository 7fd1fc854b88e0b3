"""The plain-aiohttp clients of Anthropic and Gemini (ANTHROPIC_CLIENT / GEMINI_CLIENT =
aiohttp) say what the SDK backends say: the same API version, the same default
address, and they run without importing the SDKs. Their requests and errors are checked
against the scripted APIs next to the SDK backends' (tests/integration)."""

from __future__ import annotations

import subprocess
import sys

import anthropic
import orjson
import pytest
from google import genai

from chater_gpt import config
from chater_gpt.backends import anthropic_wire, gemini_wire
from chater_gpt.domain import ChatCall
from chater_gpt.errors import BackendAuthError, BackendError, BackendRateLimited, BackendRejected
from tests.support.images import b64, image_bytes
from tests.support.scripted_gemini import error_body, rate_limited, unavailable


def test_the_anthropic_defaults_are_the_sdks() -> None:
    sdk = anthropic.AsyncAnthropic(api_key="unit")
    assert sdk.default_headers["anthropic-version"] == anthropic_wire.DEFAULT_API_VERSION
    assert str(sdk.base_url).rstrip("/") == anthropic_wire.DEFAULT_BASE_URL
    assert config.DEFAULT_ANTHROPIC_BASE_URL == anthropic_wire.DEFAULT_BASE_URL


def test_the_gemini_defaults_are_the_sdks() -> None:
    options = genai.Client(api_key="unit")._api_client._http_options
    assert options.api_version == gemini_wire.DEFAULT_API_VERSION
    assert str(options.base_url).rstrip("/") == gemini_wire.DEFAULT_BASE_URL
    assert config.DEFAULT_GEMINI_BASE_URL == gemini_wire.DEFAULT_BASE_URL


def test_the_plain_clients_do_not_load_the_sdks() -> None:
    code = (
        "import sys\n"
        "import chater_gpt.backends.anthropic_direct, chater_gpt.backends.gemini_direct\n"
        "loaded = [m for m in ('anthropic', 'google.genai') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_inline_image_travels_as_base64_in_the_gemini_json() -> None:
    png = image_bytes("PNG", (4, 4))
    call = ChatCall(
        model="gemini-3.5-flash",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{b64(png)}"},
                    },
                ],
            }
        ],
        max_tokens=8,
        temperature=0.2,
    )
    body = orjson.loads(
        orjson.dumps(gemini_wire.request_body(call), default=gemini_wire.json_default)
    )
    assert body["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "what?"},
                {"inlineData": {"mimeType": "image/png", "data": b64(png)}},
            ],
        }
    ]
    assert body["generationConfig"] == {"maxOutputTokens": 8, "temperature": 0.2}


def test_gemini_answers_are_read_as_the_sdk_backend_reads_them() -> None:
    answer = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [{"text": "thinking", "thought": True}, {"text": "echo: hi"}],
                },
                "finishReason": "MAX_TOKENS",
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 12,
            "candidatesTokenCount": 5,
            "thoughtsTokenCount": 2,
            "cachedContentTokenCount": 4,
        },
        "modelVersion": "gemini-3-flash-001",
    }
    result = gemini_wire.result_of_json(answer, backend="gemini", requested_model="gemini-3-flash")
    assert (result.text, result.model, result.finish_reason) == (
        "echo: hi",
        "gemini-3-flash-001",
        "length",
    )
    assert (result.prompt_tokens, result.completion_tokens, result.cached_prompt_tokens) == (
        12,
        7,
        4,
    )
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}}
    with pytest.raises(BackendRejected):
        gemini_wire.result_of_json(blocked, backend="gemini", requested_model="m")


def test_gemini_errors_are_mapped_as_the_sdk_backend_maps_them() -> None:
    def error(status: int, body: object, headers: dict[str, str] | None = None) -> BackendError:
        return gemini_wire.error_for(status, body, headers or {}, "gemini")

    limited = rate_limited(retry_delay=7)
    assert isinstance(error(429, limited.body), BackendRateLimited)
    assert error(429, limited.body).retry_after == 7
    assert error(429, limited.body, {"retry-after": "3"}).retry_after == 3  # the header wins
    overloaded = error(503, unavailable().body)
    assert type(overloaded) is BackendError
    key_invalid = error_body(
        400,
        "API key not valid.",
        [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
    )
    assert isinstance(error(400, key_invalid), BackendAuthError)
    assert isinstance(error(400, error_body(400, "bad")), BackendRejected)
    assert isinstance(error(403, error_body(403)), BackendAuthError)
    assert type(gemini_wire.error_for(500, None, {}, "gemini")) is BackendError  # not JSON
