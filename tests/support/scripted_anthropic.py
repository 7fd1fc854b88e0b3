"""A scripted Anthropic (Claude) Messages API server for tests and load runs.

It follows Anthropic's published API reference (platform.claude.com/docs/en/api/...):
"Messages" (`POST /v1/messages`), "Count tokens in a Message"
(`POST /v1/messages/count_tokens`), "List Models" (`GET /v1/models`), "Streaming
Messages" (build-with-claude/streaming: the server-sent events), "Errors" (api/errors:
status codes, the error body, errors inside a stream) and "Versions" (api/versioning
and the 2026-10-21 migration guide), as spoken by the official Python SDK pinned in
requirements.txt (anthropic 2.14.0, which sends `anthropic-version: 2026-10-21` and its
key as `Authorization: Bearer`).

Served on 127.0.0.1 from its own thread (`scripted_common.ScriptedServer`: recording,
`wait_until`, latency, queued faults, fault functions, outage, stream faults):

- Auth: the key in `x-api-key` (the documented header; it wins when both are sent) or
  `Authorization: Bearer <key>` (what SDK 2.x sends). None -> 401 "x-api-key header is
  required"; with `api_key=` set, another key -> 401 "invalid x-api-key".
- `anthropic-version` is required (400 without it); "2023-06-01" and "2026-10-21" are
  known, any other -> 400. On 2026-10-21, `temperature`, `top_p` and `top_k` are
  rejected (400 "temperature: Extra inputs are not permitted", even at default values,
  as the migration guide says); on 2023-06-01 `temperature` must be within 0..1.
- The body: `model` (with `models=` set, another -> 404 not_found_error), `max_tokens`
  (required, >= 1; not on count_tokens), `system` (a string or text blocks), `messages`
  (non-empty; role user|assistant; content a string or blocks: `text`, and `image` with
  `source` {type: base64, media_type: image/jpeg|png|gif|webp, data} or {type: url,
  url}), `stream`, `output_config.format` ({type: json_schema, schema}). Anything
  malformed -> 400 invalid_request_error naming the field, as the API does.
- Answer: `{"id", "type": "message", "role": "assistant", "model", "content": [{"type":
  "text", "text"}], "stop_reason": "end_turn" | "max_tokens", "stop_sequence": null,
  "usage": {"input_tokens", "output_tokens", ...}}` with a `request-id` header. The text
  is "echo: <last user text>" (`{"answer": "echo: ..."}` when a JSON schema format is
  asked) unless `answer=` says otherwise; cut to `max_tokens` (4 characters a token),
  then stop_reason "max_tokens".
- `stream: true`: `text/event-stream` with `event: <type>` / `data: <json>` frames:
  message_start (usage.input_tokens), content_block_start, ping, one content_block_delta
  (text_delta) per word, content_block_stop, message_delta (stop_reason,
  usage.output_tokens), message_stop. A `StreamFault` sends `event: error` with
  `{"type": "error", "error": {...}}` after `after` deltas (or cuts the connection).
- count_tokens -> `{"input_tokens": n}`, the same n as the answer's usage.input_tokens.
- `GET /v1/models?limit=n` (1..1000, default 20; the same key and version checks) ->
  `{"data": [{"type": "model", "id", "display_name", "created_at", "lifecycle"}],
  "has_more", "first_id", "last_id"}`, the `models=` given (else `DEFAULT_MODELS`). It
  spends no tokens (the breaker's half-open probe): counted in `model_lists`, not in
  `calls`, never recorded; it fails with `outage_status` while that is set, and leaves
  the queued faults to the messages.
- Errors: `{"type": "error", "error": {"type", "message"}, "request_id"}` with the type
  the status documents (400 invalid_request_error, 401 authentication_error, 402
  billing_error, 403 permission_error, 404 not_found_error, 413 request_too_large, 429
  rate_limit_error, 500 api_error, 529 overloaded_error; other 5xx api_error).
  `rate_limited(retry_after)` and `overloaded()` build the usual faults.

Token counts are deterministic, not Claude's tokenizer: `count_input_tokens(body)` is
3 + the system text's ceil(chars/4) + for each message 4 + ceil(chars/4) of each text
block + each image's ceil(width*height/750) (the Vision page's estimate, after scaling
the image down to a 1568-pixel long edge and 1.15 megapixels); output tokens are
ceil(chars/4) of the answer, at least 1.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import itertools
import math
import time
import warnings
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from PIL import Image

from tests.support.scripted_common import (
    Fault,
    ScriptedServer,
    StreamFault,
    chars_to_tokens,
    split_for_stream,
)

__all__ = [
    "API_VERSIONS",
    "DEFAULT_MODELS",
    "AnthropicRequest",
    "ScriptedAnthropic",
    "count_input_tokens",
    "echo_answer",
    "error_body",
    "overloaded",
    "rate_limited",
    "user_text",
]

API_VERSIONS = ("2023-06-01", "2026-10-21")
DEFAULT_MODELS = ("claude-sonnet-5", "claude-haiku-5-5")  # GET /v1/models without models=
SAMPLING_PARAMETERS = ("temperature", "top_p", "top_k")  # removed in 2026-10-21
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
MAX_IMAGE_SIDE = 8000
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
ERROR_MESSAGES = {
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit",
    "overloaded_error": "Overloaded",
    "api_error": "Internal server error",
}

_ids = itertools.count(1)


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    """Anthropic's error body for a status (its documented error type); the server adds
    the `request_id` (the same as the `request-id` header) when it sends one."""
    kind = error_type(status)
    return {
        "type": "error",
        "error": {"type": kind, "message": message or ERROR_MESSAGES.get(kind, "scripted")},
    }


def new_request_id() -> str:
    return f"req_scripted_{next(_ids):06d}"


def with_request_id(body: Any, request_id: str) -> Any:
    if isinstance(body, dict) and body.get("type") == "error" and "request_id" not in body:
        return {**body, "request_id": request_id}
    return body


def rate_limited(retry_after: float = 1, message: str | None = None) -> Fault:
    """A 429 rate_limit_error with a `retry-after` header (seconds)."""
    value = str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
    return Fault(status=429, headers={"retry-after": value}, body=error_body(429, message))


def overloaded() -> Fault:
    """Anthropic's 529 overloaded_error."""
    return Fault(status=529, body=error_body(529))


