"""OpenAI's chat-completion shapes, and their translation to and from the core's messages.

`ChatCompletionRequest` is what OpenAI clients send; `to_core_request` turns it into the
value of a request on the chat route (`contracts.RequestValue`'s fields); `completion`
turns the core's reply value into OpenAI's `chat.completion`. Pure: no I/O.

Mapping: system (and developer) messages → `system_prompt`; the last message, which must
be the user's → `message` and its `images`; earlier user and assistant turns → `context`
(their text: images of earlier turns are not resent). The owner (`user`) becomes
`user_email`, prefixed by the caller's tenant so that two tenants' users never share a
history.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chater_gpt.errors import InvalidRequest


class ImageUrl(BaseModel):
    url: str = Field(min_length=1)
    detail: str | None = None


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ImagePart(BaseModel):
    type: Literal["image_url"]
    image_url: ImageUrl


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart | ImagePart] | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["text", "json_object", "json_schema"]


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The fields of OpenAI's request the gateway honours; others are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = Field(default=None, min_length=1, max_length=100)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    response_format: ResponseFormat | None = None
    user: str | None = Field(default=None, max_length=256)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=1)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sends the request: the API key's tenant, the owner, the conversation."""

    tenant: str | None = None
    user: str | None = None
    conversation: str | None = None


def parse_request(body: Any) -> ChatCompletionRequest:
    """Validate OpenAI's request; InvalidRequest names the first bad field (as `param`)."""
    try:
        return ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        param = ".".join(str(part) for part in first["loc"])
        raise InvalidRequest(f"{param}: {first['msg']}") from None


def _text(content: str | list[TextPart | ImagePart] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.text for part in content if isinstance(part, TextPart))


def _images(content: str | list[TextPart | ImagePart] | None) -> list[str]:
    if not isinstance(content, list):
        return []
    return [part.image_url.url for part in content if isinstance(part, ImagePart)]


def owner(caller: Caller, request: ChatCompletionRequest) -> str | None:
    """The conversation owner: the header's or `user`, under the caller's tenant."""
    name = caller.user or request.user
    if not name:
        return None
    return f"{caller.tenant}/{name}" if caller.tenant else name


def to_core_request(
    request: ChatCompletionRequest, caller: Caller, request_id: str
) -> dict[str, Any]:
    """The value of the core's chat request (README, "Message contract")."""
    *earlier, last = request.messages
    if last.role != "user":
        raise InvalidRequest("messages: the last message must be the user's")
    system = [_text(m.content) for m in earlier if m.role in ("system", "developer")]
    context = [
        {"role": m.role, "content": _text(m.content)}
        for m in earlier
        if m.role in ("user", "assistant")
    ]
    value: dict[str, Any] = {"message": _text(last.content), "request_id": request_id}
    optional: dict[str, Any] = {
        "images": _images(last.content),
        "system_prompt": "\n\n".join(system) if system else None,
        "context": context,
        "model": request.model,
        "max_tokens": request.max_completion_tokens or request.max_tokens,
        "temperature": request.temperature,
        "user_email": owner(caller, request),
        "conversation_id": caller.conversation,
        "app_code": caller.tenant,
    }
    if request.response_format is not None and request.response_format.type != "text":
        optional["response_format"] = request.response_format.model_dump()
    if request.stream:
        optional["stream"] = True
    value.update({name: item for name, item in optional.items() if item})
    return value


def completion_chunk(
    completion_id: str,
    model: str,
    *,
    content: str | None = None,
    first: bool = False,
    finish_reason: str | None = None,
) -> dict[str, Any]:
    """One `chat.completion.chunk` of a streamed answer: a piece of its text (the first
    names the role), or its finish."""
    delta: dict[str, Any] = {"role": "assistant"} if first else {}
    if content is not None:
        delta["content"] = content
    return {
        "id": f"chatcmpl-{completion_id}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def usage_chunk(completion_id: str, model: str, usage: dict[str, Any]) -> dict[str, Any]:
    """The last chunk when `stream_options.include_usage` asks for it: no choices, the usage."""
    return {
        "id": f"chatcmpl-{completion_id}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "usage": {
            "prompt_tokens": usage.get("prompt_tokens", 0),
            "completion_tokens": usage.get("completion_tokens", 0),
            "total_tokens": usage.get("total_tokens", 0),
        },
    }


def completion(reply: dict[str, Any], completion_id: str) -> dict[str, Any]:
    """OpenAI's `chat.completion` from the core's reply value."""
    usage = reply.get("usage") or {}
    return {
        "id": f"chatcmpl-{completion_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.get("response", "")},
                "finish_reason": reply.get("finish_reason", "stop"),
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": usage.get("prompt_tokens", 0),
            "completion_tokens": usage.get("completion_tokens", 0),
            "total_tokens": usage.get("total_tokens", 0),
        },
        "system_fingerprint": None,
    }


def model_list(models: Collection[str], owners: Mapping[str, str]) -> dict[str, Any]:
    """OpenAI's `GET /v1/models` answer; `owned_by` is the model's provider (else
    `chater-gpt`: a model the catalogue does not know, served by the default backend)."""
    return {
        "object": "list",
        "data": [
            {
                "id": name,
                "object": "model",
                "created": 0,
                "owned_by": owners.get(name, "chater-gpt"),
            }
            for name in sorted(models)
        ],
    }
