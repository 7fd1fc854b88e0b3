"""The Gemini API's side of a call, for the `google-genai` SDK (pure: no I/O).

Request (`request_of`: a `ChatCall` as the SDK's `contents` and `GenerateContentConfig`):
- system (and OpenAI's "developer") messages, wherever they stand -> `system_instruction`,
  their texts in order (images there are left out); user -> role "user", assistant ->
  role "model"; consecutive messages of one role become one Content. Empty texts are
  left out (the API refuses an empty text part) and a message left without parts is
  dropped.
- images (`image_url` parts): a base64 data URL -> `inline_data` (its MIME type and the
  bytes); an http(s) URL -> `file_data` with the URL as `file_uri` (the API fetches
  external URLs itself, see ai.google.dev/gemini-api/docs/file-input-methods) and the
  MIME type its extension names (png, jpeg, webp, heic, heif, gif), else none (the API
  reads it from the fetched file). Anything else is `InvalidImage`.
- `max_tokens` -> `max_output_tokens`; `temperature`; `seed`; `request_id` and
  `extra_headers` as request headers (X-Request-ID).
- JSON answers: `json_object` -> `response_mime_type` "application/json"; `json_schema`
  -> the same plus `response_json_schema`, the caller's plain JSON Schema (the other
  field, `response_schema`, takes Google's OpenAPI subset, which a JSON Schema need not
  fit; the API ignores the keywords it does not support, and the service checks the
  answer either way).
- automatic function calling and automatic continuation off: one call, one request.

Response (`result_of`): the first candidate's text parts (thoughts left out); usage from
`usage_metadata` (prompt = `prompt_token_count`; completion = `candidates_token_count` +
`thoughts_token_count`, both billed as output; cached = `cached_content_token_count`,
part of the prompt); `finish_reason` in OpenAI's words
(`finish_reason_of`); `model_version`, else the requested model. No candidate: a
blocked prompt is `BackendRejected` naming the block reason, else `BackendBadResponse`.

Errors (`error_of`): the SDK's `APIError` (`.code`, `.details`: Google's error body,
`.response`: its headers) by `http.raise_for_status`'s rules, after two Gemini rules:
400 with an ErrorInfo reason API_KEY_INVALID is a credentials error, and a
google.rpc.RetryInfo `retryDelay` ("12s") counts as a Retry-After when no header says
one. Messages never carry the key, the address or the upstream body.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from google.genai import errors as genai_errors
from google.genai import types

from chater_gpt.backends.http import raise_for_status
from chater_gpt.domain import ChatCall, ChatMessage, ChatResult, ResponseFormat
from chater_gpt.errors import (
    BackendAuthError,
    BackendBadResponse,
    BackendError,
    BackendRejected,
    InvalidImage,
)

_ROLES = {"user": "user", "assistant": "model"}
_SYSTEM_ROLES = ("system", "developer")
_IMAGE_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "heic": "image/heic",
    "heif": "image/heif",
    "gif": "image/gif",
}
# Gemini's finish reasons that mean a filter stopped the answer (OpenAI: content_filter).
CONTENT_FILTERED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)
_FINISH_WORDS = {"STOP": "stop", "MAX_TOKENS": "length", "FINISH_REASON_UNSPECIFIED": "stop"}
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"

# --- request ------------------------------------------------------------------------


def request_of(call: ChatCall) -> tuple[list[types.Content], types.GenerateContentConfig]:
    """The SDK's `contents` and `config` for a call; raises InvalidImage, BackendRejected."""
    system: list[types.Part] = []
    contents: list[types.Content] = []
    for message in call.messages:
        role = str(message.get("role", "user"))
        parts = _parts(message, images=role not in _SYSTEM_ROLES)
        if role in _SYSTEM_ROLES:
            system.extend(parts)
            continue
        gemini_role = _ROLES.get(role)
        if gemini_role is None:
            raise BackendRejected("the gemini backend takes system, user and assistant messages")
        if not parts:
            continue
        if contents and contents[-1].role == gemini_role:
            contents[-1].parts = [*(contents[-1].parts or []), *parts]
        else:
            contents.append(types.Content(role=gemini_role, parts=parts))
    if not contents:
        raise BackendRejected("the gemini backend needs a user or assistant message")
    return contents, _config(call, system)


def _config(call: ChatCall, system: list[types.Part]) -> types.GenerateContentConfig:
    headers = dict(call.extra_headers)
    if call.request_id:
        headers["X-Request-ID"] = call.request_id
    config = types.GenerateContentConfig(
        system_instruction=types.Content(parts=system) if system else None,
        max_output_tokens=call.max_tokens,
        temperature=call.temperature,
        seed=call.seed,
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        automatic_continuation=False,
        http_options=types.HttpOptions(headers=headers) if headers else None,
    )
    if call.response_format is not None:
        _ask_json(config, call.response_format)
    return config


def _ask_json(config: types.GenerateContentConfig, fmt: ResponseFormat) -> None:
    config.response_mime_type = "application/json"
    if fmt.type == "json_schema" and fmt.schema is not None:
        config.response_json_schema = dict(fmt.schema)


def _parts(message: ChatMessage, *, images: bool) -> list[types.Part]:
    content = message.get("content")
    if isinstance(content, str):
        return [types.Part(text=content)] if content else []
    parts: list[types.Part] = []
    for item in content or []:
        if not isinstance(item, Mapping):
            continue
        if item.get("type") == "text":
            text = item.get("text")
            if isinstance(text, str) and text:
                parts.append(types.Part(text=text))
        elif item.get("type") == "image_url" and images:
            image = item.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else None
            parts.append(image_part(str(url or "")))
    return parts


