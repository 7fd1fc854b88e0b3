"""Raw Kafka key and value → a validated request, for one route. Pure; never raises.

`RequestDecoder` reads the route's request shape (chat or photo analysis), applies
the route's and the service's defaults, and returns a `ChatRequest`, a
`ForgetRequest`, or a `RejectedRequest` carrying the error to answer with. It also
decides whose request it is and which stored history it may use (README,
"Conversation context"):

- a placeholder `user_email` (`unknown`, empty, ...) is no one: no stored history,
  no per-user limits or usage;
- a request that brings its own `context` is answered from it; stored history is
  used only when it also names a `conversation_id`;
- photo analysis never uses stored history.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from chater_gpt.contracts import (
    CHAT_STYLE,
    ChatRequest,
    ContextTurn,
    Decoded,
    ForgetRequest,
    ForgetValue,
    PhotoValue,
    RejectedRequest,
    ReplyStyle,
    RequestDefaults,
    RequestValue,
)
from chater_gpt.domain import ConversationRef, ImageInput, ResponseFormat, Turn
from chater_gpt.errors import (
    ChaterError,
    InvalidJson,
    InvalidRequest,
    ModelNotAllowed,
    PayloadTooLarge,
)
from chater_gpt.images import parse_images
from chater_gpt.json_output import parse_response_format
from chater_gpt.routes import Route, RouteShape

M = TypeVar("M", bound=BaseModel)

# The request fields a photo reply carries back, in this order (LEGACY-TRAFFIC.md).
PHOTO_ECHO_FIELDS = ("user_email", "image_id", "timestamp", "date")

CHAT_ROUTE = Route("chat", "gpt-send", "gpt-response")
PHOTO_STYLE = ReplyStyle(RouteShape.PHOTO)


class RequestDecoder:
    def __init__(self, defaults: RequestDefaults, route: Route = CHAT_ROUTE) -> None:
        self._defaults = defaults
        self._route = route

    @property
    def route(self) -> Route:
        return self._route

    def decode(self, kafka_key: bytes | None, raw: bytes | None) -> Decoded:
        key = _decode_key(kafka_key)
        try:
            return self._decode(key, raw)
        except _Rejected as rejected:
            style = rejected.style
            if self._route.shape is RouteShape.PHOTO and style.shape is not RouteShape.PHOTO:
                style = PHOTO_STYLE  # unreadable: nothing to echo, but the photo shape
            return RejectedRequest(key=rejected.key, error=rejected.error, style=style)

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
        if self._route.shape is RouteShape.PHOTO:
            return self._photo_request(key, value)
        if key is None:
            raise _Rejected(None, InvalidRequest("the request has no key"))
        if value.get("action") is not None:
            forget = _validate(ForgetValue, value, key)
            if self._is_placeholder(forget.user_email):
                raise _Rejected(
                    key, InvalidRequest("user_email is a placeholder: nothing is stored for it")
                )
            return ForgetRequest(key=key, user_email=forget.user_email)
        return self._chat_request(key, _validate(RequestValue, value, key))

    def _chat_request(self, key: str, value: RequestValue) -> ChatRequest:
        message = self._checked_message(key, value.message, CHAT_STYLE)
        images = self._images(key, value.images, CHAT_STYLE)
        response_format = self._response_format(key, value.response_format, CHAT_STYLE)
        context = normalise_context(value.context)
        user = None if self._is_placeholder(value.user_email) else value.user_email
        # The producer keeps the conversation when it sends one (even an empty one, as the
        # UI does for a first question): stored history is not mixed in unless the
        # request names a stored conversation as well.
        producer_kept = value.context is not None
        conversation = None
        if user is not None and (value.conversation_id is not None or not producer_kept):
            conversation = ConversationRef(user, value.conversation_id)
        return ChatRequest(
            key=key,
            message=message,
            user=user,
            conversation=conversation,
            context=context,
            model=self._model(key, value.model, images, CHAT_STYLE),
            max_tokens=self._max_tokens(key, value.max_tokens, CHAT_STYLE),
            temperature=(
                self._defaults.temperature if value.temperature is None else value.temperature
            ),
            system_prompt=value.system_prompt or self._route.system_prompt,
            images=images,
            request_id=value.request_id,
            app_code=value.app_code,
            response_format=response_format,
            stream=value.stream,
        )

    def _photo_request(self, key: str | None, value: dict[str, Any]) -> ChatRequest:
        style = ReplyStyle(RouteShape.PHOTO, _photo_echo(value))
        if key is None:
            raise _Rejected(None, InvalidRequest("the request has no key"), style)
        photo = _validate(PhotoValue, value, key, style)
        message = self._checked_message(key, photo.prompt, style)
        images = self._images(key, [photo.photo], style)
        user = None if self._is_placeholder(photo.user_email) else photo.user_email
        return ChatRequest(
            key=key,
            message=message,
            user=user,
            conversation=None,  # each photo stands alone
            context=(),
            model=self._model(key, None, images, style),
            max_tokens=self._max_tokens(key, None, style),
            temperature=self._defaults.temperature,
            system_prompt=self._route.system_prompt,
            images=images,
            request_id=None,
            app_code=None,
            response_format=self._route.response_format,
            style=style,
        )

    # --- fields ------------------------------------------------------------------

    def _is_placeholder(self, user_email: str | None) -> bool:
        if user_email is None:
            return True
        name = user_email.strip().lower()
        return not name or name in self._defaults.placeholder_identities

    def _checked_message(self, key: str, message: str, style: ReplyStyle) -> str:
        if not message.strip():
            raise _Rejected(key, InvalidRequest("message must not be empty"), style)
        limit = self._defaults.max_message_chars
        if len(message) > limit:
            raise _Rejected(key, PayloadTooLarge(f"message longer than {limit} characters"), style)
        return message

    def _images(self, key: str, raw: list[str], style: ReplyStyle) -> tuple[ImageInput, ...]:
        try:
            return tuple(parse_images(raw, self._defaults.images))
        except ChaterError as exc:
            raise _Rejected(key, exc, style) from None

    def _response_format(
        self, key: str, raw: dict[str, Any] | None, style: ReplyStyle
    ) -> ResponseFormat | None:
        if raw is None:
            return self._route.response_format
        try:
            return parse_response_format(raw)
        except ChaterError as exc:
            raise _Rejected(key, exc, style) from None

    def _model(
        self, key: str, requested: str | None, images: tuple[ImageInput, ...], style: ReplyStyle
    ) -> str:
        limits = self._defaults
        model = requested or self._route.model or (limits.vision_model if images else limits.model)
        if model not in limits.allowed_models:
            raise _Rejected(key, ModelNotAllowed(f"model {model!r} is not allowed"), style)
        return model

    def _max_tokens(self, key: str, requested: int | None, style: ReplyStyle) -> int:
        cap = self._defaults.max_tokens_cap
        max_tokens = requested or self._route.max_tokens or self._defaults.max_tokens
        if max_tokens > cap:
            raise _Rejected(key, InvalidRequest(f"max_tokens must be at most {cap}"), style)
        return max_tokens


class _Rejected(Exception):
    def __init__(self, key: str | None, error: ChaterError, style: ReplyStyle = CHAT_STYLE) -> None:
        self.key = key
        self.error = error
        self.style = style


def _decode_key(kafka_key: bytes | None) -> str | None:
    if not kafka_key:
        return None
    try:
        return kafka_key.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _photo_echo(value: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The fields a photo reply carries back, taken leniently: even a request that fails
    validation is answered with the user and image it named."""
    echo = []
    for name in PHOTO_ECHO_FIELDS:
        field = value.get(name)
        # Only what the reply schema allows: strings, and an integer image_id.
        integer_id = name == "image_id" and isinstance(field, int) and not isinstance(field, bool)
        if isinstance(field, str) or integer_id:
            echo.append((name, field))
    return tuple(echo)


def _validate(model: type[M], value: dict[str, Any], key: str, style: ReplyStyle = CHAT_STYLE) -> M:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise _Rejected(key, InvalidRequest(describe_invalid(exc)), style) from None


def describe_invalid(exc: ValidationError) -> str:
    """Name the offending fields without echoing their values."""
    problems = []
    for item in exc.errors(include_input=False, include_url=False)[:3]:
        where = ".".join(str(part) for part in item["loc"]) or "value"
        problems.append(f"{where}: {item['msg']}")
    return "invalid request: " + "; ".join(problems)


def normalise_context(context: str | list[str] | list[ContextTurn] | None) -> tuple[Turn, ...]:
    """The producer's earlier conversation as turns, in order, before the new question.

    A string is one earlier assistant turn (the legacy UI sends its whole earlier
    conversation as one string); a list of strings alternates roles so that the last
    one is the assistant's, directly before the new user message.
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
