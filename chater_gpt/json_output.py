"""JSON answers: the request's `response_format`, validated on the way in, and the
model's answer, checked on the way out. Pure functions, no I/O.

- `parse_response_format` accepts OpenAI's wire form of `response_format`
  (`{"type": "text"}`, `{"type": "json_object"}`, `{"type": "json_schema",
  "json_schema": {"name", "schema", "strict", "description"}}`) and rejects anything
  else with `InvalidRequest`. A schema must be a valid JSON Schema (draft 2020-12),
  at most `MAX_SCHEMA_BYTES` serialised and `MAX_SCHEMA_DEPTH` deep, its root must
  describe an object, and its `$ref`s must point inside the schema itself (nothing is
  ever fetched).
- `check_answer` accepts the answer when it is one JSON object (of the schema), bare
  or as exactly one markdown fence (```json ... ``` or ``` ... ```) surrounded by
  nothing but whitespace; text around a fence is not accepted. It returns the JSON
  text as the model wrote it, unfenced and stripped, or raises `InvalidModelOutput`.
- `repair_messages` and `json_instruction` word the requests to the model.

Error messages name the problem (and, for a schema mismatch, where it is and which
schema rule failed) but never quote the caller's values or the model's text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from chater_gpt.domain import ChatMessage, ResponseFormat
from chater_gpt.errors import InvalidModelOutput, InvalidRequest

MAX_SCHEMA_BYTES = 32 * 1024
MAX_SCHEMA_DEPTH = 64
DEFAULT_NAME = "answer"

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# One fenced block and nothing else: ``` or ```json, the body, ``` (whitespace around
# was stripped before).
_FENCE = re.compile(r"```[ \t]*(?:json)?[ \t]*\r?\n(?P<body>.*?)\r?\n?[ \t]*```", re.DOTALL | re.I)
_FIELD = "response_format"
_SCHEMA_FIELD = "response_format.json_schema.schema"
_MAX_POINTER = 120
# References resolve inside the schema only: an empty registry that retrieves nothing
# (jsonschema's default would fetch remote `$ref`s over the network).
_NO_RETRIEVAL: Registry[Any] = Registry()


# --- the request ----------------------------------------------------------------------


def parse_response_format(raw: object) -> ResponseFormat | None:
    """OpenAI's `response_format` → a `ResponseFormat`, or None for plain text (absent
    or `{"type": "text"}`). Raises `InvalidRequest` naming what is wrong."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidRequest(f"{_FIELD} must be an object")
    kind = raw.get("type")
    if kind == "text":
        _only_fields(raw, {"type"}, _FIELD)
        return None
    if kind == "json_object":
        _only_fields(raw, {"type"}, _FIELD)
        return ResponseFormat(type="json_object")
    if kind == "json_schema":
        _only_fields(raw, {"type", "json_schema"}, _FIELD)
        return _parse_json_schema(raw.get("json_schema"))
    raise InvalidRequest(f"{_FIELD}.type must be one of text, json_object, json_schema")


def _parse_json_schema(spec: object) -> ResponseFormat:
    where = f"{_FIELD}.json_schema"
    if not isinstance(spec, Mapping):
        raise InvalidRequest(f"{where} must be an object")
    _only_fields(spec, {"name", "schema", "strict", "description"}, where)
    name = spec.get("name", DEFAULT_NAME)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidRequest(f"{where}.name must be 1 to 64 characters of A-Z, a-z, 0-9, _ or -")
    strict = spec.get("strict", False)
    if not isinstance(strict, bool):
        raise InvalidRequest(f"{where}.strict must be true or false")
    if not isinstance(spec.get("description", ""), str):
        raise InvalidRequest(f"{where}.description must be a string")
    if "schema" not in spec:
        raise InvalidRequest(f"{_SCHEMA_FIELD} is required")
    schema = spec["schema"]
    _check_schema(schema)
    return ResponseFormat(type="json_schema", schema=schema, name=name, strict=strict)


def _only_fields(obj: Mapping[Any, Any], allowed: set[str], where: str) -> None:
    if any(key not in allowed for key in obj):
        raise InvalidRequest(
            f"{where} has unexpected fields (allowed: {', '.join(sorted(allowed))})"
        )


def _check_schema(schema: object) -> None:
    if not isinstance(schema, Mapping):
        raise InvalidRequest(f"{_SCHEMA_FIELD} must be an object")
    if _depth(schema) > MAX_SCHEMA_DEPTH:
        raise InvalidRequest(f"{_SCHEMA_FIELD} is nested more than {MAX_SCHEMA_DEPTH} levels deep")
    try:
        size = len(_compact(schema).encode())
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"{_SCHEMA_FIELD} is not plain JSON") from exc
    if size > MAX_SCHEMA_BYTES:
        raise InvalidRequest(f"{_SCHEMA_FIELD} is larger than {MAX_SCHEMA_BYTES // 1024} KiB")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise InvalidRequest(
            f"{_SCHEMA_FIELD} is not a valid JSON Schema "
            f"(at {_pointer(exc.absolute_path)}: fails the meta-schema's '{exc.validator}' rule)"
        ) from exc
    declared = schema.get("type")
    if declared is not None and declared != "object":
        raise InvalidRequest(f"{_SCHEMA_FIELD} must describe an object (type: object)")
    _check_refs(schema)


