"""A scripted Google Gemini API (generativelanguage) server for tests and load runs.

It follows Google's published Gemini API reference (ai.google.dev/api): "Generating
content" (api/generate-content: `models.generateContent`, `models.streamGenerateContent`
with `alt=sse`, GenerateContentResponse, UsageMetadata, FinishReason), "Counting tokens"
(api/tokens: `models.countTokens`), "API versions" (gemini-api/docs/api-versions: v1
and v1beta) and the troubleshooting guide's backend error codes
(gemini-api/docs/troubleshooting), with the error body of Google's API design guide
(`{"error": {"code", "message", "status", "details"}}`), as spoken by the official SDK
pinned in requirements.txt (google-genai 3.6.1, whose default API version is v1).

Served on 127.0.0.1 from its own thread (`scripted_common.ScriptedServer`: recording,
`wait_until`, latency, queued faults, fault functions, outage, stream faults):

- `POST /{v1|v1beta}/models/{model}:generateContent`, `:streamGenerateContent` (with
  `?alt=sse`: `text/event-stream`, one `data: <GenerateContentResponse>` frame per word,
  frames ended by a blank line; without it: one JSON array of the same responses) and
  `:countTokens`. Other versions or methods -> 404 NOT_FOUND.
- `GET /{v1|v1beta}/models` (`models.list`, the breaker's probe; `pageSize`): `{"models":
  [Model resources of the served models], "nextPageToken"}`, the same auth, and the
  `outage_status` error while one is set; counted in `model_lists`, never recorded nor
  answered with a queued fault.
- Auth: the key in `x-goog-api-key` or the `key` query parameter. None -> 403
  PERMISSION_DENIED ("Method doesn't allow unregistered callers ..."); with `api_key=`
  set, another key -> 400 INVALID_ARGUMENT "API key not valid. Please pass a valid API
  key." with an ErrorInfo detail (reason API_KEY_INVALID), as the real service answers.
- The body (lowerCamel names; the snake_case forms are accepted too, as in any proto
  JSON API; unknown top-level names -> 400 "Unknown name"): `contents` (required,
  non-empty; role user|model; `parts` of `{text}`, `{inlineData: {mimeType, data}}`,
  data base64, images must decode, or `{fileData: {fileUri, mimeType?}}`, an external
  http(s) URL or a Files API URI, never fetched), `systemInstruction` (text parts),
  `generationConfig` (`maxOutputTokens` >= 1, `temperature` 0..2, `responseMimeType`
  text/plain | application/json | text/x.enum, `responseSchema` or `responseJsonSchema`:
  one of them, and only with a JSON or enum mime type). With `models=` set, another model ->
  404 NOT_FOUND. countTokens takes `contents` or `generateContentRequest`.
- Answer: `{"candidates": [{"content": {"role": "model", "parts": [{"text"}]},
  "finishReason": "STOP" | "MAX_TOKENS", "index": 0}], "usageMetadata":
  {"promptTokenCount", "candidatesTokenCount", "totalTokenCount",
  "promptTokensDetails"}, "modelVersion", "responseId"}`. The text is "echo: <last user
  text>" (`{"answer": "echo: ..."}` when application/json is asked) unless `answer=`
  says otherwise; cut to `maxOutputTokens` (4 characters a token), then MAX_TOKENS.
  Streamed chunks carry their text; the last one the finishReason and the full usage.
- countTokens -> `{"totalTokens": n, "promptTokensDetails": [{"modality", "tokenCount"}]}`,
  the same n as the answer's promptTokenCount.
- Errors: `{"error": {"code", "message", "status"}}` with 400 INVALID_ARGUMENT, 401
  UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 NOT_FOUND, 409 ABORTED, 429
  RESOURCE_EXHAUSTED, 499 CANCELLED, 500 INTERNAL, 503 UNAVAILABLE, 504
  DEADLINE_EXCEEDED. `rate_limited()` builds the 429 the service sends (a
  google.rpc.RetryInfo detail with `retryDelay`, optionally a `retry-after` header);
  `unavailable()` the 503. A `StreamFault` sends `data: {"error": {...}}` mid-stream.

Token counts are deterministic, not Gemini's tokenizer: `count_prompt_tokens(body)` is
ceil(chars/4) for each text part (system instruction included) plus, for each image,
258 when both sides are at most 384 pixels, else 258 per 768x768 tile (the vision
page's rule), and 258 for other inline data and for each fileData part (not fetched, so
its size is unknown); output tokens are ceil(chars/4) of the
answer, at least 1.
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
from dataclasses import dataclass, field
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
    "GeminiRequest",
    "ScriptedGemini",
    "count_prompt_tokens",
    "echo_answer",
    "error_body",
    "model_resource",
    "rate_limited",
    "unavailable",
    "user_text",
]

API_VERSIONS = ("v1", "v1beta")
METHODS = ("generateContent", "streamGenerateContent", "countTokens")
STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
MESSAGES = {
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
TOP_LEVEL = {
    "contents",
    "model",
    "systemInstruction",
    "generationConfig",
    "safetySettings",
    "tools",
    "toolConfig",
    "cachedContent",
    "labels",
    "serviceTier",
}
JSON_TYPES = ("application/json", "text/x.enum")
MIME_TYPES = ("text/plain", *JSON_TYPES)
IMAGE_TOKENS = 258
DEFAULT_MODELS = ("gemini-3.5-flash",)  # what models.list shows when `models=` is not set

_ids = itertools.count(1)


def error_body(
    status: int, message: str | None = None, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Google's error body for an HTTP status."""
    error: dict[str, Any] = {
        "code": status,
        "message": message or MESSAGES.get(status, "scripted failure"),
        "status": STATUSES.get(status) or ("INTERNAL" if status >= 500 else "FAILED_PRECONDITION"),
    }
    if details:
        error["details"] = details
    return {"error": error}


