"""The Gemini API's wire format (`models.generateContent`), as JSON in the REST API's field
names (pure: no I/O, no SDK). `gemini_direct.py` sends it over aiohttp; `gemini.py` hands
the same request to the google-genai SDK (whose models take these field names) and reads
the SDK's answer through the same `result_of_json`, so both clients ask and read alike.

Request (`request_body`):
- system (and OpenAI's "developer") messages, wherever they stand -> `systemInstruction`,
  their texts in order (images there are left out); user -> role "user", assistant ->
  role "model"; consecutive messages of one role become one Content. Empty texts are
  left out (the API refuses an empty text part) and a message left without parts is
  dropped.
- images (`image_url` parts): a base64 data URL -> `inlineData` (its MIME type and the
  bytes; `json_default` writes them as base64); an http(s) URL -> `fileData` with the
  URL as `fileUri` (the API fetches external URLs itself, see
  ai.google.dev/gemini-api/docs/file-input-methods) and the MIME type its extension
  names (png, jpeg, webp, heic, heif, gif), else none (the API reads it from the fetched
  file). Anything else is `InvalidImage`.
- `generationConfig`: `max_tokens` -> `maxOutputTokens`; `temperature`; `seed`. JSON
  answers: `json_object` -> `responseMimeType` "application/json"; `json_schema` -> the
  same plus `responseJsonSchema`, the caller's plain JSON Schema (the other field,
  `responseSchema`, takes Google's OpenAPI subset, which a JSON Schema need not fit;
  the API ignores the keywords it does not support, and the service checks the answer
  either way). `request_id` and `extra_headers` travel as request headers.

Response (`result_of_json`): the first candidate's text parts (thoughts left out); usage
from `usageMetadata` (prompt = `promptTokenCount`; completion = `candidatesTokenCount` +
`thoughtsTokenCount`, both billed as output; cached = `cachedContentTokenCount`, part of
the prompt); `finishReason` in OpenAI's words (`finish_reason_of`); `modelVersion`, else
the requested model. No candidate: a blocked prompt is `BackendRejected` naming the
block reason, else `BackendBadResponse`.

Errors (`error_for`: the status, Google's error body, the headers) by
`http.raise_for_status`'s rules, after two Gemini rules: 400 with an ErrorInfo reason
API_KEY_INVALID is a credentials error, and a google.rpc.RetryInfo `retryDelay` ("12s")
counts as a Retry-After when no header says one. Messages never carry the key, the
address or the upstream body.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from chater_gpt.backends.http import cut_short, raise_for_status
from chater_gpt.backends.streaming import streamed_result
from chater_gpt.domain import ChatCall, ChatMessage, ChatResult
from chater_gpt.errors import (
    BackendAuthError,
    BackendBadResponse,
    BackendConfigError,
    BackendError,
    BackendRejected,
    InvalidImage,
)
from chater_gpt.images import split_data_url

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

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
DEFAULT_API_VERSION = "v1"  # google-genai 3.6.1's (a unit test keeps them equal)

Part = dict[str, Any]  # a part of a Content, in the REST API's field names


def checked_settings(api_key: SecretStr | None, base_url: str | None) -> SecretStr:
    """The key, once the key and the base URL are usable; else BackendConfigError."""
    if api_key is None or not api_key.get_secret_value():
        raise BackendConfigError("GEMINI_API_KEY must be set for the gemini backend")
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        raise BackendConfigError("GEMINI_BASE_URL must be an http(s) URL")
    return api_key


# --- request ------------------------------------------------------------------------


def request_body(call: ChatCall) -> dict[str, Any]:
    """The `generateContent` body for a call (the REST API's field names; the model is in
    the URL). Inline images carry their bytes: JSON-encode them with `json_default`.
    Raises InvalidImage, BackendRejected."""
    system: list[Part] = []
    contents: list[dict[str, Any]] = []
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
        if contents and contents[-1]["role"] == gemini_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": gemini_role, "parts": parts})
    if not contents:
        raise BackendRejected("the gemini backend needs a user or assistant message")
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    body["generationConfig"] = _generation_config(call)
    return body


def json_default(value: object) -> str:
    """JSON for what `request_body` holds besides plain JSON: bytes, as base64."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _generation_config(call: ChatCall) -> dict[str, Any]:
    config: dict[str, Any] = {"maxOutputTokens": call.max_tokens, "temperature": call.temperature}
    if call.seed is not None:
        config["seed"] = call.seed
    fmt = call.response_format
    if fmt is not None:
        config["responseMimeType"] = "application/json"
        if fmt.type == "json_schema" and fmt.schema is not None:
            config["responseJsonSchema"] = dict(fmt.schema)
    return config


def _parts(message: ChatMessage, *, images: bool) -> list[Part]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[Part] = []
    for item in content or []:
        if not isinstance(item, Mapping):
            continue
        if item.get("type") == "text":
            text = item.get("text")
            if isinstance(text, str) and text:
                parts.append({"text": text})
        elif item.get("type") == "image_url" and images:
            image = item.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else None
            parts.append(image_part(str(url or "")))
    return parts


def image_part(url: str) -> Part:
    """An OpenAI `image_url` as a Gemini part (see the module's docstring)."""
    if url.startswith("data:"):
        inline = split_data_url(url)
        return {"inlineData": {"mimeType": inline.mime_type, "data": inline.decoded()}}
    if url.startswith(("https://", "http://")):
        file_data = {"fileUri": url}
        mime_type = url_image_type(url)
        if mime_type is not None:
            file_data["mimeType"] = mime_type
        return {"fileData": file_data}
    raise InvalidImage("the gemini backend takes images as base64 data URLs or http(s) URLs")


