"""Routes: which request topic is answered on which reply topic, in which shape.

A route is request topic → reply topic, with a request/reply shape and defaults
(model, system prompt, response format, max tokens). Two are built in, as the
original Chater service served them:

- `chat`: `gpt-send` → `gpt-response` (the chat shapes of the README);
- `photo`: `eater-send-photo` → `photo-analysis-response` (photo analysis: `{prompt,
  photo, user_email, image_id, ...}` → `{analysis, user_email, image_id, ...}`).

More come from a routes file (ROUTES_FILE, YAML or JSON); an entry named like a
built-in one replaces it:

    routes:
      - name: gemini
        request_topic: gemini-send
        reply_topic: gemini-response
        shape: chat                  # chat (default) or photo
        model: gemini-2.0-flash      # optional defaults of the route
        system_prompt: "..."
        max_tokens: 800
        response_format: {type: json_object}

Parsing and validation only (pure, but for reading the file); `config.py` loads them
at start-up so a bad file stops the service with one line naming the entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chater_gpt.config_files import describe_problems, parse_document, read_document
from chater_gpt.domain import ResponseFormat
from chater_gpt.errors import ChaterError, ConfigError
from chater_gpt.json_output import parse_response_format

VARIABLE = "ROUTES_FILE"
DEV_SUFFIX = "_dev"

PHOTO_SYSTEM_PROMPT = (
    "You analyse photos as the user's instructions say. Answer with one JSON object only, "
    "no prose and no markdown."
)


class RouteShape(StrEnum):
    """The request and reply shapes a route speaks."""

    CHAT = "chat"
    PHOTO = "photo"


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    request_topic: str
    reply_topic: str
    shape: RouteShape = RouteShape.CHAT
    model: str | None = None
    system_prompt: str | None = None
    max_tokens: int | None = None
    response_format: ResponseFormat | None = None


class _RouteEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    request_topic: str = Field(min_length=1, max_length=249)
    reply_topic: str = Field(min_length=1, max_length=249)
    shape: RouteShape = RouteShape.CHAT
    model: str | None = Field(default=None, min_length=1, max_length=100)
    system_prompt: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    response_format: dict[str, Any] | None = None


class _RoutesDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    routes: list[dict[str, Any]] = Field(default_factory=list)


def builtin_routes(
    *, chat_request: str, chat_reply: str, photo_request: str, photo_reply: str
) -> list[Route]:
    """The original service's two routes; an empty photo request topic turns photo off."""
    routes = [Route("chat", chat_request, chat_reply, RouteShape.CHAT)]
    if photo_request:
        routes.append(
            Route(
                "photo",
                photo_request,
                photo_reply,
                RouteShape.PHOTO,
                system_prompt=PHOTO_SYSTEM_PROMPT,
                response_format=ResponseFormat("json_object"),
            )
        )
    return routes


def parse_routes(text: str, *, yaml: bool) -> list[Route]:
    """The routes of a routes document, or ConfigError naming the first bad entry."""
    data = parse_document(text, yaml=yaml, variable=VARIABLE)
    try:
        document = _RoutesDocument.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise ConfigError(f"{VARIABLE}: {describe_problems(exc)}") from None
    routes = [_route(index, entry) for index, entry in enumerate(document.routes)]
    names = [route.name for route in routes]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"{VARIABLE}: route {name!r} is defined twice")
    return routes


def load_routes(path: Path) -> list[Route]:
    text, yaml = read_document(path, variable=VARIABLE)
    return parse_routes(text, yaml=yaml)


def resolve_routes(builtin: Sequence[Route], extra: Iterable[Route], *, dev: bool) -> list[Route]:
    """Built-in routes overridden (by name) or extended by the file's; `_dev` topics when
    IS_DEV is set. Raises ConfigError when two routes read one topic, or a route would
    answer on a topic that some route reads (it would consume its own replies)."""
    by_name = {route.name: route for route in builtin}
    for route in extra:
        by_name[route.name] = route
    routes = list(by_name.values())
    if dev:
        routes = [
            replace(
                r,
                request_topic=r.request_topic + DEV_SUFFIX,
                reply_topic=r.reply_topic + DEV_SUFFIX,
            )
            for r in routes
        ]
    readers: dict[str, str] = {}
    for route in routes:
        other = readers.setdefault(route.request_topic, route.name)
        if other != route.name:
            raise ConfigError(
                f"routes {other!r} and {route.name!r} both read topic {route.request_topic!r}"
            )
    for route in routes:
        if route.reply_topic in readers:
            raise ConfigError(
                f"route {route.name!r} replies on {route.reply_topic!r}, "
                f"which route {readers[route.reply_topic]!r} reads"
            )
    return routes


def _route(index: int, raw: dict[str, Any]) -> Route:
    label = f"route {raw.get('name')!r}" if isinstance(raw.get("name"), str) else f"routes[{index}]"
    try:
        entry = _RouteEntry.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{VARIABLE}: {label}: {describe_problems(exc)}") from None
    response_format = None
    if entry.response_format is not None:
        try:
            response_format = parse_response_format(entry.response_format)
        except ChaterError as exc:
            raise ConfigError(f"{VARIABLE}: {label}: {exc.message}") from None
    system_prompt = entry.system_prompt
    if system_prompt is None and entry.shape is RouteShape.PHOTO:
        system_prompt = PHOTO_SYSTEM_PROMPT
    if response_format is None and entry.shape is RouteShape.PHOTO:
        response_format = ResponseFormat("json_object")  # the food-diary parses JSON
    return Route(
        name=entry.name,
        request_topic=entry.request_topic,
        reply_topic=entry.reply_topic,
        shape=entry.shape,
        model=entry.model,
        system_prompt=system_prompt,
        max_tokens=entry.max_tokens,
        response_format=response_format,
    )
