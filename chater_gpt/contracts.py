"""The message contract of `gpt-send` and `gpt-response`.

Pydantic models define the wire format (and export it as JSON Schema, committed
under `schemas/`). `RequestDecoder` turns raw Kafka bytes into a validated
`ChatRequest`, a `ForgetRequest`, or a `RejectedRequest` carrying the error to
answer with; it never raises. The reply builders write bytes with orjson (the hot
path); tests check that what they write validates against the exported schema.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import orjson
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from chater_gpt.backends.base import ChatResult
from chater_gpt.domain import ConversationRef, ImageInput, Turn
from chater_gpt.errors import (
    ChaterError,
    InvalidJson,
    InvalidRequest,
    ModelNotAllowed,
    PayloadTooLarge,
)
from chater_gpt.images import ImageLimits, parse_images

M = TypeVar("M", bound=BaseModel)

# --- wire models: requests ---------------------------------------------------


class ContextTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


def _message_or_question(schema: dict[str, Any]) -> None:
    """JSON Schema for the alias: either `message` or `question` is required."""
    properties = schema["properties"]
    properties["question"] = {**properties["message"], "description": "Alias of `message`."}
    schema["required"] = [name for name in schema.get("required", []) if name != "message"]
    if not schema["required"]:
        del schema["required"]
    schema["anyOf"] = [{"required": ["message"]}, {"required": ["question"]}]


class RequestValue(BaseModel):
    """The `value` of a chat request on `gpt-send`."""

    model_config = ConfigDict(
        extra="ignore", populate_by_name=True, json_schema_extra=_message_or_question
    )

    message: str = Field(
        validation_alias=AliasChoices("message", "question"),
        description="The user's prompt. `question` is accepted as an alias (legacy producers).",
    )
    user_email: str | None = Field(default=None, min_length=1, max_length=320)
    conversation_id: str | None = Field(default=None, min_length=1, max_length=200)
    context: str | list[str] | list[ContextTurn] | None = Field(
        default=None, description="Earlier conversation supplied by the producer."
    )
    model: str | None = Field(default=None, min_length=1, max_length=100)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    system_prompt: str | None = None
    images: list[str] = Field(
        default_factory=list, description="Base64 images, data URLs or https URLs."
    )
    request_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Idempotency id: a request repeated with the same id is answered once.",
    )
    app_code: str | None = Field(default=None, min_length=1, max_length=100)


class ForgetValue(BaseModel):
    """A control message: delete every stored conversation of one user."""

    model_config = ConfigDict(extra="ignore")

    action: Literal["forget"]
    user_email: str = Field(min_length=1, max_length=320)


class RequestEnvelope(BaseModel):
    """What producers put on `gpt-send` (the Kafka key carries the same `key`)."""

    key: str
    value: RequestValue | ForgetValue


# --- wire models: replies ----------------------------------------------------


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ReplyValue(BaseModel):
    response: str
    model: str
    usage: Usage
    finish_reason: str
    timestamp: str = Field(description="ISO-8601 UTC time the reply was built.")
    processing_time: float = Field(description="Seconds from consuming the request to reply.")
    cached: bool = Field(default=False, description="True when served from the response cache.")


class ErrorBody(BaseModel):
    code: str = Field(description="One of the documented error codes (README).")
    message: str
    retryable: bool
    retry_after: float | None = None


class ErrorValue(BaseModel):
    error: ErrorBody
    timestamp: str


class ForgetAck(BaseModel):
    forgotten: str = Field(description="The user whose history was deleted.")
    conversations_deleted: int
    timestamp: str


class ResponseEnvelope(BaseModel):
    """What chater-gpt puts on `gpt-response`, under the request's key."""

    key: str
    value: ReplyValue | ErrorValue | ForgetAck


def json_schemas() -> dict[str, dict[str, Any]]:
    """The contract as JSON Schema, by file name (committed under `schemas/`)."""
    return {
        "gpt-send.schema.json": RequestEnvelope.model_json_schema(by_alias=True),
        "gpt-response.schema.json": ResponseEnvelope.model_json_schema(),
    }


