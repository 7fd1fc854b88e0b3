"""Streaming from the real local LLM (llama.cpp's server, OpenAI-compatible) through both
OpenAI clients: tokens arrive as deltas, join to the answer, and the usage is the one
the server reports for `stream_options.include_usage`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chater_gpt.backends.openai import OpenAIBackend
from chater_gpt.backends.openai_direct import OpenAIDirectBackend
from chater_gpt.dev.llm import LocalLLMServer
from chater_gpt.domain import ChatCall
from tests.support.scripted_common import Deltas

pytestmark = pytest.mark.llm


@pytest.fixture(scope="module")
def local_llm() -> Iterator[LocalLLMServer]:
    with LocalLLMServer(context_size=2048, slots=1) as server:
        yield server


@pytest.mark.parametrize("kind", ["sdk", "aiohttp"])
async def test_a_real_stream_comes_with_real_usage(local_llm: LocalLLMServer, kind: str) -> None:
    options = {"api_key": None, "base_url": local_llm.base_url, "timeout": 60.0}
    backend = OpenAIBackend(**options) if kind == "sdk" else OpenAIDirectBackend(**options)
    call = ChatCall(
        model=local_llm.model_name,
        messages=[{"role": "user", "content": "Count from one to ten."}],
        max_tokens=8,
        temperature=0,
        seed=7,
    )
    deltas = Deltas()
    try:
        result = await backend.stream(call, deltas)
    finally:
        await backend.aclose()
    assert len(deltas.texts) > 1  # token by token, not one block
    assert result.text == deltas.joined
    assert result.text.strip()
    assert result.usage_reported
    assert result.prompt_tokens > 5
    assert 0 < result.completion_tokens <= 8
    assert result.finish_reason in {"stop", "length"}
