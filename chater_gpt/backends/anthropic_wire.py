"""The Anthropic Messages API wire format (`POST /v1/messages`): the request body for a
`ChatCall` (OpenAI-style chat messages) and the `ChatResult` read from the answer. Pure
functions, no I/O; `anthropic.py` sends them through the SDK.

Messages:
- every system message (wherever it stands) goes into the top-level `system` string,
  in order, joined by a blank line; the API takes no system role among the messages;
- text parts become `text` blocks; empty or blank text is left out (the API rejects
  empty text blocks), and so is a message left with nothing;
- images (`image_url` parts) become `image` blocks: a data URL as a `base64` source with
  its media type (JPEG, PNG, GIF or WebP, which are the only ones the service accepts
  and the API takes), any other URL as a `url` source (the API fetches it); the
  `detail` hint has no Anthropic equivalent and is dropped;
- consecutive messages of one role are merged, as the API requires user and assistant
  to alternate: two plain texts are joined by a blank line (as the context builder
  merges turns), anything else keeps its blocks in order;
- the API requires the first message to be the user's: a conversation that opens with
  an answer (a legacy context turn, or history cut to fit) gets `LEADING_USER_TEXT`
  before it, so the answer is kept rather than dropped.

Sampling: API version 2026-10-21 (the pinned SDK's default) removed `temperature`,
`top_p` and `top_k` (a request with any of them is refused, even at the default
value); earlier versions take `temperature` in 0..1. `temperature` is therefore sent
only when the version in use is earlier (`accepts_sampling`), clamped to 0..1 (OpenAI's
range is 0..2). `seed` has no Anthropic equivalent.

JSON answers (`ChatCall.response_format`): the system prompt carries
`json_output.json_instruction` (unless a message already does). A `json_schema` format
marked `strict` is also sent as the API's structured output, `output_config.format`
(`{"type": "json_schema", "schema"}`), which constrains decoding to the schema; like
OpenAI's strict mode it accepts only a subset of JSON Schema, so a non-strict schema is
asked for by the instruction alone. The service checks the answer either way.

The answer: the text of its `text` blocks, in order; `usage.input_tokens` plus the
cache reads and writes (`cache_read_input_tokens`, `cache_creation_input_tokens`) as
prompt tokens (the cache reads also as cached prompt tokens, priced apart),
`usage.output_tokens` as completion tokens; `stop_reason` in OpenAI's words
(`FINISH_REASONS`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chater_gpt.backends.http import cut_short, stream_error
from chater_gpt.backends.streaming import streamed_result
from chater_gpt.domain import ChatCall, ChatMessage, ChatResult, ResponseFormat
from chater_gpt.errors import BackendBadResponse, InvalidImage, InvalidRequest
from chater_gpt.images import split_data_url
from chater_gpt.json_output import json_instruction

DEFAULT_BASE_URL = "https://api.anthropic.com"
# The `anthropic-version` the pinned SDK (2.14.0) sends; a unit test keeps them equal.
DEFAULT_API_VERSION = "2026-10-21"
MESSAGES_PATH = "/v1/messages"
MODELS_PATH = "/v1/models"  # the model list: the cheap call a half-open probe makes

# The API version that removed the sampling parameters (temperature, top_p, top_k).
SAMPLING_REMOVED_IN = "2026-10-21"
MAX_TEMPERATURE = 1.0

IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
LEADING_USER_TEXT = "(The conversation so far follows.)"

# Anthropic's stop_reason -> OpenAI's finish_reason; others are passed on as they are.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

Block = dict[str, Any]


def accepts_sampling(api_version: str) -> bool:
    """Whether an API version (YYYY-MM-DD) still takes `temperature`."""
    return api_version < SAMPLING_REMOVED_IN


def messages_body(call: ChatCall, *, send_temperature: bool) -> dict[str, Any]:
    """The `POST /v1/messages` body for a call."""
    system, messages = system_and_messages(call.messages, call.response_format)
    body: dict[str, Any] = {"model": call.model, "max_tokens": call.max_tokens}
    if system:
        body["system"] = system
    body["messages"] = messages
    if send_temperature:
        body["temperature"] = min(max(call.temperature, 0.0), MAX_TEMPERATURE)
    fmt = call.response_format
    if fmt is not None and fmt.type == "json_schema" and fmt.schema is not None and fmt.strict:
        body["output_config"] = {"format": {"type": "json_schema", "schema": dict(fmt.schema)}}
    return body


def system_and_messages(
    messages: Sequence[ChatMessage], fmt: ResponseFormat | None = None
) -> tuple[str, list[Block]]:
    """The `system` text and the alternating `messages` (see the module's docstring)."""
    system: list[str] = []
    turns: list[tuple[str, list[Block]]] = []
    for message in messages:
        role = str(message.get("role", "user"))
        content = message.get("content")
        if role == "system":
            text = _plain_text(content)
            if text.strip():
                system.append(text)
            continue
        blocks = content_blocks(content)
        if not blocks:
            continue
        role = "assistant" if role == "assistant" else "user"
        if turns and turns[-1][0] == role:
            turns[-1] = (role, _merged(turns[-1][1], blocks))
        else:
            turns.append((role, blocks))
    if not turns:
        raise InvalidRequest("the conversation has no message with content")
    if turns[0][0] != "user":
        turns.insert(0, ("user", [_text_block(LEADING_USER_TEXT)]))
    if fmt is not None:
        instruction = json_instruction(fmt)
        if not any(instruction in part for part in (*system, *_texts(turns))):
            system.append(instruction)
    return "\n\n".join(system), [_message(role, blocks) for role, blocks in turns]


def content_blocks(content: Any) -> list[Block]:
    """An OpenAI message's content (a string or a list of parts) as Anthropic blocks."""
    if isinstance(content, str):
        return [_text_block(content)] if content.strip() else []
    blocks: list[Block] = []
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, Mapping):
            continue
        if part.get("type") == "text":
            text = part.get("text")
            if isinstance(text, str) and text.strip():
                blocks.append(_text_block(text))
        elif part.get("type") == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            blocks.append(image_block(str(url or "")))
    return blocks


