"""The plain Gemini client of tests/load/sdk_overhead.py reads answers and errors as the
service's Gemini backend reads the SDK's; the verdict and the options."""

import orjson
import pytest

from chater_gpt.errors import (
    BackendAuthError,
    BackendError,
    BackendRateLimited,
    BackendRejected,
)
from tests.load import sdk_overhead
from tests.load.sdk_overhead import Measured, gemini_error, gemini_result, verdict
from tests.support.scripted_gemini import error_body, rate_limited, unavailable


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
    result = gemini_result(answer, backend="gemini", requested_model="gemini-3-flash")
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
        gemini_result(blocked, backend="gemini", requested_model="m")


def test_gemini_errors_are_mapped_as_the_sdk_backend_maps_them() -> None:
    def error(status: int, body: object, headers: dict[str, str] | None = None) -> BackendError:
        return gemini_error(status, headers or {}, orjson.dumps(body), "gemini")

    limited = rate_limited(retry_delay=7)
    assert isinstance(error(429, limited.body), BackendRateLimited)
    assert error(429, limited.body).retry_after == 7
    assert error(429, limited.body, {"retry-after": "3"}).retry_after == 3  # the header wins
    overloaded = error(503, unavailable().body)
    assert type(overloaded) is BackendError
    key_invalid = error_body(
        400, "API key not valid.", [{"@type": sdk_overhead.ERROR_INFO, "reason": "API_KEY_INVALID"}]
    )
    assert isinstance(error(400, key_invalid), BackendAuthError)
    assert isinstance(error(400, error_body(400, "bad")), BackendRejected)
    assert isinstance(error(403, error_body(403)), BackendAuthError)
    assert isinstance(gemini_error(500, {}, b"not json", "gemini"), BackendError)


def test_an_sdk_costs_far_more_past_twice_the_plain_client_and_0_3_ms() -> None:
    plain = Measured("p", "aiohttp", [0.2, 0.2, 0.25], [1.0])
    assert verdict(Measured("p", "sdk", [0.9, 1.0, 1.1], [1.0]), plain)[2]
    assert not verdict(Measured("p", "sdk", [0.45, 0.45, 0.45], [1.0]), plain)[2]  # 0.25 ms
    assert not verdict(Measured("p", "sdk", [0.3, 0.3, 0.3], [1.0]), plain)[2]  # 1.5x


def test_options() -> None:
    args = sdk_overhead.parse_args(["--provider", "gemini,anthropic", "--calls", "10"])
    assert (args.provider, args.calls, args.rounds) == (("gemini", "anthropic"), 10, 5)
    assert sdk_overhead.parse_args([]).provider == ("openai", "anthropic", "gemini")
    with pytest.raises(SystemExit):
        sdk_overhead.parse_args(["--provider", "cohere"])