def _check_refs(schema: Mapping[str, Any]) -> None:
    """Every reference points inside the schema itself and resolves: nothing is fetched."""
    resolver = _NO_RETRIEVAL.resolver_with_root(DRAFT202012.create_resource(schema))
    for keyword, value in _keywords(schema, ("$ref", "$dynamicRef", "$id")):
        if keyword == "$id":
            raise InvalidRequest(f"{_SCHEMA_FIELD} may set $id only at its root")
        if not value.startswith("#"):
            raise InvalidRequest(f"{_SCHEMA_FIELD} may only refer inside itself ($ref: #...)")
        try:
            resolver.lookup(value)
        except Unresolvable as exc:
            raise InvalidRequest(f"{_SCHEMA_FIELD} has a $ref that points nowhere") from exc


def _depth(value: object) -> int:
    """Nesting depth of a JSON value, without recursion (the value is untrusted)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            deepest = max(deepest, depth)
            if depth <= MAX_SCHEMA_DEPTH:
                stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list | tuple):
            deepest = max(deepest, depth)
            if depth <= MAX_SCHEMA_DEPTH:
                stack.extend((child, depth + 1) for child in item)
    return deepest


def _keywords(schema: Mapping[str, Any], names: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    """(keyword, value) of every string-valued key of `names` in the schema (the root's
    own `$id` excepted: it only names the schema)."""
    stack: list[tuple[object, bool]] = [(schema, True)]
    while stack:
        item, root = stack.pop()
        if isinstance(item, Mapping):
            for key, value in item.items():
                if key in names and isinstance(value, str) and not (root and key == "$id"):
                    yield key, value
                stack.append((value, False))
        elif isinstance(item, list | tuple):
            stack.extend((child, False) for child in item)


# --- the answer -----------------------------------------------------------------------


def check_answer(text: str, fmt: ResponseFormat) -> str:
    """The model's answer as the JSON text the request asked for (unfenced, stripped), or
    `InvalidModelOutput` saying what is wrong with it."""
    body = unfence(text)
    try:
        document = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidModelOutput("the answer is not valid JSON") from exc
    if not isinstance(document, dict):
        raise InvalidModelOutput("the answer is JSON but not an object")
    if fmt.type == "json_schema" and fmt.schema is not None:
        _validate(document, fmt.schema)
    return body


def unfence(text: str) -> str:
    """The text stripped, and without its markdown fence when it is exactly one fenced
    block (```json or ```); any other text is returned stripped, as is."""
    stripped = text.strip()
    fenced = _FENCE.fullmatch(stripped)
    return fenced.group("body").strip() if fenced else stripped


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _validate(document: dict[str, Any], schema: Mapping[str, Any]) -> None:
    validator = Draft202012Validator(schema, registry=_NO_RETRIEVAL)
    try:
        errors = sorted(validator.iter_errors(document), key=_error_order)
    except Unresolvable as exc:  # parse_response_format rejects these; a hand-built schema
        raise InvalidRequest(f"{_SCHEMA_FIELD} has a $ref that points nowhere") from exc
    if errors:
        error = errors[0]
        raise InvalidModelOutput(
            f"the answer does not match the schema at {_pointer(error.absolute_path)}: "
            f"{_reason(error)}"
        )


def _error_order(error: ValidationError) -> tuple[int, str]:
    # Shallowest first, so the message names the outermost problem.
    return len(error.absolute_path), str(list(error.absolute_path))


def _reason(error: ValidationError) -> str:
    """A short reason that names schema rules and schema values, never the model's."""
    keyword = str(error.validator)
    rule: Any = error.validator_value
    instance = error.instance
    if keyword == "required" and isinstance(instance, dict) and isinstance(rule, list):
        missing = [str(name) for name in rule if name not in instance]
        return f"missing required property {', '.join(repr(name) for name in missing)}"
    if keyword == "type":
        return f"expected type {' or '.join(rule) if isinstance(rule, list) else rule}"
    if keyword in ("additionalProperties", "unevaluatedProperties"):
        return "has properties the schema does not allow"
    if keyword == "enum":
        return "is not one of the allowed values"
    if keyword == "const":
        return "is not the required value"
    if keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"breaks '{keyword}' ({rule})"
    return f"breaks the schema rule '{keyword}'"


def _pointer(path: Iterable[object]) -> str:
    """A JSON Pointer to a location, shortened; "the top level" for the root."""
    parts = [str(part).replace("~", "~0").replace("/", "~1")[:40] for part in path]
    if not parts:
        return "the top level"
    pointer = "/" + "/".join(parts)
    return pointer if len(pointer) <= _MAX_POINTER else pointer[: _MAX_POINTER - 3] + "..."


# --- talking to the model ---------------------------------------------------------------


def json_instruction(fmt: ResponseFormat) -> str:
    """One sentence asking for a single JSON object (following the schema, if any)."""
    if fmt.type == "json_schema" and fmt.schema is not None:
        return (
            "Answer with a single JSON object only, with no other text and no markdown, "
            f"following this JSON Schema: {_compact(fmt.schema)}"
        )
    return "Answer with a single JSON object only, with no other text and no markdown."


def repair_messages(
    messages: Sequence[ChatMessage], answer: str, problem: str, fmt: ResponseFormat
) -> list[dict[str, Any]]:
    """The conversation again, plus the model's unusable answer and a request for the
    corrected JSON alone."""
    ask = f"That answer cannot be used: {problem}. Reply with only the corrected JSON object"
    if fmt.type == "json_schema" and fmt.schema is not None:
        ask += f", following this JSON Schema: {_compact(fmt.schema)}"
    ask += ". No other text and no markdown."
    return [
        *(dict(message) for message in messages),
        {"role": "assistant", "content": answer},
        {"role": "user", "content": ask},
    ]


def _compact(schema: Mapping[str, Any]) -> str:
    return json.dumps(dict(schema), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