# --- decoded requests (internal) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatRequest:
    key: str
    message: str
    conversation: ConversationRef | None
    context: tuple[Turn, ...]
    model: str
    max_tokens: int
    temperature: float
    system_prompt: str | None
    images: tuple[ImageInput, ...]
    request_id: str | None
    app_code: str | None

    @property
    def ordering_key(self) -> str:
        """Requests with the same ordering key are processed one after another."""
        return self.conversation.storage_key if self.conversation else self.key


@dataclass(frozen=True, slots=True)
class ForgetRequest:
    key: str
    user_email: str

    @property
    def ordering_key(self) -> str:
        return self.key


@dataclass(frozen=True, slots=True)
class RejectedRequest:
    """Input that must be answered with an error (or, without a key, only logged)."""

    key: str | None
    error: ChaterError

    @property
    def ordering_key(self) -> str:
        return self.key or ""


Decoded = ChatRequest | ForgetRequest | RejectedRequest


@dataclass(frozen=True, slots=True)
class Job:
    """A decoded request plus what the pipeline knows about its message."""

    request: Decoded
    dedupe_id: str
    received_at: float  # time.monotonic() when consumed
    correlation_id: str


@dataclass(frozen=True, slots=True)
class RequestDefaults:
    """The configuration the decoder applies to every request."""

    model: str
    vision_model: str
    allowed_models: frozenset[str]
    max_tokens: int
    max_tokens_cap: int
    temperature: float
    max_payload_bytes: int
    max_message_chars: int
    images: ImageLimits


class RequestDecoder:
    """Raw Kafka key/value → `Decoded`. Pure; never raises."""

    def __init__(self, defaults: RequestDefaults) -> None:
        self._defaults = defaults

    def decode(self, kafka_key: bytes | None, raw: bytes | None) -> Decoded:
        key = _decode_key(kafka_key)
        try:
            return self._decode(key, raw)
        except _Rejected as rejected:
            return RejectedRequest(key=rejected.key, error=rejected.error)

    def _decode(self, key: str | None, raw: bytes | None) -> Decoded:
        limits = self._defaults
        if raw is None or not raw:
            raise _Rejected(key, InvalidJson("the message value is empty"))
        if len(raw) > limits.max_payload_bytes:
            raise _Rejected(
                key, PayloadTooLarge(f"message larger than {limits.max_payload_bytes} bytes")
            )
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError:
            # orjson rejects invalid UTF-8 too; tell the two apart for the caller.
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _Rejected(key, InvalidJson("the message is not valid UTF-8")) from None
            raise _Rejected(key, InvalidJson("the message is not valid JSON")) from None
        if not isinstance(document, dict):
            raise _Rejected(key, InvalidRequest("the message must be a JSON object"))
        value: Any = document
        if isinstance(document.get("value"), dict):
            envelope_key = document.get("key")
            if isinstance(envelope_key, str | int) and str(envelope_key):
                key = str(envelope_key)
            value = document["value"]
        if key is None:
            raise _Rejected(None, InvalidRequest("the request has no key"))
        if value.get("action") is not None:
            forget = _validate(ForgetValue, value, key)
            return ForgetRequest(key=key, user_email=forget.user_email)
        return self._chat_request(key, _validate(RequestValue, value, key))

    def _chat_request(self, key: str, value: RequestValue) -> ChatRequest:
        limits = self._defaults
        message = value.message
        if not message.strip():
            raise _Rejected(key, InvalidRequest("message must not be empty"))
        if len(message) > limits.max_message_chars:
            raise _Rejected(
                key, PayloadTooLarge(f"message longer than {limits.max_message_chars} characters")
            )
        try:
            images = tuple(parse_images(value.images, limits.images))
        except ChaterError as exc:
            raise _Rejected(key, exc) from None
        model = value.model or (limits.vision_model if images else limits.model)
        if model not in limits.allowed_models:
            raise _Rejected(key, ModelNotAllowed(f"model {model!r} is not allowed"))
        max_tokens = value.max_tokens or limits.max_tokens
        if max_tokens > limits.max_tokens_cap:
            raise _Rejected(
                key, InvalidRequest(f"max_tokens must be at most {limits.max_tokens_cap}")
            )
        conversation = (
            ConversationRef(value.user_email, value.conversation_id) if value.user_email else None
        )
        return ChatRequest(
            key=key,
            message=message,
            conversation=conversation,
            context=normalise_context(value.context),
            model=model,
            max_tokens=max_tokens,
            temperature=limits.temperature if value.temperature is None else value.temperature,
            system_prompt=value.system_prompt,
            images=images,
            request_id=value.request_id,
            app_code=value.app_code,
        )


