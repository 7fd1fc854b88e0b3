"""JSON answers: the instruction added when nothing asks for JSON, and the re-ask when the
model's answer is not the JSON asked for (each re-ask billed, usage summed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from chater_gpt.domain import ChatCall, ChatResult, ResponseFormat
from chater_gpt.errors import BackendTimeout, InvalidModelOutput
from chater_gpt.json_output import json_instruction
from chater_gpt.json_repair import REPAIR_PROMPT_ALLOWANCE, enforce_json, with_json_instruction

OBJECT = ResponseFormat("json_object")
KCAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"kcal": {"type": "number"}},
    "required": ["kcal"],
}
KCAL = ResponseFormat("json_schema", schema=KCAL_SCHEMA, name="kcal")

MESSAGES = [
    {"role": "system", "content": "You count calories."},
    {"role": "user", "content": "A banana?"},
]
CALL = ChatCall(
    model="gpt-4o-mini",
    messages=MESSAGES,
    max_tokens=300,
    temperature=0.2,
    request_id="corr-1",
    response_format=OBJECT,
)


def answer(
    text: str, prompt: int = 100, completion: int = 20, model: str = "gpt-4o-mini"
) -> ChatResult:
    return ChatResult(text, model, prompt, completion, "stop", "openai")


class ScriptedAsk:
    """A fake admitted call: returns the scripted answers in order, records each call."""

    def __init__(self, *results: ChatResult | Exception) -> None:
        self._results = list(results)
        self.calls: list[tuple[ChatCall, int]] = []

    async def __call__(self, call: ChatCall, estimate: int) -> ChatResult:
        self.calls.append((call, estimate))
        result = self._results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result


class Counter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


async def enforce(
    first: ChatResult,
    ask: ScriptedAsk,
    *,
    attempts: int = 1,
    fmt: ResponseFormat = OBJECT,
    call: ChatCall = CALL,
    on_repair: Counter | None = None,
) -> ChatResult:
    return await enforce_json(
        first,
        call,
        fmt,
        prompt_tokens=120,
        attempts=attempts,
        ask=ask,
        on_repair=on_repair or Counter(),
    )


def roles(messages: Sequence[Any]) -> list[str]:
    return [message["role"] for message in messages]


# --- with_json_instruction ----------------------------------------------------------------


def test_no_instruction_without_a_response_format() -> None:
    assert with_json_instruction("Be brief.", "A banana?", None) == "Be brief."


def test_the_instruction_is_added_when_json_is_mentioned_nowhere() -> None:
    prompt = with_json_instruction("Be brief.", "A banana?", OBJECT)
    assert prompt == "Be brief.\n\n" + json_instruction(OBJECT)
    assert "json" in prompt.lower()


def test_the_instruction_alone_when_there_is_no_system_prompt() -> None:
    assert with_json_instruction("", "A banana?", OBJECT) == json_instruction(OBJECT)


def test_a_schema_instruction_carries_the_schema() -> None:
    prompt = with_json_instruction("Be brief.", "A banana?", KCAL)
    assert prompt.startswith("Be brief.\n\n")
    assert '"required":["kcal"]' in prompt


@pytest.mark.parametrize(
    ("system_prompt", "message"),
    [
        ("Answer in JSON.", "A banana?"),
        ("Be brief.", "A banana? Reply as json."),
        ("Return Json only.", "A banana?"),
        ("", "Give me a JSON object for a banana."),
    ],
)
def test_no_instruction_when_json_is_mentioned_already(system_prompt: str, message: str) -> None:
    assert with_json_instruction(system_prompt, message, OBJECT) == system_prompt


# --- enforce_json ---------------------------------------------------------------------------


async def test_a_good_first_answer_needs_no_repair_and_is_unfenced() -> None:
    ask, repairs = ScriptedAsk(), Counter()
    first = answer('```json\n{"kcal": 89}\n```', prompt=120, completion=15)
    result = await enforce(first, ask, on_repair=repairs)
    assert result.text == '{"kcal": 89}'
    assert (result.prompt_tokens, result.completion_tokens) == (120, 15)
    assert ask.calls == []
    assert repairs.count == 0


async def test_a_bad_answer_is_repaired_once_and_usage_is_summed() -> None:
    ask, repairs = ScriptedAsk(answer('{"kcal": 89}', 180, 10, model="gpt-4o")), Counter()
    bad = "A banana has about 89 kcal."
    result = await enforce(answer(bad, 120, 30), ask, on_repair=repairs)
    assert result.text == '{"kcal": 89}'
    assert (result.prompt_tokens, result.completion_tokens) == (120 + 180, 30 + 10)
    assert result.total_tokens == 340
    assert result.model == "gpt-4o"  # the answer that passed
    assert len(ask.calls) == 1
    assert repairs.count == 1


async def test_the_cost_and_the_cached_tokens_of_every_call_are_summed_too() -> None:
    good = ChatResult('{"kcal": 89}', "gpt-4o-mini", 180, 10, "stop", "openai", 100, "openai", 0.25)
    bad = ChatResult("89 kcal", "gpt-4o-mini", 120, 30, "stop", "openai", 60, "openai", 0.5)
    result = await enforce(bad, ScriptedAsk(good))
    assert (result.cached_prompt_tokens, result.cost_usd, result.provider) == (160, 0.75, "openai")


async def test_the_repair_call_adds_the_bad_answer_and_a_user_turn() -> None:
    ask = ScriptedAsk(answer('{"kcal": 89}'))
    bad = "A banana has about 89 kcal."
    await enforce(answer(bad, 120, 30), ask)
    ((repair, estimate),) = ask.calls
    assert list(repair.messages[: len(MESSAGES)]) == MESSAGES
    assert roles(repair.messages) == ["system", "user", "assistant", "user"]
    assert repair.messages[-2] == {"role": "assistant", "content": bad}
    assert "JSON" in repair.messages[-1]["content"]
    # Everything else about the call stays as it was.
    assert (repair.model, repair.max_tokens, repair.temperature, repair.request_id) == (
        "gpt-4o-mini",
        300,
        0.2,
        "corr-1",
    )
    assert repair.response_format == OBJECT
    # Budget reserved for the re-ask: the first prompt, the bad answer, the request.
    assert estimate == 120 + 30 + REPAIR_PROMPT_ALLOWANCE


async def test_a_schema_mismatch_is_repaired_with_the_problem_named() -> None:
    ask = ScriptedAsk(answer('{"kcal": 89}'))
    call = ChatCall("gpt-4o-mini", MESSAGES, 300, 0.2, response_format=KCAL)
    result = await enforce(answer('{"calories": 89}'), ask, fmt=KCAL, call=call)
    assert result.text == '{"kcal": 89}'
    ((repair, _),) = ask.calls
    ask_again = repair.messages[-1]["content"]
    assert "kcal" in ask_again
    assert "missing required property" in ask_again


async def test_bad_twice_with_one_attempt_is_invalid_model_output_after_two_calls() -> None:
    ask, repairs = ScriptedAsk(answer("still not JSON")), Counter()
    with pytest.raises(InvalidModelOutput) as caught:
        await enforce(answer("not JSON"), ask, attempts=1, on_repair=repairs)
    assert caught.value.code.value == "invalid_model_output"
    assert len(ask.calls) == 1  # the first call plus one repair: two calls in all
    assert repairs.count == 1


async def test_with_no_repair_attempts_a_bad_answer_fails_at_once() -> None:
    ask, repairs = ScriptedAsk(), Counter()
    with pytest.raises(InvalidModelOutput):
        await enforce(answer("[1, 2, 3]"), ask, attempts=0, on_repair=repairs)
    assert ask.calls == []
    assert repairs.count == 0


async def test_with_no_repair_attempts_a_good_answer_still_passes() -> None:
    result = await enforce(answer('  {"kcal": 89}  '), ScriptedAsk(), attempts=0)
    assert result.text == '{"kcal": 89}'


async def test_more_attempts_repair_from_the_latest_bad_answer() -> None:
    ask, repairs = (
        ScriptedAsk(answer("still prose", 200, 10), answer('{"kcal": 89}', 250, 5)),
        Counter(),
    )
    result = await enforce(answer("prose", 120, 30), ask, attempts=2, on_repair=repairs)
    assert result.text == '{"kcal": 89}'
    assert (result.prompt_tokens, result.completion_tokens) == (120 + 200 + 250, 30 + 10 + 5)
    assert repairs.count == 2
    second, _ = ask.calls[1]
    assert second.messages[-2] == {"role": "assistant", "content": "still prose"}
    # Each re-ask starts from the original conversation, not from the previous re-ask.
    assert roles(second.messages) == ["system", "user", "assistant", "user"]


async def test_a_backend_failure_during_repair_is_not_hidden() -> None:
    ask = ScriptedAsk(BackendTimeout("timed out"))
    with pytest.raises(BackendTimeout):
        await enforce(answer("not JSON"), ask)