def image_block(url: str) -> Block:
    """An image block for a data URL (base64 source) or any other URL (url source)."""
    if not url.startswith("data:"):
        if not url:
            raise InvalidImage("an image has no URL")
        return {"type": "image", "source": {"type": "url", "url": url}}
    inline = split_data_url(url)
    if inline.mime_type not in IMAGE_MEDIA_TYPES:
        raise InvalidImage("Anthropic takes JPEG, PNG, GIF or WebP images only")
    source = {"type": "base64", "media_type": inline.mime_type, "data": inline.data}
    return {"type": "image", "source": source}


def _text_block(text: str) -> Block:
    return {"type": "text", "text": text}


def _plain_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        )
    return ""


def _merged(first: list[Block], then: list[Block]) -> list[Block]:
    if _only_text(first) and _only_text(then):
        joined = "\n\n".join(block["text"] for block in (*first, *then))
        return [_text_block(joined)]
    return [*first, *then]


def _only_text(blocks: list[Block]) -> bool:
    return len(blocks) == 1 and blocks[0]["type"] == "text"


def _texts(turns: list[tuple[str, list[Block]]]) -> list[str]:
    return [block["text"] for _, blocks in turns for block in blocks if block["type"] == "text"]


def _message(role: str, blocks: list[Block]) -> Block:
    """A message: plain text as a string (the common, shorter form), else its blocks."""
    content: Any = blocks[0]["text"] if _only_text(blocks) else blocks
    return {"role": role, "content": content}


def finish_reason(stop_reason: object) -> str:
    """Anthropic's `stop_reason` in OpenAI's words (None, as in a stream's start: stop)."""
    if stop_reason is None:
        return "stop"
    return FINISH_REASONS.get(str(stop_reason), str(stop_reason))


