"""OpenAI (and any OpenAI-compatible server) over plain aiohttp (`OPENAI_CLIENT=aiohttp`).

The same wire format and the same error semantics as the SDK client (status codes,
Retry-After, timeouts, connection errors), for a third of its CPU per call: the
choice for high-throughput deployments (BENCHMARKS.md, benchmark B).
"""

from __future__ import annotations

import aiohttp
import orjson
from pydantic import SecretStr

from chater_gpt.backends.http import mapped_aiohttp_errors, raise_for_status
from chater_gpt.backends.openai_wire import (
    CHAT_COMPLETIONS_PATH,
    MODELS_PATH,
    ChunkReader,
    chat_body,
    parse_completion,
    request_headers,
    stream_body,
)
from chater_gpt.backends.streaming import event_json, streamed_events
from chater_gpt.domain import ChatCall, ChatResult, DeltaSink
from chater_gpt.errors import BackendBadResponse


class OpenAIDirectBackend:
    def __init__(
        self, *, api_key: SecretStr | None, base_url: str, timeout: float, name: str = "openai"
    ) -> None:
        self._name = name
        self._url = base_url.rstrip("/") + CHAT_COMPLETIONS_PATH
        self._models_url = base_url.rstrip("/") + MODELS_PATH
        self._timeout = timeout
        self._auth = (
            {"Authorization": f"Bearer {api_key.get_secret_value()}"}
            if api_key is not None and api_key.get_secret_value()
            else {}
        )
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
                headers={"Content-Type": "application/json", **self._auth},
            )
        return self._session

    async def complete(self, call: ChatCall) -> ChatResult:
        with mapped_aiohttp_errors(self._name):
            async with self._client().post(
                self._url, data=orjson.dumps(chat_body(call)), headers=request_headers(call)
            ) as response:
                raw = await response.read()
                status, headers = response.status, response.headers
        raise_for_status(status, headers, self._name)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BackendBadResponse(f"the {self._name} backend sent a non-JSON answer") from exc
        return parse_completion(body, backend=self._name, requested_model=call.model)

    async def stream(self, call: ChatCall, on_delta: DeltaSink) -> ChatResult:
        """Server-sent `data: <chunk>` events, ended by `data: [DONE]`."""
        reader = ChunkReader(backend=self._name, requested_model=call.model)
        pending = self._client().post(
            self._url, data=orjson.dumps(stream_body(call)), headers=request_headers(call)
        )
        async with streamed_events(pending, self._name) as events:
            async for event in events:
                if event.data.strip() == "[DONE]":
                    break
                text = reader.feed(event_json(event, self._name))
                if text:
                    await on_delta(text)
        return reader.result()

    async def ping(self) -> None:
        with mapped_aiohttp_errors(self._name):
            async with self._client().get(self._models_url) as response:
                await response.read()
                status, headers = response.status, response.headers
        raise_for_status(status, headers, self._name)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