class _Rejected(Exception):
    def __init__(self, key: str | None, error: ChaterError) -> None:
        self.key = key
        self.error = error


def _decode_key(kafka_key: bytes | None) -> str | None:
    if not kafka_key:
        return None
    try:
        return kafka_key.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _validate(model: type[M], value: dict[str, Any], key: str) -> M:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise _Rejected(key, InvalidRequest(describe_invalid(exc))) from None


def describe_invalid(exc: ValidationError) -> str:
    """Name the offending fields without echoing their values."""
    problems = []
    for item in exc.errors(include_input=False, include_url=False)[:3]:
        where = ".".join(str(part) for part in item["loc"]) or "value"
        problems.append(f"{where}: {item['msg']}")
    return "invalid request: " + "; ".join(problems)


def normalise_context(context: str | list[str] | list[ContextTurn] | None) -> tuple[Turn, ...]:
    """The producer's earlier conversation as turns, in order, before the new question.

    A string is one earlier assistant turn (the legacy producers sent the previous
    answer); a list of strings alternates roles so that the last one is the
    assistant's, directly before the new user message.
    """
    if context is None:
        return ()
    if isinstance(context, str):
        return (Turn("assistant", context),) if context.strip() else ()
    turns: list[Turn] = []
    for index, item in enumerate(context):
        if isinstance(item, ContextTurn):
            turns.append(Turn(item.role, item.content))
        elif isinstance(item, str):
            from_end = len(context) - index
            turns.append(Turn("assistant" if from_end % 2 == 1 else "user", item))
    return tuple(turn for turn in turns if turn.content.strip())


# --- reply bytes ---------------------------------------------------------------


def utc_timestamp(now: datetime | None = None) -> str:
    moment = now or datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def reply_bytes(
    key: str, result: ChatResult, processing_time: float, *, cached: bool = False
) -> bytes:
    value: dict[str, Any] = {
        "response": result.text,
        "model": result.model,
        "usage": {
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "total_tokens": result.total_tokens,
        },
        "finish_reason": result.finish_reason,
        "timestamp": utc_timestamp(),
        "processing_time": round(processing_time, 4),
    }
    if cached:
        value["cached"] = True
    return orjson.dumps({"key": key, "value": value})


def error_bytes(key: str, error: ChaterError) -> bytes:
    body: dict[str, Any] = {
        "code": error.code.value,
        "message": error.message,
        "retryable": error.retryable,
    }
    if error.retry_after is not None:
        body["retry_after"] = round(error.retry_after, 3)
    return orjson.dumps({"key": key, "value": {"error": body, "timestamp": utc_timestamp()}})


def forget_ack_bytes(key: str, user_email: str, deleted: int) -> bytes:
    value = {
        "forgotten": user_email,
        "conversations_deleted": deleted,
        "timestamp": utc_timestamp(),
    }
    return orjson.dumps({"key": key, "value": value})


def content_fingerprint(parts: Sequence[bytes]) -> str:
    """A short stable digest of request content, for idempotency ids."""
    digest = hashlib.blake2b(digest_size=12)
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()
