"""Prompt tokens read from each provider's prompt cache are reported apart (they are
priced at the cached-input price), as part of the prompt tokens."""

from __future__ import annotations

from google.genai import types

from chater_gpt.backends.anthropic_wire import parse_message
from chater_gpt.backends.gemini import result_of
from chater_gpt.backends.openai_wire import parse_completion

CHOICE = {"message": {"content": "hi"}, "finish_reason": "stop"}


def test_openai_cached_tokens_come_from_the_prompt_tokens_details() -> None:
    usage = {"prompt_tokens": 2000, "completion_tokens": 10, "prompt_tokens_details": {}}
    usage["prompt_tokens_details"] = {"cached_tokens": 1536}
    result = parse_completion(
        {"choices": [CHOICE], "usage": usage}, backend="openai", requested_model="gpt-4o"
    )
    assert (result.prompt_tokens, result.cached_prompt_tokens) == (2000, 1536)
    # Servers that send no details (llama.cpp, KoboldCPP, older APIs), or null: none cached.
    for details in (None, "n/a"):
        usage["prompt_tokens_details"] = details
        body = {"choices": [CHOICE], "usage": usage}
        assert parse_completion(body, backend="o", requested_model="m").cached_prompt_tokens == 0


def test_anthropic_cache_reads_are_the_cached_tokens_and_part_of_the_prompt() -> None:
    body = {
        "type": "message",
        "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": 50,
            "cache_creation_input_tokens": 100,
            "cache_read_input_tokens": 1000,
            "output_tokens": 7,
        },
    }
    result = parse_message(body, backend="anthropic", requested_model="claude-haiku-4-5")
    assert (result.prompt_tokens, result.cached_prompt_tokens) == (1150, 1000)


def test_gemini_cached_content_tokens_are_the_cached_tokens() -> None:
    response = types.GenerateContentResponse.model_validate(
        {
            "candidates": [{"content": {"parts": [{"text": "ok"}]}}],
            "usage_metadata": {
                "prompt_token_count": 3000,
                "cached_content_token_count": 2048,
                "candidates_token_count": 5,
            },
        }
    )
    result = result_of(response, backend="gemini", requested_model="gemini-2.5-flash")
    assert (result.prompt_tokens, result.cached_prompt_tokens) == (3000, 2048)
