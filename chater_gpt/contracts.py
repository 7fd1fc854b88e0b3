"""The message contract of every route: `gpt-send` → `gpt-response` (chat) and
`eater-send-photo` → `photo-analysis-response` (photo analysis).

Pydantic models define the wire format (and export it as JSON Schema, committed
under `schemas/`); the dataclasses below are the decoded, validated requests the
rest of the service works with. `decoder.py` turns raw Kafka bytes into them and
`replies.py` writes reply bytes; tests check both against the exported schemas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from chater_gpt.domain import ConversationRef, ImageInput, ResponseFormat, Turn
from chater_gpt.errors import ChaterError
from chater_gpt.images import ImageLimits
from chater_gpt.routes import RouteShape

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
    user_email: str | None = Field(
        default=None,
        max_length=320,
        description="The conversation owner. Placeholders (`unknown`, empty, ...) are no one.",
    )
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
    response_format: dict[str, Any] | None = Field(
        default=None,
        description="OpenAI's form: {type: json_object} or {type: json_schema, json_schema}.",
    )
    stream: bool = Field(
        default=False,
        description=(
            "Publish the answer's text to the stream topic (and to the reply address, if "
            "any) as it is generated; the reply still carries the whole answer and usage."
        ),
    )


class PhotoValue(BaseModel):
    """The `value` of a photo-analysis request on `eater-send-photo` (legacy shape)."""

    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(description="The instructions: what to analyse, the JSON to answer.")
    photo: str = Field(description="The image: base64 (no data: prefix), or a data URL.")
    user_email: str | None = Field(default=None, max_length=320)
    image_id: str | int | None = None
    timestamp: str | None = None
    date: str | None = None


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


def _provider_field() -> Any:
    return Field(default=None, description="Who answered: openai, anthropic, gemini or koboldcpp.")


def _cost_field() -> Any:
    return Field(
        default=None,
        ge=0,
        description="The answer's cost in USD at the model's list prices (model catalogue); "
        "0 for models without a price and for cached answers.",
    )


class ReplyValue(BaseModel):
    response: str
    model: str
    provider: str | None = _provider_field()
    usage: Usage
    cost: float | None = _cost_field()
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


class PhotoReplyValue(BaseModel):
    """The answer on `photo-analysis-response`: what the food-diary service parses."""

    analysis: str = Field(description="The model's answer: a JSON document as text, unfenced.")
    user_email: str | None = None
    image_id: str | int | None = None
    timestamp: str | None = Field(default=None, description="The request's, when it had one.")
    date: str | None = Field(default=None, description="The request's, when it had one.")
    model: str
    provider: str | None = _provider_field()
    usage: Usage
    cost: float | None = _cost_field()


class PhotoErrorValue(BaseModel):
    """An error on `photo-analysis-response`: `error` at the top, never `analysis`."""

    error: ErrorBody
    user_email: str | None = None
    image_id: str | int | None = None
    timestamp: str | None = None
    date: str | None = None


class PhotoRequestEnvelope(BaseModel):
    key: str
    value: PhotoValue


class PhotoResponseEnvelope(BaseModel):
    key: str
    value: PhotoReplyValue | PhotoErrorValue


class ForgetAck(BaseModel):
    forgotten: str = Field(description="The user whose history was deleted.")
    conversations_deleted: int
    timestamp: str


class ResponseEnvelope(BaseModel):
    """What chater-gpt puts on `gpt-response`, under the request's key."""

    key: str
    value: ReplyValue | ErrorValue | ForgetAck


# --- streams (gpt-stream) ------------------------------------------------------

# A header with this name marks a stream chunk on a gateway's reply topic, where the
# chunks of its requests and their replies arrive together.
STREAM_HEADER = "chater-stream"


class StreamChunk(BaseModel):
    """One message of a request's stream on `gpt-stream` (keyed by the request's key, so a
    stream is ordered): a text delta, or its end. The reply on the reply topic follows
    with the whole answer and its exact usage."""

    index: int = Field(ge=0, description="Position in the stream, from 0.")
    attempt: str = Field(
        description="Which processing of the request produced it: a request replayed after "
        "a crash streams again from index 0 under a new attempt."
    )
    delta: str | None = Field(default=None, description="The next piece of the answer's text.")
    done: bool = Field(default=False, description="The last message of the stream.")
    finish_reason: str | None = None
    usage: Usage | None = None
    error: ErrorBody | None = Field(default=None, description="Set when the stream broke.")


class StreamEnvelope(BaseModel):
    key: str
    value: StreamChunk


def json_schemas() -> dict[str, dict[str, Any]]:
    """The contract as JSON Schema, by file name (committed under `schemas/`)."""
    return {
        "gpt-send.schema.json": RequestEnvelope.model_json_schema(by_alias=True),
        "gpt-response.schema.json": ResponseEnvelope.model_json_schema(),
        "gpt-stream.schema.json": StreamEnvelope.model_json_schema(),
        "eater-send-photo.schema.json": PhotoRequestEnvelope.model_json_schema(),
        "photo-analysis-response.schema.json": PhotoResponseEnvelope.model_json_schema(),
    }


# --- decoded requests (internal) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplyStyle:
    """How a route's replies look: its shape, plus request fields echoed onto every reply
    (photo analysis: user_email, image_id, timestamp, date), in order."""

    shape: RouteShape = RouteShape.CHAT
    echo: tuple[tuple[str, Any], ...] = ()


CHAT_STYLE = ReplyStyle()


@dataclass(frozen=True, slots=True)
class ChatRequest:
    key: str
    message: str
    # Whose request it is (limits, budgets, usage): None for placeholders like "unknown".
    user: str | None
    # Stored history to read and extend; None when the request must not use any.
    conversation: ConversationRef | None
    context: tuple[Turn, ...]
    model: str
    max_tokens: int
    temperature: float
    system_prompt: str | None
    images: tuple[ImageInput, ...]
    request_id: str | None
    app_code: str | None
    response_format: ResponseFormat | None = None
    style: ReplyStyle = CHAT_STYLE
    # Publish the answer's text as it is generated (the stream topic, the reply address).
    stream: bool = False

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
    style: ReplyStyle = CHAT_STYLE

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
    route: str = "chat"
    # The request's reply address (a gateway's reply topic), when it named an allowed one.
    reply_to: str | None = None
    # Its correlation and trace headers, copied onto its reply and its stream's chunks.
    headers: tuple[tuple[str, bytes], ...] = ()
    # A job of the job API (the `job-id` header): its progress is recorded in the job store.
    job_id: str | None = None


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
    # user_email values that name no one (lower case); empty is always one.
    placeholder_identities: frozenset[str] = frozenset()
