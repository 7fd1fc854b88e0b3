"""JSON answers from the real local LLM (llama.cpp's server with SmolLM2 135M).

llama.cpp's OpenAI-compatible endpoint takes OpenAI's `response_format` as is, both
`{"type": "json_object"}` and `{"type": "json_schema", "json_schema": {"schema": ...}}`,
and turns it into a grammar: even this tiny model then answers with JSON of the schema.
Both OpenAI clients (SDK and aiohttp) send it through `openai_wire.chat_body`. The
GBNF grammar the KoboldCPP backend sends to KoboldCPP's native API is checked here
too, by llama.cpp's own grammar engine (KoboldCPP embeds the same one).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from jsonschema import Draft202012Validator

from chater_gpt.backends.base import LLMBackend
from chater_gpt.backends.koboldcpp import JSON_OBJECT_GRAMMAR
from chater_gpt.backends.openai import OpenAIBackend
from chater_gpt.backends.openai_direct import OpenAIDirectBackend
from chater_gpt.dev.llm import LocalLLMServer
from chater_gpt.domain import ChatCall, ResponseFormat
from chater_gpt.json_output import (
    check_answer,
    json_instruction,
    parse_response_format,
    repair_messages,
)

pytestmark = pytest.mark.llm

WEIGHT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": ["food_processing", "weight_processing"]},
        "weight": {"type": "number"},
    },
    "required": ["type", "weight"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def local_llm() -> Iterator[LocalLLMServer]:
    with LocalLLMServer(context_size=4096, slots=1) as server:
        yield server


def client(kind: str, server: LocalLLMServer) -> LLMBackend:
    if kind == "sdk":
        return OpenAIBackend(api_key=None, base_url=server.base_url, timeout=120)
    return OpenAIDirectBackend(api_key=None, base_url=server.base_url, timeout=120)


def json_call(server: LocalLLMServer, fmt: ResponseFormat, question: str) -> ChatCall:
    return ChatCall(
        model=server.model_name,
        messages=[
            {"role": "system", "content": f"You are a helpful assistant. {json_instruction(fmt)}"},
            {"role": "user", "content": question},
        ],
        max_tokens=64,
        temperature=0,
        seed=7,
        response_format=fmt,
    )


async def complete(kind: str, server: LocalLLMServer, call: ChatCall) -> str:
    backend = client(kind, server)
    try:
        result = await backend.complete(call)
    finally:
        await backend.aclose()
    return result.text


@pytest.mark.parametrize("kind", ["sdk", "aiohttp"])
async def test_a_json_schema_answer_matches_the_schema(
    kind: str, local_llm: LocalLLMServer
) -> None:
    fmt = parse_response_format(
        {"type": "json_schema", "json_schema": {"name": "meal", "schema": WEIGHT_SCHEMA}}
    )
    assert fmt is not None
    question = "I ate 200 g of chicken. Classify this and give the weight in grams."
    text = await complete(kind, local_llm, json_call(local_llm, fmt, question))

    answer = check_answer(text, fmt)
    document = json.loads(answer)
    Draft202012Validator(WEIGHT_SCHEMA).validate(document)
    assert document["type"] in {"food_processing", "weight_processing"}


@pytest.mark.parametrize("kind", ["sdk", "aiohttp"])
async def test_a_json_object_answer_is_an_object(kind: str, local_llm: LocalLLMServer) -> None:
    fmt = parse_response_format({"type": "json_object"})
    assert fmt is not None
    text = await complete(
        kind, local_llm, json_call(local_llm, fmt, "Give the name and colour of a banana.")
    )
    assert isinstance(json.loads(check_answer(text, fmt)), dict)


async def test_a_repair_turn_is_answered_with_json_of_the_schema(
    local_llm: LocalLLMServer,
) -> None:
    fmt = ResponseFormat(type="json_schema", schema=WEIGHT_SCHEMA)
    first = json_call(local_llm, fmt, "I ate 200 g of chicken. What was it?")
    bad = '{"type": "chicken"}'
    messages = repair_messages(first.messages, bad, "the answer does not match", fmt)
    text = await complete("aiohttp", local_llm, replace(first, messages=messages))
    Draft202012Validator(WEIGHT_SCHEMA).validate(json.loads(check_answer(text, fmt)))


async def test_the_kobold_native_grammar_makes_llama_cpp_answer_with_an_object(
    local_llm: LocalLLMServer,
) -> None:
    root = local_llm.base_url.removesuffix("/v1")
    body = {
        "prompt": "System: Describe things as JSON.\nUser: Describe a cat.\nAssistant:",
        "grammar": JSON_OBJECT_GRAMMAR,
        "n_predict": 64,
        "temperature": 0,
        "seed": 7,
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{root}/completion", json=body) as response,
    ):
        assert response.status == 200, await response.text()  # the grammar parses
        data = await response.json()
    assert data["stop_type"] != "limit", data["content"]
    assert isinstance(
        json.loads(check_answer(data["content"], ResponseFormat("json_object"))), dict
    )
