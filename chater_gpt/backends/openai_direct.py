"""OpenAI (and any OpenAI-compatible server) over plain aiohttp (`OPENAI_CLIENT=aiohttp`).

The same wire format and the same error semantics as the SDK client (status codes,
Retry-After, timeouts, connection errors), for a third of its CPU per call: the
choice for high-throughput deployments (BENCHMARKS.md, benchmark B).
"""

from __future__ import annotations

import orjson
from pydantic import SecretStr

from chater_gpt.backends.http import JsonHttp, raise_for_status
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


class OpenAIDirectBackend:
    def __init__(
        self, *, api_key: SecretStr | None, base_url: str, timeout: float, name: str = "openai"
    ) -> None:
        self._name = name
        self._url = base_url.rstrip("/") + CHAT_COMPLETIONS_PATH
        self._models_url = base_url.rstrip("/") + MODELS_PATH
        key = api_key.get_secret_value() if api_key is not None else ""
        auth = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = JsonHttp(name, timeout=timeout, headers=auth)

    @property
    def name(self) -> str:
        return self._name

    async def complete(self, call: ChatCall) -> ChatResult:
        answer = await self._http.request(
            "POST", self._url, data=orjson.dumps(chat_body(call)), headers=request_headers(call)
        )
        raise_for_status(answer.status, answer.headers, self._name)
        body = answer.json(self._name)
        return parse_completion(body, backend=self._name, requested_model=call.model)

    async def stream(self, call: ChatCall, on_delta: DeltaSink) -> ChatResult:
        """Server-sent `data: <chunk>` events, ended by `data: [DONE]`."""
        reader = ChunkReader(backend=self._name, requested_model=call.model)
        pending = self._http.session().post(
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
        answer = await self._http.request("GET", self._models_url)
        raise_for_status(answer.status, answer.headers, self._name)

    async def aclose(self) -> None:
        await self._http.aclose()