class Invalid(Exception):
    """A request the API refuses: its status and message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class AnthropicRequest:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.body.get("messages", [])
        return messages

    @property
    def last_user_text(self) -> str:
        return user_text(self.body)

    @property
    def api_key(self) -> str | None:
        return request_key(self.headers)

    @property
    def version(self) -> str | None:
        return _header(self.headers, "anthropic-version")


def _header(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def request_key(headers: dict[str, str]) -> str | None:
    """The API key a request carries: `x-api-key`, else `Authorization: Bearer`."""
    key = _header(headers, "x-api-key")
    if key:
        return key
    auth = _header(headers, "authorization") or ""
    return auth[7:] if auth[:7].lower() == "bearer " and auth[7:] else None


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def wants_json(body: dict[str, Any]) -> bool:
    output = body.get("output_config")
    fmt = output.get("format") if isinstance(output, dict) else None
    return isinstance(fmt, dict) and fmt.get("type") == "json_schema"


def echo_answer(body: dict[str, Any]) -> str:
    text = f"echo: {user_text(body)}"
    return orjson.dumps({"answer": text}).decode() if wants_json(body) else text


def image_tokens(width: int, height: int) -> int:
    scale = min(1.0, 1568 / max(width, height), math.sqrt(1_150_000 / (width * height)))
    return math.ceil(int(width * scale) * int(height * scale) / 750)


def _image_size(data: bytes) -> tuple[int, int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as image:
            return image.size


def _check_image(block: dict[str, Any], where: str) -> int:
    source = block.get("source")
    if not isinstance(source, dict):
        raise Invalid(f"{where}.source: Field required")
    if source.get("type") == "url":
        if not isinstance(source.get("url"), str):
            raise Invalid(f"{where}.source.url: Field required")
        return image_tokens(1092, 1092)  # not fetched: the size of a typical photo
    if source.get("type") != "base64":
        raise Invalid(f"{where}.source.type: Input should be 'base64' or 'url'")
    if source.get("media_type") not in IMAGE_MEDIA_TYPES:
        raise Invalid(
            f"{where}.source.media_type: Input should be 'image/jpeg', 'image/png', "
            "'image/gif' or 'image/webp'"
        )
    try:
        data = base64.b64decode(source.get("data") or "", validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise Invalid(f"{where}.source.data: invalid base64 data") from exc
    try:
        width, height = _image_size(data)
    except Exception as exc:
        raise Invalid(f"{where}: Could not process image") from exc
    if max(width, height) > MAX_IMAGE_SIDE:
        raise Invalid(f"{where}: image dimensions exceed max allowed size: 8000 pixels")
    return image_tokens(width, height)


def _block_tokens(block: Any, where: str) -> int:
    if not isinstance(block, dict):
        raise Invalid(f"{where}: Input should be a valid dictionary")
    kind = block.get("type")
    if kind == "text":
        if not isinstance(block.get("text"), str):
            raise Invalid(f"{where}.text: Field required")
        return chars_to_tokens(block["text"])
    if kind == "image":
        return _check_image(block, where)
    raise Invalid(
        f"{where}: Input tag '{kind}' found using 'type' does not match any of the expected tags"
    )


def _system_tokens(system: Any) -> int:
    if system is None:
        return 0
    if isinstance(system, str):
        return chars_to_tokens(system)
    if not isinstance(system, list):
        raise Invalid("system: Input should be a valid string or a list of text blocks")
    total = 0
    for j, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise Invalid(f"system.{j}.type: Input should be 'text'")
        total += _block_tokens(block, f"system.{j}")
    return total


def _messages_tokens(messages: Any) -> int:
    if messages is None:
        raise Invalid("messages: Field required")
    if not isinstance(messages, list) or not messages:
        raise Invalid("messages: List should have at least 1 item after validation")
    total = 0
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise Invalid(f"messages.{i}: Input should be a valid dictionary")
        if message.get("role") not in ("user", "assistant"):
            raise Invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        total += 4
        if isinstance(content, str):
            total += chars_to_tokens(content)
        elif isinstance(content, list):
            total += sum(
                _block_tokens(b, f"messages.{i}.content.{j}") for j, b in enumerate(content)
            )
        else:
            raise Invalid(f"messages.{i}.content: Field required")
    return total


def count_input_tokens(body: dict[str, Any]) -> int:
    """The deterministic input count (see the module's docstring); raises Invalid."""
    return 3 + _system_tokens(body.get("system")) + _messages_tokens(body.get("messages"))


def _check_sampling(body: dict[str, Any], version: str) -> None:
    if version == "2026-10-21":
        for name in SAMPLING_PARAMETERS:
            if name in body:
                raise Invalid(f"{name}: Extra inputs are not permitted")
        return
    temperature = body.get("temperature")
    if temperature is not None and (
        not isinstance(temperature, int | float) or not 0 <= temperature <= 1
    ):
        raise Invalid("temperature: Input should be less than or equal to 1")


def _check_output_config(body: dict[str, Any]) -> None:
    output = body.get("output_config")
    if output is None:
        return
    fmt = output.get("format") if isinstance(output, dict) else None
    if fmt is None:
        return
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise Invalid("output_config.format.type: Input should be 'json_schema'")
    if not isinstance(fmt.get("schema"), dict):
        raise Invalid("output_config.format.schema: Field required")


class ScriptedAnthropic(ScriptedServer[AnthropicRequest]):
    thread_name = "scripted-anthropic"

    def __init__(
        self,
        *,
        latency: float | Callable[[], float] = 0.0,
        answer: Callable[[dict[str, Any]], str] = echo_answer,
        record: bool = True,
        api_key: str | None = None,
        models: Collection[str] | None = None,
        stream_interval: float = 0.0,
    ) -> None:
        super().__init__(latency=latency, answer=answer, record=record)
        self.api_key = api_key  # when set, the only key accepted
        self.models = models  # when set, the only models served (others: 404)
        self.stream_interval = stream_interval  # seconds between two stream deltas
        self.model_lists = 0  # GET /v1/models served (the breaker's probes)

    @property
    def base_url(self) -> str:
        """The SDK's `base_url` (it appends /v1/messages)."""
        return f"http://127.0.0.1:{self.port}"

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_get("/v1/models", self._models)

    def _record_of(self, request: web.Request, body: dict[str, Any]) -> AnthropicRequest:
        return AnthropicRequest(request.path, body, dict(request.headers), time.time())

    def _error_body(self, status: int) -> dict[str, Any]:
        return error_body(status)

    def _fault_response(self, fault: Fault) -> web.Response:
        request_id = new_request_id()
        headers = {"request-id": request_id, **fault.headers}
        if fault.raw is not None:
            return web.Response(body=fault.raw, status=fault.status, headers=headers)
        body = with_request_id(fault.body or error_body(fault.status), request_id)
        return web.json_response(body, status=fault.status, headers=headers)

    # --- requests -------------------------------------------------------------

    def _check_headers(self, request: web.Request) -> str:
        """The key and the API version, checked as the API does; the version."""
        key = request_key(dict(request.headers))
        if key is None:
            raise Invalid("x-api-key header is required", 401)
        if self.api_key is not None and key != self.api_key:
            raise Invalid("invalid x-api-key", 401)
        version = request.headers.get("anthropic-version")
        if not version:
            raise Invalid("anthropic-version: header is required")
        if version not in API_VERSIONS:
            raise Invalid(f"anthropic-version: invalid version {version!r}")
        return version

    def _check(self, request: web.Request, body: Any, *, counting: bool) -> int:
        """Validate as the API does; the input token count, or raises Invalid."""
        version = self._check_headers(request)
        if not isinstance(body, dict):
            raise Invalid("The request body is not valid JSON")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise Invalid("model: Field required")
        if not counting:
            max_tokens = body.get("max_tokens")
            if max_tokens is None:
                raise Invalid("max_tokens: Field required")
            if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
                raise Invalid("max_tokens: Input should be greater than or equal to 1")
            if not isinstance(body.get("stream", False), bool):
                raise Invalid("stream: Input should be a valid boolean")
        _check_sampling(body, version)
        _check_output_config(body)
        tokens = count_input_tokens(body)
        if self.models is not None and model not in self.models:
            raise Invalid(f"model: {model}", 404)
        return tokens

    async def _read(self, request: web.Request, *, counting: bool) -> tuple[Any, int, Any]:
        """(body, input tokens, rejection or None)."""
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        try:
            tokens = self._check(request, body, counting=counting)
        except Invalid as exc:
            return body if isinstance(body, dict) else {}, 0, self._rejection(exc)
        return body, tokens, None

    def _rejection(self, exc: Invalid) -> web.Response:
        request_id = new_request_id()
        return web.json_response(
            with_request_id(error_body(exc.status, str(exc)), request_id),
            status=exc.status,
            headers={"request-id": request_id},
        )

    async def _models(self, request: web.Request) -> web.Response:
        # Down with the rest of the server during an outage; spends no tokens.
        with self._changed:
            self.model_lists += 1
            status = self.outage_status
            self._changed.notify_all()
        try:
            self._check_headers(request)
            raw_limit = request.query.get("limit", "20")
            limit = int(raw_limit) if raw_limit.isdigit() else 0
            if not 1 <= limit <= 1000:
                raise Invalid("limit: Input should be between 1 and 1000")
        except Invalid as exc:
            return self._rejection(exc)
        if status is not None:
            return self._fault_response(Fault(status=status))
        names = sorted(self.models) if self.models is not None else list(DEFAULT_MODELS)
        data = [
            {
                "type": "model",
                "id": name,
                "display_name": name.replace("-", " ").title(),
                "created_at": "2026-01-01T00:00:00Z",
                "lifecycle": "active",
            }
            for name in names[:limit]
        ]
        return web.json_response(
            {
                "data": data,
                "has_more": len(names) > limit,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            },
            headers={"request-id": new_request_id()},
        )

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        body, tokens, rejection = await self._read(request, counting=True)

        async def respond() -> web.Response:
            return web.json_response(
                {"input_tokens": tokens}, headers={"request-id": new_request_id()}
            )

        return await self._serve(request, body, respond, rejection=rejection)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body, tokens, rejection = await self._read(request, counting=False)

        async def respond() -> web.StreamResponse:
            if body.get("stream"):
                return await self._stream(request, body, tokens)
            return web.Response(
                body=orjson.dumps(self._message(body, tokens)),
                content_type="application/json",
                headers={"request-id": new_request_id()},
            )

        return await self._serve(request, body, respond, rejection=rejection)

    # --- answers --------------------------------------------------------------

    def _answer(self, body: dict[str, Any]) -> tuple[str, int, str]:
        """(text, output tokens, stop_reason), cut to max_tokens."""
        text = self.answer(body)
        limit = int(body["max_tokens"])
        if chars_to_tokens(text) > limit:
            return text[: limit * 4], limit, "max_tokens"
        return text, max(1, chars_to_tokens(text)), "end_turn"

    def _skeleton(self, body: dict[str, Any], input_tokens: int) -> dict[str, Any]:
        return {
            "id": f"msg_scripted_{next(_ids):06d}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": 1,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "service_tier": "standard",
            },
        }

    def _message(self, body: dict[str, Any], input_tokens: int) -> dict[str, Any]:
        text, output_tokens, stop_reason = self._answer(body)
        message = self._skeleton(body, input_tokens)
        message["content"] = [{"type": "text", "text": text}]
        message["stop_reason"] = stop_reason
        message["usage"]["output_tokens"] = output_tokens
        return message

    async def _stream(
        self, request: web.Request, body: dict[str, Any], input_tokens: int
    ) -> web.StreamResponse:
        text, output_tokens, stop_reason = self._answer(body)
        fault = self._next_stream_fault()
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "request-id": new_request_id(),
            }
        )
        await response.prepare(request)
        try:

            async def send(event: str, data: dict[str, Any]) -> None:
                await response.write(
                    b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
                )

            await send(
                "message_start",
                {"type": "message_start", "message": self._skeleton(body, input_tokens)},
            )
            await send(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            await send("ping", {"type": "ping"})
            for sent, piece in enumerate(split_for_stream(text)):
                if fault is not None and sent == fault.after:
                    return await self._break(request, response, fault, send)
                if sent and self.stream_interval > 0:
                    await asyncio.sleep(self.stream_interval)
                delta = {"type": "text_delta", "text": piece}
                await send(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": delta},
                )
            if fault is not None:
                return await self._break(request, response, fault, send)
            await send("content_block_stop", {"type": "content_block_stop", "index": 0})
            await send(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": output_tokens},
                },
            )
            await send("message_stop", {"type": "message_stop"})
            await response.write_eof()
            return response
        except ConnectionResetError:  # the client went away (its timeout, a cut)
            return response

    async def _break(
        self,
        request: web.Request,
        response: web.StreamResponse,
        fault: StreamFault,
        send: Callable[[str, dict[str, Any]], Any],
    ) -> web.StreamResponse:
        if fault.cut:
            if request.transport is not None:
                request.transport.close()
            return response
        await send(
            "error", with_request_id(fault.body or error_body(fault.status), new_request_id())
        )
        await response.write_eof()
        return response
