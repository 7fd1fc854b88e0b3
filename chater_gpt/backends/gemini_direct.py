"""Gemini over plain aiohttp (`GEMINI_CLIENT=aiohttp`): `POST
/{version}/models/{model}:generateContent` with `gemini_wire`'s body, the key in
`x-goog-api-key`, the answer read by `gemini_wire.result_of_json`.

The same requests and the same error semantics as the SDK backend (`gemini.py`): error
answers through `gemini_wire.error_for` (the rules the SDK's `APIError` goes through),
transport errors through `http.mapped_aiohttp_errors` (the SDK backend's too), an answer
that is not JSON `BackendBadResponse`; tests run both against the scripted Gemini API.
It does without the SDK's typed models and its import (~50 MB): one call costs a
fraction of the SDK's CPU (BENCHMARKS.md, "Providers").
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

import aiohttp
import orjson
from pydantic import SecretStr

from chater_gpt.backends.gemini_wire import (
    DEFAULT_API_VERSION,
    DEFAULT_BASE_URL,
    ChunkReader,
    checked_settings,
    error_for,
    json_default,
    request_body,
    result_of_json,
)
from chater_gpt.backends.http import mapped_aiohttp_errors
from chater_gpt.backends.openai_wire import request_headers
from chater_gpt.backends.streaming import event_json, streamed_events
from chater_gpt.domain import ChatCall, ChatResult, DeltaSink
from chater_gpt.errors import BackendBadResponse, BackendError


class GeminiDirectBackend:
    def __init__(
        self,
        *,
        api_key: SecretStr | None,
        base_url: str | None,
        timeout: float,
        api_version: str | None = None,
        name: str = "gemini",
    ) -> None:
        key = checked_settings(api_key, base_url)
        self._name = name
        root = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self._root = f"{root}/{api_version or DEFAULT_API_VERSION}/models"
        self._timeout = timeout
        self._headers = {
            "Content-Type": "application/json",
            "x-goog-api-key": key.get_secret_value(),
        }
        self._session: aiohttp.ClientSession | None = None

    @property
    def name(self) -> str:
        return self._name

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use: a ClientSession belongs to the running event loop.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
                headers=self._headers,
            )
        return self._session

    async def complete(self, call: ChatCall) -> ChatResult:
        body = orjson.dumps(request_body(call), default=json_default)
        url = self._url(call, "generateContent")
        with mapped_aiohttp_errors(self._name):
            async with self._client().post(
                url, data=body, headers=request_headers(call)
            ) as response:
                raw = await response.read()
                status, headers = response.status, response.headers
        if status >= 400:
            raise error_for(status, _json_or_none(raw), headers, self._name)
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BackendBadResponse(f"the {self._name} backend sent a non-JSON answer") from exc
        return result_of_json(answer, backend=self._name, requested_model=call.model)

    async def stream(self, call: ChatCall, on_delta: DeltaSink) -> ChatResult:
        """`:streamGenerateContent?alt=sse`: one `data: <GenerateContentResponse>` each."""
        body = orjson.dumps(request_body(call), default=json_default)
        reader = ChunkReader(backend=self._name, requested_model=call.model)
        pending = self._client().post(
            self._url(call, "streamGenerateContent"),
            params={"alt": "sse"},
            data=body,
            headers=request_headers(call),
        )
        async with streamed_events(pending, self._name, self._error_for) as events:
            async for event in events:
                text = reader.feed(event_json(event, self._name))
                if text:
                    await on_delta(text)
        return reader.result()

    def _url(self, call: ChatCall, method: str) -> str:
        # As the SDK does: a "models/" prefix is the resource name's, not part of the id.
        model = quote(call.model.removeprefix("models/"), safe="")
        return f"{self._root}/{model}:{method}"

    def _error_for(self, status: int, headers: Mapping[str, str], raw: bytes) -> BackendError:
        return error_for(status, _json_or_none(raw), headers, self._name)

    async def ping(self) -> None:
        with mapped_aiohttp_errors(self._name):
            async with self._client().get(self._root, params={"pageSize": "1"}) as response:
                raw = await response.read()
                status, headers = response.status, response.headers
        if status >= 400:
            raise error_for(status, _json_or_none(raw), headers, self._name)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _json_or_none(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