def image_part(url: str) -> types.Part:
    """An OpenAI `image_url` as a Gemini part (see the module's docstring)."""
    if url.startswith("data:"):
        head, comma, data = url.partition(",")
        mime = head.removeprefix("data:").removesuffix(";base64")
        if not comma or not head.endswith(";base64") or not mime:
            raise InvalidImage("an inline image must be a base64 data URL with its MIME type")
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidImage("an inline image is not valid base64") from None
        return types.Part(inline_data=types.Blob(mime_type=mime, data=raw))
    if url.startswith(("https://", "http://")):
        return types.Part(file_data=types.FileData(file_uri=url, mime_type=url_image_type(url)))
    raise InvalidImage("the gemini backend takes images as base64 data URLs or http(s) URLs")


def url_image_type(url: str) -> str | None:
    """The image MIME type a URL's extension names, if any."""
    path = urlsplit(url).path
    _, dot, extension = path.rpartition(".")
    return _IMAGE_TYPES.get(extension.lower()) if dot and "/" not in extension else None


# --- response -----------------------------------------------------------------------


def result_of(
    response: types.GenerateContentResponse, *, backend: str, requested_model: str
) -> ChatResult:
    """The ChatResult of an answer; raises BackendRejected or BackendBadResponse."""
    try:
        candidates = response.candidates
        if not candidates:
            raise _no_candidate(response, backend)
        candidate = candidates[0]
        parts = candidate.content.parts if candidate.content is not None else None
        text = "".join(_texts(parts or []))
        usage = response.usage_metadata or types.GenerateContentResponseUsageMetadata()
        prompt = usage.prompt_token_count or 0
        completion = (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)
        cached = usage.cached_content_token_count or 0
        finish = finish_reason_of(candidate.finish_reason)
        model = response.model_version or requested_model
    except (AttributeError, TypeError, ValueError) as exc:
        raise BackendBadResponse(f"the {backend} backend sent an unexpected response") from exc
    return ChatResult(
        text=text,
        model=str(model),
        prompt_tokens=int(prompt),
        completion_tokens=int(completion),
        finish_reason=finish,
        backend=backend,
        cached_prompt_tokens=int(cached),
    )


def _texts(parts: Iterable[types.Part]) -> Iterable[str]:
    for part in parts:
        if isinstance(part.text, str) and not part.thought:
            yield part.text


def _no_candidate(response: types.GenerateContentResponse, backend: str) -> BackendError:
    feedback = response.prompt_feedback
    reason = feedback.block_reason if feedback is not None else None
    if reason is not None:
        return BackendRejected(f"the {backend} backend blocked the prompt ({_word(reason)})")
    return BackendBadResponse(f"the {backend} backend returned no candidates")


def finish_reason_of(reason: object) -> str:
    """Gemini's FinishReason in OpenAI's words: STOP -> stop, MAX_TOKENS -> length, the
    filters (`CONTENT_FILTERED`) -> content_filter, any other lower-cased; none -> stop."""
    if reason is None:
        return "stop"
    word = _word(reason)
    if word in CONTENT_FILTERED:
        return "content_filter"
    return _FINISH_WORDS.get(word, word.lower())


def _word(value: object) -> str:
    """An enum member's value (the SDK keeps unknown values as plain strings)."""
    raw = getattr(value, "value", value)
    return str(raw).upper()


# --- errors -------------------------------------------------------------------------


def error_of(exc: genai_errors.APIError, backend: str) -> BackendError:
    """Our error for the SDK's API error (see the module's docstring)."""
    code = exc.code if isinstance(exc.code, int) else 0
    details = _error_details(exc.details)
    if code == 400 and any(
        d.get("@type") == _ERROR_INFO and d.get("reason") == "API_KEY_INVALID" for d in details
    ):
        return BackendAuthError(f"the {backend} backend rejected the credentials")
    headers = _headers(exc.response)
    if not {"retry-after", "retry-after-ms"} & {name.lower() for name in headers}:
        delay = retry_delay(details)
        if delay is not None:
            headers["retry-after"] = f"{delay:g}"
    try:
        raise_for_status(code, headers, backend)
    except BackendError as mapped:
        return mapped
    return BackendError(f"the {backend} backend failed (HTTP {code})")


def retry_delay(details: Iterable[Mapping[str, Any]]) -> float | None:
    """Seconds from a google.rpc.RetryInfo detail's `retryDelay` ("12s", "1.5s")."""
    for detail in details:
        if detail.get("@type") != _RETRY_INFO:
            continue
        delay = detail.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return float(delay[:-1])
            except ValueError:
                return None
    return None


def _error_details(body: object) -> list[Mapping[str, Any]]:
    """The `details` list of Google's error body `{"error": {..., "details": [...]}}`."""
    error = body.get("error", body) if isinstance(body, Mapping) else None
    details = error.get("details") if isinstance(error, Mapping) else None
    if not isinstance(details, list):
        return []
    return [d for d in details if isinstance(d, Mapping)]


def _headers(response: object) -> dict[str, str]:
    headers = getattr(response, "headers", None)
    if not isinstance(headers, Mapping):
        return {}
    return {str(name): str(value) for name, value in headers.items()}
