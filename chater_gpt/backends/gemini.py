"""Google Gemini (the Gemini Developer API) through the official async SDK, `google-genai`.

Calls go through `client.aio.models.generate_content`; the wire mapping (messages,
images, JSON answers, the answer, the API's errors) is `gemini_wire`'s, brought to the
SDK's types at the end of this module (`request_of`, `result_of`, `error_of`). The SDK's own
retries are off (`HttpRetryOptions(attempts=1)`, which also stops its implicit retry of
a refused connection, a 1..10 s sleep): the resilience layer owns the one retry loop.
`timeout` bounds each request (the SDK's `HttpOptions.timeout`, in milliseconds).

The SDK runs on aiohttp. We hand it our own `aiohttp.ClientSession` (created on first
use, since a session belongs to the running loop), closed by `aclose`: the session the
SDK would open itself subclasses `aiohttp.ClientSession`, which aiohttp deprecates with
a DeprecationWarning per session.

Errors, chained with `from exc`; messages without the key, the address or the body:
- `google.genai.errors.APIError` (ClientError 4xx, ServerError 5xx): `error_of`
  (401/403 and a 400 API_KEY_INVALID: credentials; 429 RESOURCE_EXHAUSTED: rate limited,
  with the `retry-after` header or the RetryInfo `retryDelay`; 408 and 5xx: retryable;
  any other 4xx: rejected).
- a connect timeout, a refused or broken connection, a cut answer: `BackendUnavailable`;
  the deadline (the builtin TimeoutError): `BackendTimeout`; another aiohttp error:
  `BackendError` (retryable); an answer the SDK cannot read: `BackendBadResponse`.

`ping` lists the models (`models.list`, one per page): no tokens spent.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import aiohttp
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from pydantic import SecretStr

from chater_gpt.backends.gemini_wire import (
    ChunkReader,
    checked_settings,
    error_for,
    request_body,
    result_of_json,
)
from chater_gpt.backends.http import mapped_aiohttp_errors
from chater_gpt.backends.openai_wire import request_headers
from chater_gpt.backends.streaming import mapped_items
from chater_gpt.domain import ChatCall, ChatResult, DeltaSink
from chater_gpt.errors import BackendBadResponse, BackendError


class GeminiBackend:
    def __init__(
        self,
        *,
        api_key: SecretStr | None,
        base_url: str | None,
        timeout: float,
        api_version: str | None = None,
        name: str = "gemini",
    ) -> None:
        """`base_url` None: the SDK's (https://generativelanguage.googleapis.com);
        `api_version` None: the SDK's (v1 for google-genai 3.6.1), or e.g. "v1beta"."""
        self._name = name
        self._api_key = checked_settings(api_key, base_url)
        self._base_url = base_url
        self._api_version = api_version
        self._timeout_ms = max(1, round(timeout * 1000))
        self._session: aiohttp.ClientSession | None = None
        self._genai: genai.Client | None = None

    @property
    def name(self) -> str:
        return self._name

    def _client(self) -> genai.Client:
        # Created on first use: the aiohttp session belongs to the running event loop.
        if self._genai is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300), trust_env=True
            )
            self._genai = genai.Client(
                api_key=self._api_key.get_secret_value(),
                vertexai=False,
                http_options=types.HttpOptions(
                    base_url=self._base_url,
                    api_version=self._api_version,
                    timeout=self._timeout_ms,
                    retry_options=types.HttpRetryOptions(attempts=1),
                    aiohttp_client=self._session,
                ),
            )
        return self._genai

    async def complete(self, call: ChatCall) -> ChatResult:
        contents, config = request_of(call)
        with mapped_errors(self._name):
            response = await self._client().aio.models.generate_content(
                model=call.model, contents=contents, config=config
            )
        return result_of(response, backend=self._name, requested_model=call.model)

    async def stream(self, call: ChatCall, on_delta: DeltaSink) -> ChatResult:
        # The SDK's `generate_content_stream` (`alt=sse`); it raises an `{"error": ...}`
        # chunk as an APIError, mapped as any other. Each chunk is read as its JSON.
        contents, config = request_of(call)
        reader = ChunkReader(backend=self._name, requested_model=call.model)
        with mapped_errors(self._name):
            chunks = await self._client().aio.models.generate_content_stream(
                model=call.model, contents=contents, config=config
            )
        async for chunk in mapped_items(chunks, lambda: mapped_errors(self._name)):
            text = reader.feed(json_of(chunk, self._name))
            if text:
                await on_delta(text)
        return reader.result()

    async def ping(self) -> None:
        with mapped_errors(self._name):
            await self._client().aio.models.list(config=types.ListModelsConfig(page_size=1))

    async def aclose(self) -> None:
        client, session = self._genai, self._session
        self._genai = self._session = None
        if client is not None:
            await client.aio.aclose()
        if session is not None:
            await session.close()


@contextmanager
def mapped_errors(backend: str) -> Iterator[None]:
    """What the SDK raises, as ours (see the module's docstring), chained."""
    try:
        with mapped_aiohttp_errors(backend):
            yield
    except genai_errors.APIError as exc:
        raise error_of(exc, backend) from exc
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        # The SDK reading an answer that is not JSON, or not a GenerateContentResponse.
        raise BackendBadResponse(f"the {backend} backend sent an unexpected response") from exc


# --- the SDK's side of `gemini_wire` -----------------------------------------------

# The fields of the SDK's answer `result_of` reads.
_ANSWER_FIELDS = {"candidates", "prompt_feedback", "usage_metadata", "model_version"}


def request_of(call: ChatCall) -> tuple[list[types.Content], types.GenerateContentConfig]:
    """`request_body` as the SDK's `contents` and `config` (its models take the REST
    field names), with automatic function calling and continuation off."""
    body = request_body(call)
    headers = request_headers(call)
    contents = [types.Content.model_validate(content) for content in body["contents"]]
    config = types.GenerateContentConfig.model_validate(
        {
            **body["generationConfig"],
            "systemInstruction": body.get("systemInstruction"),
            "automaticFunctionCalling": {"disable": True},
            "automaticContinuation": False,
            "httpOptions": {"headers": headers} if headers else None,
        }
    )
    return contents, config


def result_of(
    response: types.GenerateContentResponse, *, backend: str, requested_model: str
) -> ChatResult:
    """The ChatResult of the SDK's answer: read as its JSON (`result_of_json`)."""
    return result_of_json(
        json_of(response, backend), backend=backend, requested_model=requested_model
    )


def json_of(response: types.GenerateContentResponse, backend: str) -> dict[str, Any]:
    """The fields of the SDK's answer (or of a stream's chunk) the readers read, as the
    REST API's JSON."""
    try:
        return response.model_dump(by_alias=True, exclude_none=True, include=_ANSWER_FIELDS)
    except (AttributeError, TypeError, ValueError) as exc:
        raise BackendBadResponse(f"the {backend} backend sent an unexpected response") from exc


def error_of(exc: genai_errors.APIError, backend: str) -> BackendError:
    """Our error for the SDK's API error (see the module's docstring)."""
    code = exc.code if isinstance(exc.code, int) else 0
    return error_for(code, exc.details, _headers(exc.response), backend)


def _headers(response: object) -> dict[str, str]:
    headers = getattr(response, "headers", None)
    if not isinstance(headers, Mapping):
        return {}
    return {str(name): str(value) for name, value in headers.items()}
