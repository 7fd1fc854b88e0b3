"""Anthropic over plain aiohttp (`ANTHROPIC_CLIENT=aiohttp`): `POST /v1/messages` with
`anthropic_wire`'s body, the key in `x-api-key` (the documented header), the
`anthropic-version` the SDK backend sends (or the one pinned), the answer read by
`anthropic_wire.parse_message`.

The same requests and the same error semantics as the SDK backend (`anthropic.py`):
every status through `http.raise_for_status`, transport errors through
`http.mapped_aiohttp_errors`, an answer that is not JSON `BackendBadResponse`; tests run
both against the scripted Anthropic API. It does without the SDK's client and its import:
one call costs a fraction of the SDK's CPU (BENCHMARKS.md, "Providers").
"""

from __future__ import annotations

import orjson
from pydantic import SecretStr

from chater_gpt.backends.anthropic_wire import (
    DEFAULT_API_VERSION,
    DEFAULT_BASE_URL,
    MESSAGES_PATH,
    MODELS_PATH,
    EventReader,
    accepts_sampling,
    messages_body,
    parse_message,
)
from chater_gpt.backends.http import JsonHttp, raise_for_status
from chater_gpt.backends.openai_wire import request_headers
from chater_gpt.backends.streaming import event_json, streamed_events
from chater_gpt.domain import ChatCall, ChatResult, DeltaSink


class AnthropicDirectBackend:
    def __init__(
        self,
        *,
        api_key: SecretStr | None,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float,
        api_version: str | None = None,
        name: str = "anthropic",
    ) -> None:
        self._name = name
        root = base_url.rstrip("/")
        self._url = root + MESSAGES_PATH
        self._models_url = root + MODELS_PATH
        self._api_version = api_version or DEFAULT_API_VERSION
        self._send_temperature = accepts_sampling(self._api_version)
        key = api_key.get_secret_value() if api_key is not None else ""
        headers = {
            "anthropic-version": self._api_version,
            # The API refuses a request without a key header; a proxy that needs no key
            # gets the SDK backend's placeholder.
            "x-api-key": key or "not-needed",
        }
        self._http = JsonHttp(name, timeout=timeout, headers=headers)

    @property
    def name(self) -> str:
        return self._name

    @property
    def api_version(self) -> str:
        """The `anthropic-version` every request carries."""
        return self._api_version

    async def complete(self, call: ChatCall) -> ChatResult:
        body = messages_body(call, send_temperature=self._send_temperature)
        answer = await self._http.request(
            "POST", self._url, data=orjson.dumps(body), headers=request_headers(call)
        )
        raise_for_status(answer.status, answer.headers, self._name)
        message = answer.json(self._name)
        return parse_message(message, backend=self._name, requested_model=call.model)

    async def stream(self, call: ChatCall, on_delta: DeltaSink) -> ChatResult:
        """`"stream": true`: server-sent `event: <type>` / `data: <json>` frames."""
        body = {**messages_body(call, send_temperature=self._send_temperature), "stream": True}
        reader = EventReader(backend=self._name, requested_model=call.model)
        pending = self._http.session().post(
            self._url, data=orjson.dumps(body), headers=request_headers(call)
        )
        async with streamed_events(pending, self._name) as events:
            async for event in events:
                if event.event == "ping":
                    continue
                text = reader.feed(event.event, event_json(event, self._name))
                if text:
                    await on_delta(text)
        return reader.result()

    async def ping(self) -> None:
        answer = await self._http.request("GET", self._models_url, params={"limit": "1"})
        raise_for_status(answer.status, answer.headers, self._name)

    async def aclose(self) -> None:
        await self._http.aclose()