def url_image_type(url: str) -> str | None:
    """The image MIME type a URL's extension names, if any."""
    path = urlsplit(url).path
    _, dot, extension = path.rpartition(".")
    return _IMAGE_TYPES.get(extension.lower()) if dot and "/" not in extension else None


# --- response -----------------------------------------------------------------------


def result_of_json(body: object, *, backend: str, requested_model: str) -> ChatResult:
    """The ChatResult of a `generateContent` answer's JSON; raises BackendRejected or
    BackendBadResponse."""
    bad = BackendBadResponse(f"the {backend} backend sent an unexpected response")
    if not isinstance(body, Mapping):
        raise bad
    try:
        candidates = body.get("candidates")
        if not candidates:
            raise _no_candidate(body, backend)
        candidate = candidates[0]
        parts = (candidate.get("content") or {}).get("parts") or []
        text = "".join(_texts(parts))
        prompt, completion, cached = usage_counts(body.get("usageMetadata") or {})
        finish = finish_reason_of(candidate.get("finishReason"))
        model = body.get("modelVersion") or requested_model
    except (AttributeError, TypeError, ValueError) as exc:
        raise bad from exc
    return ChatResult(
        text=text,
        model=str(model),
        prompt_tokens=prompt,
        completion_tokens=completion,
        finish_reason=finish,
        backend=backend,
        cached_prompt_tokens=cached,
    )


def usage_counts(usage: Mapping[str, Any]) -> tuple[int, int, int]:
    """(prompt, completion, cached prompt) tokens of a `usageMetadata` object: the
    thinking tokens are completion tokens (they are billed as output)."""
    completion = int(usage.get("candidatesTokenCount") or 0)
    completion += int(usage.get("thoughtsTokenCount") or 0)
    cached = int(usage.get("cachedContentTokenCount") or 0)
    return int(usage.get("promptTokenCount") or 0), completion, cached


class ChunkReader:
    """A `streamGenerateContent` stream's GenerateContentResponses -> the text deltas,
    then the ChatResult: each chunk's first candidate's text parts; the usage of the
    last chunk (the one with the finish reason has the full count); a stream that ends
    before a finish reason is cut short. An `{"error": ...}` chunk raises its error."""

    def __init__(self, *, backend: str, requested_model: str) -> None:
        self._backend = backend
        self._model = requested_model
        self._parts: list[str] = []
        self._finish: object = None
        self._usage: Mapping[str, Any] | None = None

    def feed(self, chunk: object) -> str:
        """The text delta of one chunk ("" when it has none)."""
        bad = BackendBadResponse(f"the {self._backend} backend sent an unexpected stream chunk")
        if not isinstance(chunk, Mapping):
            raise bad
        error = chunk.get("error")
        if isinstance(error, Mapping):
            code = error.get("code")
            raise error_for(code if isinstance(code, int) else 500, chunk, {}, self._backend)
        if isinstance(chunk.get("usageMetadata"), Mapping):
            self._usage = chunk["usageMetadata"]
        self._model = str(chunk.get("modelVersion") or self._model)
        candidates = chunk.get("candidates")
        if not candidates:
            if (chunk.get("promptFeedback") or {}).get("blockReason") is not None:
                raise _no_candidate(chunk, self._backend)
            return ""
        try:
            candidate = candidates[0]
            text = "".join(_texts((candidate.get("content") or {}).get("parts") or []))
            if candidate.get("finishReason") is not None:
                self._finish = candidate["finishReason"]
        except (AttributeError, TypeError, IndexError, KeyError) as exc:
            raise bad from exc
        self._parts.append(text)
        return text

    def result(self) -> ChatResult:
        if self._finish is None:
            raise cut_short(self._backend)
        return streamed_result(
            backend=self._backend,
            parts=self._parts,
            model=self._model,
            finish_reason=finish_reason_of(self._finish),
            usage=self._usage,
            counts=usage_counts,
        )


def _texts(parts: Iterable[Mapping[str, Any]]) -> Iterable[str]:
    for part in parts:
        text = part.get("text")
        if isinstance(text, str) and not part.get("thought"):
            yield text


def _no_candidate(body: Mapping[str, Any], backend: str) -> BackendError:
    reason = (body.get("promptFeedback") or {}).get("blockReason")
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


def error_for(status: int, body: object, headers: Mapping[str, str], backend: str) -> BackendError:
    """Our error for an error answer: its status, Google's error body (parsed JSON, or
    anything else when it was none) and its headers (see the module's docstring)."""
    details = _error_details(body)
    if status == 400 and any(
        d.get("@type") == _ERROR_INFO and d.get("reason") == "API_KEY_INVALID" for d in details
    ):
        return BackendAuthError(f"the {backend} backend rejected the credentials")
    merged = dict(headers)
    if not {"retry-after", "retry-after-ms"} & {name.lower() for name in merged}:
        delay = retry_delay(details)
        if delay is not None:
            merged["retry-after"] = f"{delay:g}"
    try:
        raise_for_status(status, merged, backend)
    except BackendError as mapped:
        return mapped
    return BackendError(f"the {backend} backend failed (HTTP {status})")


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
