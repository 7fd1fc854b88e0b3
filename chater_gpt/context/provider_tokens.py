"""Exact counts from the providers' token-count endpoints (`PROVIDER_TOKEN_COUNTS`):
Anthropic's `POST /v1/messages/count_tokens` and Gemini's `models/{model}:countTokens`.

Counting runs before every call, so the endpoint is never asked per message of history:
`server_tokens.ServerTokenCounter` asks it once per new text (each text alone, as one
user message, concurrently, bounded), keeps the counts in a bounded LRU keyed by a
digest of the text (a text's count for one model never changes, so nothing expires),
and answers everything else with the conservative estimate (estimate.py). A request
thus waits for at most one round trip, for its new message and the answer before it;
stored history was counted on earlier turns. Both endpoints are free of charge but
rate-limited; when one fails (or times out, after `timeout` seconds) the estimate
counts alone for `retry_after` seconds.

A text counted alone includes the provider's framing of one message (about 7 tokens on
Claude), so a count here slightly exceeds the text's share of a whole prompt: still an
upper bound, and the builder's own per-message overhead comes on top.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

DEFAULT_ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_GEMINI_VERSION = "v1"


class ProviderCountClient:
    """One provider's token-count endpoint over one HTTP session (every model shares it)."""

    def __init__(self, base_url: str, headers: dict[str, str], *, timeout: float) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {"content-type": "application/json", **headers}
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def count(self, model: str, text: str) -> int:
        raise NotImplementedError

    async def _post(self, path: str, payload: dict[str, Any]) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout), headers=self._headers
            )
        async with self._session.post(self._base_url + path, data=orjson.dumps(payload)) as reply:
            reply.raise_for_status()
            return orjson.loads(await reply.read())

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class AnthropicCountTokens(ProviderCountClient):
    """`POST /v1/messages/count_tokens {"model", "messages"}` -> `{"input_tokens": n}`."""

    def __init__(
        self, base_url: str, api_key: str, *, api_version: str | None = None, timeout: float = 2.0
    ) -> None:
        version = api_version or DEFAULT_ANTHROPIC_VERSION
        headers = {"x-api-key": api_key, "anthropic-version": version}
        super().__init__(base_url, headers, timeout=timeout)

    async def count(self, model: str, text: str) -> int:
        body = await self._post(
            "/v1/messages/count_tokens",
            {"model": model, "messages": [{"role": "user", "content": text}]},
        )
        return int(body["input_tokens"])


class GeminiCountTokens(ProviderCountClient):
    """`POST /{version}/models/{model}:countTokens {"contents"}` -> `{"totalTokens": n}`."""

    def __init__(
        self, base_url: str, api_key: str, *, api_version: str | None = None, timeout: float = 2.0
    ) -> None:
        super().__init__(base_url, {"x-goog-api-key": api_key}, timeout=timeout)
        self._version = api_version or DEFAULT_GEMINI_VERSION

    async def count(self, model: str, text: str) -> int:
        name = model.removeprefix("models/")
        body = await self._post(
            f"/{self._version}/models/{name}:countTokens",
            {"contents": [{"role": "user", "parts": [{"text": text}]}]},
        )
        return int(body["totalTokens"])


class ModelCountEndpoint:
    """One model's view of a provider's endpoint: `server_tokens.TokenizerEndpoint`."""

    def __init__(self, client: ProviderCountClient, model: str) -> None:
        self._client = client
        self._model = model

    async def count(self, text: str) -> int:
        return await self._client.count(self._model, text)

    async def aclose(self) -> None:
        return None  # the client's session is shared; its owner closes it
