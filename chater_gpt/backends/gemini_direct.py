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
from chater_gpt.backends.http import HttpAnswer, JsonHttp
from chater_gpt.backends.openai_wire import request_headers
from chater_gpt.backends.streaming import event_json, streamed_events
from chater_gpt.domain import ChatCall, ChatResult, DeltaSink
from chater_gpt.errors import BackendError


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
        self._http = JsonHttp(
            name, timeout=timeout, headers={"x-goog-api-key": key.get_secret_value()}
        )

    @property
    def name(self) -> str:
        return self._name

    async def complete(self, call: ChatCall) -> ChatResult:
        body = orjson.dumps(request_body(call), default=json_default)
        answer = await self._http.request(
            "POST", self._url(call, "generateContent"), data=body, headers=request_headers(call)
        )
        self._check(answer)
        return result_of_json(
            answer.json(self._name), backend=self._name, requested_model=call.model
        )

    async def stream(self, call: ChatCall, on_delta: DeltaSink) -> ChatResult:
        """`:streamGenerateContent?alt=sse`: one `data: <GenerateContentResponse>` each."""
        body = orjson.dumps(request_body(call), default=json_default)
        reader = ChunkReader(backend=self._name, requested_model=call.model)
        pending = self._http.session().post(
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
        return error_for(
            status, HttpAnswer(status, headers, raw).json_or_none(), headers, self._name
        )

    def _check(self, answer: HttpAnswer) -> None:
        if answer.status >= 400:
            raise error_for(answer.status, answer.json_or_none(), answer.headers, self._name)

    async def ping(self) -> None:
        self._check(await self._http.request("GET", self._root, params={"pageSize": "1"}))

    async def aclose(self) -> None:
        await self._http.aclose()