def rate_limited(retry_delay: float = 1, retry_after: float | None = None) -> Fault:
    """The service's 429: RESOURCE_EXHAUSTED with a RetryInfo detail (`retryDelay`, e.g.
    "1s") and, only if `retry_after` is given, a `retry-after` header."""
    delay = f"{retry_delay:g}s"
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_requests",
                    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                }
            ],
        },
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay},
    ]
    headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
    return Fault(status=429, headers=headers, body=error_body(429, details=details))


def unavailable() -> Fault:
    """503 UNAVAILABLE ("The model is overloaded")."""
    return Fault(status=503, body=error_body(503))


class Invalid(Exception):
    """A request the API refuses: its status, message and details."""

    def __init__(
        self, message: str, status: int = 400, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.details = details


def _get(obj: dict[str, Any], camel: str) -> Any:
    """A field by its lowerCamel name or its snake_case one (proto JSON accepts both)."""
    if camel in obj:
        return obj[camel]
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
    return obj.get(snake)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@dataclass(frozen=True)
class GeminiRequest:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float
    query: dict[str, str] = field(default_factory=dict)

    @property
    def api_version(self) -> str:
        return self.path.split("/")[1]

    @property
    def model(self) -> str:
        return self.path.rsplit("/", 1)[-1].split(":")[0]

    @property
    def method(self) -> str:
        return self.path.rsplit(":", 1)[-1]

    @property
    def api_key(self) -> str | None:
        return request_key(self.headers, self.query)

    @property
    def last_user_text(self) -> str:
        return user_text(self.body)


def request_key(headers: dict[str, str], query: dict[str, str]) -> str | None:
    for name, value in headers.items():
        if name.lower() == "x-goog-api-key" and value:
            return value
    return query.get("key") or None


def _request_of(body: dict[str, Any]) -> dict[str, Any]:
    """The GenerateContentRequest in a body (countTokens may wrap one)."""
    inner = _get(body, "generateContentRequest")
    return inner if isinstance(inner, dict) else body


def user_text(body: dict[str, Any]) -> str:
    for content in reversed(_get(_request_of(body), "contents") or []):
        if isinstance(content, dict) and content.get("role", "user") == "user":
            parts = content.get("parts") or []
            return " ".join(
                p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
    return ""


def _generation_config(body: dict[str, Any]) -> dict[str, Any]:
    config = _get(_request_of(body), "generationConfig")
    return config if isinstance(config, dict) else {}


def wants_json(body: dict[str, Any]) -> bool:
    return bool(_get(_generation_config(body), "responseMimeType") == "application/json")


def echo_answer(body: dict[str, Any]) -> str:
    text = f"echo: {user_text(body)}"
    return orjson.dumps({"answer": text}).decode() if wants_json(body) else text


def image_tokens(width: int, height: int) -> int:
    if width <= 384 and height <= 384:
        return IMAGE_TOKENS
    return math.ceil(width / 768) * math.ceil(height / 768) * IMAGE_TOKENS


def _inline_tokens(blob: Any, where: str) -> int:
    if not isinstance(blob, dict) or not isinstance(_get(blob, "mimeType"), str):
        raise Invalid(f"* GenerateContentRequest.{where}.mime_type: mime_type is not specified")
    data = blob.get("data")
    try:
        raw = base64.b64decode(str(data or "").replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Invalid(
            f"Invalid value at '{where}.data' (TYPE_BYTES), Base64 decoding failed for \"{data}\""
        ) from exc
    if not _get(blob, "mimeType").startswith("image/"):
        return IMAGE_TOKENS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as image:
                width, height = image.size
    except Exception as exc:
        raise Invalid("Unable to process input image. Please retry or report in ...") from exc
    return image_tokens(width, height)


def _file_modality(file_data: Any, where: str) -> str:
    """A `fileData` part: an external http(s) URL or a Files API URI (never fetched here);
    its modality by the optional `mimeType` (none: an image)."""
    uri = _get(file_data, "fileUri") if isinstance(file_data, dict) else None
    if not isinstance(uri, str) or not uri:
        raise Invalid(f"* GenerateContentRequest.{where}.file_uri: file_uri is not specified")
    if not uri.startswith(("https://", "http://")):
        raise Invalid(f"* GenerateContentRequest.{where}.file_uri: unsupported file uri")
    mime = _get(file_data, "mimeType")
    return "IMAGE" if mime is None or str(mime).startswith("image/") else "DOCUMENT"


def _content_tokens(content: Any, where: str, counts: dict[str, int], *, system: bool) -> None:
    if not isinstance(content, dict):
        raise Invalid(f"Invalid JSON payload received. Invalid value at '{where}'")
    if not system and content.get("role", "user") not in ("user", "model"):
        raise Invalid("Please use a valid role: user, model.")
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        raise Invalid(f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty.")
    for j, part in enumerate(parts):
        here = f"{where}.parts[{j}]"
        if not isinstance(part, dict):
            raise Invalid(f"Invalid JSON payload received. Invalid value at '{here}'")
        if isinstance(part.get("text"), str):
            counts["TEXT"] = counts.get("TEXT", 0) + chars_to_tokens(part["text"])
        elif not system and _get(part, "inlineData") is not None:
            blob = _get(part, "inlineData")
            modality = (
                "IMAGE" if str(_get(blob, "mimeType") or "").startswith("image/") else "DOCUMENT"
            )
            counts[modality] = counts.get(modality, 0) + _inline_tokens(blob, f"{here}.inline_data")
        elif not system and _get(part, "fileData") is not None:
            modality = _file_modality(_get(part, "fileData"), f"{here}.file_data")
            counts[modality] = counts.get(modality, 0) + IMAGE_TOKENS
        else:
            raise Invalid(
                f"* GenerateContentRequest.{here}.data: required oneof field 'data' must "
                "have one initialized field"
            )


def _check_generation_config(config: Any) -> None:
    if config is None:
        return
    if not isinstance(config, dict):
        raise Invalid("Invalid JSON payload received. Invalid value at 'generation_config'")
    max_tokens = _get(config, "maxOutputTokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise Invalid(
            "* GenerateContentRequest.generation_config.max_output_tokens: must be positive"
        )
    temperature = _get(config, "temperature")
    if temperature is not None and (
        not isinstance(temperature, int | float) or not 0 <= temperature <= 2
    ):
        raise Invalid(
            "* GenerateContentRequest.generation_config.temperature: must be within [0.0, 2.0]"
        )
    mime = _get(config, "responseMimeType")
    if mime is not None and mime not in MIME_TYPES:
        raise Invalid(
            f"* GenerateContentRequest.generation_config.response_mime_type: allowed mimetypes "
            f"are {', '.join(repr(m) for m in MIME_TYPES)}, but got {mime!r}"
        )
    schema = _get(config, "responseSchema")
    json_schema = _get(config, "responseJsonSchema")
    if schema is not None and json_schema is not None:
        raise Invalid("response_schema and response_json_schema cannot both be set")
    if (schema is not None or json_schema is not None) and mime not in JSON_TYPES:
        raise Invalid(
            "* GenerateContentRequest.generation_config.response_schema: response_mime_type "
            "must be application/json or text/x.enum when a schema is set"
        )


def prompt_token_details(body: dict[str, Any]) -> dict[str, int]:
    """The prompt's tokens by modality (see the module's docstring); raises Invalid."""
    request = _request_of(body)
    for name in request:
        if _camel(name) not in TOP_LEVEL:
            raise Invalid(
                f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.'
            )
    contents = _get(request, "contents")
    if not isinstance(contents, list) or not contents:
        raise Invalid("* GenerateContentRequest.contents: contents is not specified")
    counts: dict[str, int] = {}
    for i, content in enumerate(contents):
        _content_tokens(content, f"contents[{i}]", counts, system=False)
    system = _get(request, "systemInstruction")
    if system is not None:
        _content_tokens(system, "system_instruction", counts, system=True)
    _check_generation_config(_get(request, "generationConfig"))
    return counts


def count_prompt_tokens(body: dict[str, Any]) -> int:
    return sum(prompt_token_details(body).values())


def model_resource(model: str) -> dict[str, Any]:
    """A Model resource of models.list / models.get (api/models)."""
    return {
        "name": f"models/{model}",
        "version": "001",
        "displayName": model,
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 65_536,
        "supportedGenerationMethods": list(METHODS),
        "temperature": 1.0,
        "maxTemperature": 2.0,
    }


class ScriptedGemini(ScriptedServer[GeminiRequest]):
    thread_name = "scripted-gemini"

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
        self.stream_interval = stream_interval  # seconds between two stream chunks
        self.model_lists = 0  # GET /{version}/models served (the breaker's probes)

    @property
    def base_url(self) -> str:
        """The SDK's `HttpOptions.base_url` (it appends the API version and the path)."""
        return f"http://127.0.0.1:{self.port}"

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_post("/{version}/models/{call}", self._call)
        app.router.add_get("/{version}/models", self._list_models)

    def _record_of(self, request: web.Request, body: dict[str, Any]) -> GeminiRequest:
        return GeminiRequest(
            request.path, body, dict(request.headers), time.time(), dict(request.query)
        )

    def _error_body(self, status: int) -> dict[str, Any]:
        return error_body(status)

    # --- requests -------------------------------------------------------------

    def _check_key(self, request: web.Request) -> None:
        key = request_key(dict(request.headers), dict(request.query))
        if key is None:
            raise Invalid(
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to "
                "call this API.",
                403,
            )
        if self.api_key is not None and key != self.api_key:
            raise Invalid(
                "API key not valid. Please pass a valid API key.",
                400,
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"},
                    }
                ],
            )

    def _check(self, request: web.Request, body: Any, method: str) -> dict[str, int]:
        """Validate as the API does; the prompt's tokens by modality, or raises Invalid."""
        version = request.match_info["version"]
        model = request.match_info["call"].rsplit(":", 1)[0]
        if version not in API_VERSIONS or method not in METHODS:
            raise Invalid(f"The requested URL {request.path} was not found on this server.", 404)
        self._check_key(request)
        if not isinstance(body, dict):
            raise Invalid("Invalid JSON payload received.")
        if (
            method == "countTokens"
            and "contents" in body
            and _get(body, "generateContentRequest") is not None
        ):
            raise Invalid("contents and generate_content_request are mutually exclusive")
        details = prompt_token_details(body)
        if self.models is not None and model not in self.models:
            raise Invalid(
                f"models/{model} is not found for API version {version}, or is not supported "
                f"for {method}. Call ListModels to see the list of available models and "
                "their supported methods.",
                404,
            )
        return details

    async def _list_models(self, request: web.Request) -> web.Response:
        """models.list: the served models (Model resources), `pageSize` at a time. Down
        with the rest of the server during an outage."""
        with self._changed:
            self.model_lists += 1
            status = self.outage_status
            self._changed.notify_all()
        try:
            if request.match_info["version"] not in API_VERSIONS:
                raise Invalid(
                    f"The requested URL {request.path} was not found on this server.", 404
                )
            self._check_key(request)
        except Invalid as exc:
            return web.json_response(
                error_body(exc.status, str(exc), exc.details), status=exc.status
            )
        if status is not None:
            return web.json_response(error_body(status), status=status)
        names = sorted(self.models) if self.models is not None else list(DEFAULT_MODELS)
        size = int(request.query.get("pageSize") or 50)
        start = int(request.query.get("pageToken") or 0)
        page: dict[str, Any] = {"models": [model_resource(m) for m in names[start : start + size]]}
        if start + size < len(names):
            page["nextPageToken"] = str(start + size)
        return web.json_response(page)

    async def _call(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["call"].rsplit(":", 1)[-1]
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        try:
            details = self._check(request, body, method)
        except Invalid as exc:
            rejection = web.json_response(
                error_body(exc.status, str(exc), exc.details), status=exc.status
            )
            return await self._serve(
                request, body if isinstance(body, dict) else {}, _never, rejection=rejection
            )
        assert isinstance(body, dict)
        prompt = sum(details.values())
        usage_details = [{"modality": m, "tokenCount": n} for m, n in sorted(details.items())]

        async def respond() -> web.StreamResponse:
            if method == "countTokens":
                return web.json_response(
                    {"totalTokens": prompt, "promptTokensDetails": usage_details}
                )
            chunks = self._chunks(
                request, body, prompt, usage_details, stream=method != "generateContent"
            )
            if method == "generateContent":
                return web.Response(body=orjson.dumps(chunks[0]), content_type="application/json")
            if request.query.get("alt") == "sse":
                return await self._sse(request, chunks)
            return web.Response(body=orjson.dumps(chunks), content_type="application/json")

        return await self._serve(request, body, respond)

    # --- answers --------------------------------------------------------------

    def _chunks(
        self,
        request: web.Request,
        body: dict[str, Any],
        prompt: int,
        prompt_details: list[dict[str, Any]],
        *,
        stream: bool,
    ) -> list[dict[str, Any]]:
        """The GenerateContentResponses: one, or one per word when streaming."""
        text = self.answer(body)
        limit = _get(_generation_config(body), "maxOutputTokens")
        finish = "STOP"
        if isinstance(limit, int) and chars_to_tokens(text) > limit:
            text, finish = text[: limit * 4], "MAX_TOKENS"
        output = max(1, chars_to_tokens(text))
        model = request.match_info["call"].rsplit(":", 1)[0]
        response_id = f"scripted-{next(_ids):06d}"
        pieces = split_for_stream(text) if stream else [text]
        chunks = []
        for n, piece in enumerate(pieces, 1):
            candidate: dict[str, Any] = {
                "content": {"role": "model", "parts": [{"text": piece}]},
                "index": 0,
            }
            usage: dict[str, Any] = {"promptTokenCount": prompt, "totalTokenCount": prompt}
            if n == len(pieces):
                candidate["finishReason"] = finish
                usage = {
                    "promptTokenCount": prompt,
                    "candidatesTokenCount": output,
                    "totalTokenCount": prompt + output,
                    "promptTokensDetails": prompt_details,
                }
            chunks.append(
                {
                    "candidates": [candidate],
                    "usageMetadata": usage,
                    "modelVersion": model,
                    "responseId": response_id,
                }
            )
        return chunks

    async def _sse(self, request: web.Request, chunks: list[dict[str, Any]]) -> web.StreamResponse:
        fault = self._next_stream_fault()
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        try:
            for sent, chunk in enumerate(chunks):
                if fault is not None and sent == fault.after:
                    return await self._break(request, response, fault)
                if sent and self.stream_interval > 0:
                    await asyncio.sleep(self.stream_interval)
                await response.write(b"data: " + orjson.dumps(chunk) + b"\r\n\r\n")
            if fault is not None:
                return await self._break(request, response, fault)
            await response.write_eof()
            return response
        except ConnectionResetError:  # the client went away (its timeout, a cut)
            return response

    async def _break(
        self, request: web.Request, response: web.StreamResponse, fault: StreamFault
    ) -> web.StreamResponse:
        if fault.cut:
            if request.transport is not None:
                request.transport.close()
            return response
        error = fault.body or error_body(fault.status)
        await response.write(b"data: " + orjson.dumps(error) + b"\r\n\r\n")
        await response.write_eof()
        return response


async def _never() -> web.StreamResponse:
    raise AssertionError("a rejected request is never answered")
