"""One true end-to-end path: the service against the real local LLM (llama.cpp with
SmolLM2 135M), answering with a real completion and real token usage."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chater_gpt.config import load_settings
from chater_gpt.context.tokens import BpeTokenCounters
from chater_gpt.dev.llm import LocalLLMServer
from tests.integration.conftest import Broker, Topics
from tests.support.service_runner import (
    ReplyCollector,
    envelope,
    produce_requests,
    running_service,
)

pytestmark = pytest.mark.llm


@pytest.fixture(scope="module")
def local_llm() -> Iterator[LocalLLMServer]:
    with LocalLLMServer(context_size=4096, slots=1) as server:
        yield server


async def test_a_real_completion_comes_back_with_real_usage(
    broker: Broker, topics: Topics, replies: ReplyCollector, local_llm: LocalLLMServer
) -> None:
    settings = load_settings(
        {
            "bootstrap_server": broker.bootstrap,
            "request_topic": topics.request,
            "response_topic": topics.response,
            "consumer_group": topics.group,
            "openai_base_url": local_llm.base_url,
            "model": local_llm.model_name,
            "vision_model": local_llm.model_name,
            "redis_url": None,
            "max_tokens": 24,
            "temperature": 0,
            "seed": 7,
            "kafka_session_timeout_ms": 3000,
            "kafka_heartbeat_interval_ms": 300,
            "metrics_port": 0,
            "log_format": "text",
        }
    )
    async with running_service(settings):
        produce_requests(
            broker.bootstrap,
            topics.request,
            [envelope("llm-1", message="Name one colour of the rainbow.")],
        )
        by_key = await replies.await_keys({"llm-1"}, timeout=120)

    value = by_key["llm-1"][0].value
    assert "error" not in value, value
    assert value["model"] == local_llm.model_name
    assert value["response"].strip()
    usage = value["usage"]
    assert usage["prompt_tokens"] > 10  # system prompt + question, counted by llama.cpp
    assert 0 < usage["completion_tokens"] <= 24
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert value["finish_reason"] in {"stop", "length"}


async def test_the_llama_cpp_tokenizer_counts_like_the_server(local_llm: LocalLLMServer) -> None:
    from chater_gpt.context.server_tokens import LlamaCppTokenizer, ServerTokenCounters

    root = local_llm.base_url.removesuffix("/v1")
    counters = ServerTokenCounters(LlamaCppTokenizer(root))
    text = "Kafka keeps messages in order within a partition. 🚀 日本語"
    try:
        await counters.prefetch(local_llm.model_name, [text])
        counted = counters.for_model(local_llm.model_name).count(text)
    finally:
        await counters.aclose()
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{root}/tokenize", json={"content": text}) as response,
    ):
        tokens = (await response.json())["tokens"]
    assert counted == len(tokens)
    assert counted != BpeTokenCounters().for_encoding("o200k_base").count(text)
