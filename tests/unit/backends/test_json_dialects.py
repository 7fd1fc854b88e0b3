"""Each backend asks for a JSON answer in its own dialect: OpenAI's `response_format`
(OpenAI, llama.cpp and KoboldCPP's chat API), a GBNF `grammar` (KoboldCPP's native
API)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import pytest

from chater_gpt.backends.koboldcpp import (
    GENERATE_PATH,
    JSON_OBJECT_GRAMMAR,
    JSON_TO_GRAMMAR_PATH,
    Api,
    KoboldCppBackend,
    with_instruction,
)
from chater_gpt.backends.openai_wire import chat_body
from chater_gpt.domain import ChatCall, ResponseFormat
from chater_gpt.json_output import json_instruction

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"weight": {"type": "number"}},
    "required": ["weight"],
    "additionalProperties": False,
}
OBJECT = ResponseFormat(type="json_object")
WEIGHT = ResponseFormat(type="json_schema", schema=SCHEMA, name="weight", strict=True)


def chat_call(fmt: ResponseFormat | None, model: str = "gpt-4o-mini") -> ChatCall:
    return ChatCall(
        model=model,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        max_tokens=32,
        temperature=0.0,
        seed=3,
        response_format=fmt,
    )


# --- OpenAI wire (SDK and aiohttp clients, llama.cpp, any OpenAI-compatible server) ---------


def test_no_response_format_by_default() -> None:
    assert "response_format" not in chat_body(chat_call(None))


def test_json_object_is_sent_as_openai_does() -> None:
    assert chat_body(chat_call(OBJECT))["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize("model", ["gpt-4o-mini", "o4-mini"])
def test_json_schema_is_sent_as_openai_does(model: str) -> None:
    body = chat_body(chat_call(WEIGHT, model))
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "weight", "schema": SCHEMA, "strict": True},
    }
    orjson.dumps(body)  # the body stays serialisable


# --- KoboldCPP ---------------------------------------------------------------------------


class RecordingKobold(KoboldCppBackend):
    """The backend with its HTTP replaced: records each (path, payload), answers from a
    script keyed by path."""

    def __init__(self, answers: dict[str, tuple[int, Any]], *, api: Api | None) -> None:
        super().__init__(base_url="http://kobold.invalid", api_key=None, timeout=5)
        self._api = api
        self.answers = answers
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def _post(
        self, path: str, payload: Mapping[str, Any], call: ChatCall
    ) -> tuple[int, Mapping[str, str], bytes]:
        self.sent.append((path, orjson.loads(orjson.dumps(payload))))
        status, body = self.answers.get(path, (404, {}))
        return status, {}, orjson.dumps(body)

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [payload for sent_path, payload in self.sent if sent_path == path]


CHAT_ANSWER = {
    "choices": [{"message": {"content": '{"weight": 1}'}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 4},
}
GENERATE_ANSWER = {
    "results": [{"text": ' {"weight": 1}', "prompt_tokens": 5, "completion_tokens": 4}]
}


@pytest.mark.parametrize("fmt", [OBJECT, WEIGHT])
async def test_kobold_chat_api_sends_response_format(fmt: ResponseFormat) -> None:
    backend = RecordingKobold({"/v1/chat/completions": (200, CHAT_ANSWER)}, api="chat")
    result = await backend.complete(chat_call(fmt))
    assert result.text == '{"weight": 1}'
    [body] = backend.bodies("/v1/chat/completions")
    assert body["response_format"] == fmt.to_openai()
    assert "grammar" not in body


async def test_kobold_native_json_object_sends_the_json_object_grammar() -> None:
    backend = RecordingKobold({GENERATE_PATH: (200, GENERATE_ANSWER)}, api="native")
    result = await backend.complete(chat_call(OBJECT))
    assert result.text == '{"weight": 1}'
    assert [path for path, _ in backend.sent] == [GENERATE_PATH]  # no conversion needed
    [body] = backend.bodies(GENERATE_PATH)
    assert body["grammar"] == JSON_OBJECT_GRAMMAR
    assert body["grammar_retain_state"] is False
    assert body["prompt"].endswith(f"System: {json_instruction(OBJECT)}\nAssistant:")


async def test_kobold_native_json_schema_uses_the_servers_conversion_once() -> None:
    converted = 'root ::= "{" space weight-kv "}" space'
    backend = RecordingKobold(
        {
            JSON_TO_GRAMMAR_PATH: (200, {"result": converted, "success": True}),
            GENERATE_PATH: (200, GENERATE_ANSWER),
        },
        api="native",
    )
    await backend.complete(chat_call(WEIGHT))
    await backend.complete(chat_call(WEIGHT))
    assert backend.bodies(JSON_TO_GRAMMAR_PATH) == [{"schema": SCHEMA}]  # then cached
    bodies = backend.bodies(GENERATE_PATH)
    assert [b["grammar"] for b in bodies] == [converted, converted]
    assert json_instruction(WEIGHT) in bodies[0]["prompt"]


async def test_kobold_native_json_schema_without_the_converter_uses_the_object_grammar() -> None:
    backend = RecordingKobold({GENERATE_PATH: (200, GENERATE_ANSWER)}, api="native")
    await backend.complete(chat_call(WEIGHT))
    await backend.complete(chat_call(WEIGHT))
    assert len(backend.bodies(JSON_TO_GRAMMAR_PATH)) == 1  # 404 is remembered
    assert [b["grammar"] for b in backend.bodies(GENERATE_PATH)] == [JSON_OBJECT_GRAMMAR] * 2


@pytest.mark.parametrize(
    "answer",
    [
        (200, {"result": "", "success": False}),
        (200, {"success": True}),
        (200, ["not", "an", "object"]),
        (500, {"detail": "boom"}),
    ],
)
async def test_kobold_native_failed_conversion_falls_back_and_tries_again(
    answer: tuple[int, Any],
) -> None:
    backend = RecordingKobold(
        {JSON_TO_GRAMMAR_PATH: answer, GENERATE_PATH: (200, GENERATE_ANSWER)}, api="native"
    )
    await backend.complete(chat_call(WEIGHT))
    await backend.complete(chat_call(WEIGHT))
    assert len(backend.bodies(JSON_TO_GRAMMAR_PATH)) == 2  # not cached, not given up
    assert [b["grammar"] for b in backend.bodies(GENERATE_PATH)] == [JSON_OBJECT_GRAMMAR] * 2


async def test_kobold_native_without_response_format_sends_no_grammar() -> None:
    backend = RecordingKobold({GENERATE_PATH: (200, GENERATE_ANSWER)}, api="native")
    await backend.complete(chat_call(None))
    [body] = backend.bodies(GENERATE_PATH)
    assert "grammar" not in body
    assert body["prompt"] == "System: Be brief.\nUser: Hi\nAssistant:"


def test_the_instruction_is_added_once() -> None:
    prompt = "System: Be brief.\nUser: Hi\nAssistant:"
    once = with_instruction(prompt, WEIGHT)
    assert once == f"System: Be brief.\nUser: Hi\nSystem: {json_instruction(WEIGHT)}\nAssistant:"
    assert with_instruction(once, WEIGHT) == once
    carried = f"System: Be brief. {json_instruction(OBJECT)}\nUser: Hi\nAssistant:"
    assert with_instruction(carried, OBJECT) == carried


def test_the_json_object_grammar_is_plain_gbnf() -> None:
    rules = dict(line.split(" ::= ", 1) for line in JSON_OBJECT_GRAMMAR.strip().splitlines())
    assert rules["root"] == "object"
    assert set(rules) == {
        "root",
        "object",
        "member",
        "value",
        "array",
        "string",
        "hex",
        "number",
        "ws",
    }
    assert "{" not in rules["ws"] + rules["number"]  # no {m,n}: old servers parse it too