def parse_message(body: object, *, backend: str, requested_model: str) -> ChatResult:
    """A Messages API answer's JSON -> ChatResult, or BackendBadResponse."""
    bad = BackendBadResponse(f"the {backend} backend sent an unexpected response")
    if not isinstance(body, dict) or body.get("type", "message") != "message":
        raise bad
    content = body.get("content")
    if not isinstance(content, list):
        raise bad
    try:
        texts = [
            block["text"]
            for block in content
            if isinstance(block, dict) and block.get("type") == "text"
        ]
        prompt_tokens, completion_tokens, cached_tokens = usage_counts(body.get("usage") or {})
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise bad from exc
    if not all(isinstance(text, str) for text in texts):
        raise bad
    return ChatResult(
        text="".join(texts),
        model=str(body.get("model") or requested_model),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        finish_reason=finish_reason(body.get("stop_reason")),
        backend=backend,
        cached_prompt_tokens=cached_tokens,
    )


def usage_counts(usage: Mapping[str, Any]) -> tuple[int, int, int]:
    """(prompt, completion, cached prompt) tokens of a `usage` object: the cache reads
    and writes are prompt tokens too, the reads also cached ones."""
    prompt_tokens = sum(
        int(usage.get(name) or 0)
        for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    completion_tokens = int(usage.get("output_tokens") or 0)
    cached_tokens = int(usage.get("cache_read_input_tokens") or 0)
    return prompt_tokens, completion_tokens, cached_tokens


# --- streaming ----------------------------------------------------------------------


class EventReader:
    """A Messages stream's events -> the text deltas, then the ChatResult.

    `message_start` carries the model and the input (and cache) tokens;
    `content_block_delta`s of type `text_delta` the text; `message_delta` the stop
    reason and the usage so far (cumulative: a field it sends replaces the start's);
    `message_stop` ends it (a stream that ends before it is cut short). An `error`
    event raises the error its type stands for; `ping` and other events are skipped.
    """

    def __init__(self, *, backend: str, requested_model: str) -> None:
        self._backend = backend
        self._model = requested_model
        self._parts: list[str] = []
        self._usage: dict[str, Any] = {}
        self._stop_reason: object = None
        self._stopped = False

    def feed(self, event: str, data: object) -> str:
        """The text delta of one event ("" when it has none)."""
        bad = BackendBadResponse(f"the {self._backend} backend sent an unexpected stream event")
        if not isinstance(data, dict):
            raise bad
        kind = data.get("type") or event
        if kind == "error":
            raise stream_error(data.get("error"), self._backend)
        if kind == "message_start":
            message = data.get("message")
            if not isinstance(message, dict):
                raise bad
            self._model = str(message.get("model") or self._model)
            self._merge_usage(message.get("usage"))
        elif kind == "content_block_delta":
            delta = data.get("delta")
            if isinstance(delta, dict) and delta.get("type") == "text_delta":
                text = delta.get("text")
                if not isinstance(text, str):
                    raise bad
                self._parts.append(text)
                return text
        elif kind == "message_delta":
            delta = data.get("delta")
            if isinstance(delta, dict) and delta.get("stop_reason") is not None:
                self._stop_reason = delta["stop_reason"]
            self._merge_usage(data.get("usage"))
        elif kind == "message_stop":
            self._stopped = True
        return ""

    def _merge_usage(self, usage: object) -> None:
        if isinstance(usage, dict):
            self._usage.update({name: value for name, value in usage.items() if value is not None})

    def result(self) -> ChatResult:
        if not self._stopped:
            raise cut_short(self._backend)
        return streamed_result(
            backend=self._backend,
            parts=self._parts,
            model=self._model,
            finish_reason=finish_reason(self._stop_reason),
            usage=self._usage or None,  # no usage field in any event: not reported
            counts=usage_counts,
        )
