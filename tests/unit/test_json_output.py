"""JSON answers: the request's response_format in, the model's answer out."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chater_gpt.domain import ResponseFormat
from chater_gpt.errors import ErrorCode, InvalidModelOutput, InvalidRequest
from chater_gpt.json_output import (
    MAX_SCHEMA_BYTES,
    check_answer,
    json_instruction,
    parse_response_format,
    repair_messages,
    unfence,
)

WEIGHT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": ["food_processing", "weight_processing"]},
        "weight": {"type": "number", "minimum": 0},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}},
                "required": ["name"],
            },
        },
    },
    "required": ["type", "weight"],
    "additionalProperties": False,
}
OBJECT = ResponseFormat(type="json_object")
WEIGHT = ResponseFormat(type="json_schema", schema=WEIGHT_SCHEMA, name="weight")


def schema_format(schema: object, **extra: object) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"schema": schema, **extra}}


# --- parse_response_format ------------------------------------------------------------


@pytest.mark.parametrize("raw", [None, {"type": "text"}])
def test_text_means_no_json(raw: object) -> None:
    assert parse_response_format(raw) is None


def test_json_object() -> None:
    assert parse_response_format({"type": "json_object"}) == OBJECT


def test_json_schema_with_defaults() -> None:
    fmt = parse_response_format(schema_format(WEIGHT_SCHEMA))
    assert fmt == ResponseFormat(
        type="json_schema", schema=WEIGHT_SCHEMA, name="answer", strict=False
    )


def test_json_schema_with_name_strict_and_description() -> None:
    fmt = parse_response_format(
        schema_format(WEIGHT_SCHEMA, name="weigh-in_2", strict=True, description="A weight.")
    )
    assert fmt is not None
    assert (fmt.name, fmt.strict) == ("weigh-in_2", True)
    assert fmt.to_openai() == {
        "type": "json_schema",
        "json_schema": {"name": "weigh-in_2", "schema": WEIGHT_SCHEMA, "strict": True},
    }


def test_local_refs_are_accepted() -> None:
    schema = {
        "$id": "https://example.invalid/root",
        "type": "object",
        "$defs": {"kg": {"type": "number"}},
        "properties": {"weight": {"$ref": "#/$defs/kg"}},
    }
    fmt = parse_response_format(schema_format(schema))
    assert fmt is not None
    assert check_answer('{"weight": 2}', fmt) == '{"weight": 2}'
    with pytest.raises(InvalidModelOutput):
        check_answer('{"weight": "two"}', fmt)


SECRET = "SECRET-VALUE-0xdeadbeef"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("json_object", "response_format must be an object"),
        ([SECRET], "response_format must be an object"),
        ({"type": SECRET}, "response_format.type must be one of"),
        ({}, "response_format.type must be one of"),
        ({"type": "json_object", SECRET: 1}, "response_format has unexpected fields"),
        ({"type": "text", "json_schema": {}}, "response_format has unexpected fields"),
        ({"type": "json_schema"}, "response_format.json_schema must be an object"),
        ({"type": "json_schema", "json_schema": SECRET}, "json_schema must be an object"),
        (schema_format(WEIGHT_SCHEMA, extra=SECRET), "json_schema has unexpected fields"),
        (schema_format(WEIGHT_SCHEMA, name=""), "json_schema.name must be 1 to 64"),
        (schema_format(WEIGHT_SCHEMA, name="a" * 65), "json_schema.name must be 1 to 64"),
        (schema_format(WEIGHT_SCHEMA, name=f"x {SECRET}"), "json_schema.name must be 1 to 64"),
        (schema_format(WEIGHT_SCHEMA, name=7), "json_schema.name must be 1 to 64"),
        (schema_format(WEIGHT_SCHEMA, strict="yes"), "json_schema.strict must be true or false"),
        (schema_format(WEIGHT_SCHEMA, strict=1), "json_schema.strict must be true or false"),
        (schema_format(WEIGHT_SCHEMA, description=3), "json_schema.description must be"),
        ({"type": "json_schema", "json_schema": {"name": "x"}}, "schema is required"),
        (schema_format(SECRET), "schema must be an object"),
        (schema_format(True), "schema must be an object"),
        (schema_format({"type": SECRET}), "is not a valid JSON Schema (at /type"),
        (
            schema_format({"type": "object", "properties": {"a": {"minimum": SECRET}}}),
            "is not a valid JSON Schema (at /properties/a/minimum: fails the meta-schema's",
        ),
        (schema_format({"type": "object", "required": "a"}), "is not a valid JSON Schema"),
        (
            schema_format({"type": "object", "properties": {"a": {"pattern": "(" + SECRET}}}),
            "is not a valid JSON Schema",
        ),
        (schema_format({"type": "array"}), "must describe an object"),
        (schema_format({"type": ["object", "null"]}), "must describe an object"),
        (
            schema_format({"type": "object", "properties": {"a": {"$ref": "#/$defs/none"}}}),
            "has a $ref that points nowhere",
        ),
        (
            schema_format({"type": "object", "properties": {"a": {"$ref": "https://x.invalid/s"}}}),
            "may only refer inside itself",
        ),
        (
            schema_format({"type": "object", "$defs": {"a": {"$id": "https://x.invalid/a"}}}),
            "may set $id only at its root",
        ),
        (
            schema_format({"type": "object", "properties": {"a": {"enum": [float("nan")]}}}),
            "is not plain JSON",
        ),
    ],
)
def test_anything_else_is_an_invalid_request(raw: object, problem: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_response_format(raw)
    error = caught.value
    assert error.code is ErrorCode.INVALID_REQUEST
    assert problem in error.message
    assert SECRET not in error.message


def test_a_large_schema_is_refused() -> None:
    properties = {f"p{i}": {"type": "string", "description": "x" * 100} for i in range(400)}
    schema = {"type": "object", "properties": properties}
    assert len(json.dumps(schema)) > MAX_SCHEMA_BYTES
    with pytest.raises(InvalidRequest, match="larger than 32 KiB"):
        parse_response_format(schema_format(schema))


def test_a_deep_schema_is_refused_without_recursing() -> None:
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(5000):  # deeper than Python's recursion limit
        schema = {"type": "object", "properties": {"a": schema}}
    with pytest.raises(InvalidRequest, match="nested more than 64 levels"):
        parse_response_format(schema_format(schema))


# --- check_answer -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1}',
        '  \n{"a": 1}\n\t',
        '```json\n{"a": 1}\n```',
        '```JSON\n{"a": 1}\n```',
        '```\n{"a": 1}\n```',
        '\n\n  ```json  \n  {"a": 1}  \n```  \n',
        '```json\r\n{"a": 1}\r\n```',
    ],
)
def test_bare_or_fenced_objects_are_accepted(text: str) -> None:
    assert check_answer(text, OBJECT) == '{"a": 1}'


def test_the_text_is_returned_as_the_model_wrote_it() -> None:
    text = '```json\n{\n  "b": 2,\n  "a": [1, 2]\n}\n```'
    assert check_answer(text, OBJECT) == '{\n  "b": 2,\n  "a": [1, 2]\n}'


@pytest.mark.parametrize(
    "text",
    [
        'Here you go:\n```json\n{"a": 1}\n```',
        '```json\n{"a": 1}\n```\nHope this helps!',
        '```json\n{"a": 1}\n```\n```json\n{"b": 2}\n```',
        '```python\n{"a": 1}\n```',
        '```json {"a": 1}```',
        'The answer is {"a": 1}',
        "",
        "   ",
        "{'a': 1}",
        '{"a": 1',
        '{"a": 1} {"b": 2}',
        '{"a": NaN}',
        '{"a": Infinity}',
        "[" * 100_000 + "]" * 100_000,
    ],
)
def test_anything_but_one_json_document_is_not_json(text: str) -> None:
    with pytest.raises(InvalidModelOutput) as caught:
        check_answer(text, OBJECT)
    error = caught.value
    assert error.code is ErrorCode.INVALID_MODEL_OUTPUT
    assert not error.retryable
    assert error.message == "the answer is not valid JSON"


@pytest.mark.parametrize("text", ["[1, 2]", '"text"', "42", "null", "true", "```json\n[]\n```"])
def test_json_object_needs_an_object(text: str) -> None:
    with pytest.raises(InvalidModelOutput, match="the answer is JSON but not an object"):
        check_answer(text, OBJECT)


def test_a_matching_answer_passes_the_schema() -> None:
    text = '```json\n{"type": "food_processing", "weight": 200, "items": [{"name": "rice"}]}\n```'
    assert check_answer(text, WEIGHT).startswith('{"type": "food_processing"')


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"weight": 1}, "at the top level: missing required property 'type'"),
        ({}, "at the top level: missing required property 'type', 'weight'"),
        (
            {"type": "food_processing", "weight": 1, "SECRET-extra": 1},
            "at the top level: has properties the schema does not allow",
        ),
        ({"type": "SECRET-kind", "weight": 1}, "at /type: is not one of the allowed values"),
        ({"type": "food_processing", "weight": "SECRET-heavy"}, "at /weight: expected type number"),
        ({"type": "food_processing", "weight": -1}, "at /weight: breaks 'minimum' (0)"),
        (
            {"type": "food_processing", "weight": 1, "items": [{"name": "a"}, {"SECRET": 1}]},
            "at /items/1: missing required property 'name'",
        ),
        (
            {"type": "food_processing", "weight": 1, "items": [{"name": 5}]},
            "at /items/0/name: expected type string",
        ),
    ],
)
def test_a_mismatch_names_the_place_and_the_rule(document: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidModelOutput) as caught:
        check_answer(json.dumps(document), WEIGHT)
    message = caught.value.message
    assert message == f"the answer does not match the schema {problem}"
    assert "SECRET" not in message


def test_the_outermost_problem_is_named_first() -> None:
    document = {"weight": 1, "items": [{"name": 5}]}
    with pytest.raises(InvalidModelOutput, match="at the top level: missing required"):
        check_answer(json.dumps(document), WEIGHT)


def test_json_schema_answers_must_be_objects_too() -> None:
    loose = ResponseFormat(type="json_schema", schema={"items": {"type": "number"}})
    with pytest.raises(InvalidModelOutput, match="not an object"):
        check_answer("[1, 2]", loose)


def test_a_hand_built_schema_never_fetches_remote_refs() -> None:
    remote = ResponseFormat(
        type="json_schema",
        schema={"type": "object", "properties": {"a": {"$ref": "https://x.invalid/s.json"}}},
    )
    with pytest.raises(InvalidRequest, match="points nowhere"):
        check_answer('{"a": 1}', remote)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=6)


@given(
    document=json_objects,
    indent=st.sampled_from([None, 2]),
    fence=st.sampled_from(["```json\n{}\n```", "```\n{}\n```", "{}", " \n```json\n{}\n``` \n"]),
)
def test_any_object_round_trips_fenced_or_bare(
    document: dict[str, Any], indent: int | None, fence: str
) -> None:
    text = json.dumps(document, indent=indent, ensure_ascii=False)
    answer = check_answer(fence.replace("{}", text, 1), OBJECT)
    assert answer == text.strip()
    assert json.loads(answer) == document


@given(text=st.text(max_size=200))
def test_check_answer_only_ever_raises_invalid_model_output(text: str) -> None:
    problems = {"the answer is not valid JSON", "the answer is JSON but not an object"}
    outcome: str
    try:
        answer = check_answer(text, OBJECT)
    except InvalidModelOutput as error:
        outcome = error.message
    else:
        outcome = "ok" if isinstance(json.loads(answer), dict) else "not an object"
    assert outcome in {*problems, "ok"}


def test_unfence_leaves_other_text_alone() -> None:
    assert unfence("  hello  ") == "hello"
    assert unfence("```json\n{}\n```") == "{}"
    assert unfence("a ```json\n{}\n```") == "a ```json\n{}\n```"


# --- talking to the model ---------------------------------------------------------------


def test_json_instruction_for_any_object() -> None:
    instruction = json_instruction(OBJECT)
    assert "JSON" in instruction  # OpenAI's json_object mode needs the word in the prompt
    assert "single JSON object" in instruction
    assert "\n" not in instruction


def test_json_instruction_carries_the_schema_compactly() -> None:
    instruction = json_instruction(WEIGHT)
    assert instruction.startswith("Answer with a single JSON object only")
    compact = json.dumps(WEIGHT_SCHEMA, separators=(",", ":"))
    assert instruction.endswith(f"following this JSON Schema: {compact}")
    assert "\n" not in instruction


def test_repair_messages_add_the_answer_and_ask_for_the_correction() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weigh it."},
    ]
    repaired = repair_messages(messages, '{"weight": "heavy"}', "the answer is not JSON", WEIGHT)
    assert repaired[:2] == messages
    assert repaired[0] is not messages[0]  # copies: the caller's messages are untouched
    assert repaired[2] == {"role": "assistant", "content": '{"weight": "heavy"}'}
    ask = repaired[3]
    assert ask["role"] == "user"
    assert ask["content"].startswith("That answer cannot be used: the answer is not JSON.")
    assert "only the corrected JSON object" in ask["content"]
    assert json.dumps(WEIGHT_SCHEMA, separators=(",", ":")) in ask["content"]
    assert len(repaired) == 4
    assert len(messages) == 2


def test_repair_messages_for_any_object_have_no_schema() -> None:
    repaired = repair_messages([{"role": "user", "content": "Hi"}], "Hello!", "not JSON", OBJECT)
    assert "Schema" not in repaired[-1]["content"]
    assert [m["role"] for m in repaired] == ["user", "assistant", "user"]
