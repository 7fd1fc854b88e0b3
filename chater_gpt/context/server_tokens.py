"""Token counts from a local server's own tokenizer (llama.cpp `/tokenize`, KoboldCPP
`/api/extra/tokencount`), for models no OpenAI encoding describes.

The context builder counts synchronously, so counting is split in two: before a
build the processor awaits `prefetch` of the texts it will count, which asks the
server for every text not in the cache (a few per request: the new message and the
last answer; stored history is cached from earlier turns); `count` then answers
from the cache, and falls back to the closest OpenAI encoding for anything the
server could not count. Truncation cuts with the closest encoding (approximate:
the server's tokens are not split locally). A provider's token-count endpoint
(provider_tokens.py) is used the same way, with the conservative estimate as fallback.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Protocol

import aiohttp
import orjson

from chater_gpt.context.tokens import BpeTokenCounters, TokenCounter
from chater_gpt.domain import ImageInput

log = logging.getLogger(__name__)


class TokenizerEndpoint(Protocol):
    """One server's tokenizer: the token count of a text, or an exception."""

    async def count(self, text: str) -> int: ...

    async def aclose(self) -> None: ...


class _JsonEndpoint:
    path: str

    def __init__(self, root_url: str, *, timeout: float = 5.0) -> None:
        self._url = root_url.rstrip("/") + self.path
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def _post(self, payload: dict[str, Any]) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        async with self._session.post(self._url, data=orjson.dumps(payload)) as response:
            response.raise_for_status()
            return orjson.loads(await response.read())

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class LlamaCppTokenizer(_JsonEndpoint):
    """llama.cpp's server: `POST /tokenize {"content": text}` → `{"tokens": [...]}`."""

    path = "/tokenize"

    async def count(self, text: str) -> int:
        body = await self._post({"content": text, "add_special": False})
        return len(body["tokens"])


class KoboldCppTokenizer(_JsonEndpoint):
    """KoboldCPP: `POST /api/extra/tokencount {"prompt": text}` → `{"value": n}`."""

    path = "/api/extra/tokencount"

    async def count(self, text: str) -> int:
        body = await self._post({"prompt": text})
        return int(body["value"])


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class ServerTokenCounter:
    """A `TokenCounter` answering from counts the server gave (see the module doc)."""

    def __init__(
        self,
        endpoint: TokenizerEndpoint,
        fallback: TokenCounter,
        *,
        cache_size: int = 8192,
        concurrency: int = 8,
        retry_after: float | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._fallback = fallback
        self._cache: OrderedDict[bytes, int] = OrderedDict()
        self._cache_size = cache_size
        self._limit = asyncio.Semaphore(concurrency)
        # After a failure the endpoint is not asked again: never (None, a local server
        # without the endpoint), or for `retry_after` seconds (a provider's endpoint).
        self._retry_after = retry_after
        self._failed_at: float | None = None

    def count(self, text: str) -> int:
        cached = self._cache.get(_digest(text))
        return self._fallback.count(text) if cached is None else cached

    def truncate(self, text: str, max_tokens: int) -> str:
        return self._fallback.truncate(text, max_tokens)

    def image_tokens(self, image: ImageInput) -> int:
        return self._fallback.image_tokens(image)

    @property
    def _failed(self) -> bool:
        if self._failed_at is None:
            return False
        retry_after = self._retry_after
        if retry_after is not None and time.monotonic() - self._failed_at >= retry_after:
            self._failed_at = None
            return False
        return True

    async def prefetch(self, texts: Iterable[str]) -> None:
        if self._failed:
            return
        keyed = {_digest(text): text for text in texts}
        missing = {key: text for key, text in keyed.items() if key not in self._cache}
        if missing:
            await asyncio.gather(*(self._fetch(key, text) for key, text in missing.items()))

    async def _fetch(self, key: bytes, text: str) -> None:
        async with self._limit:
            try:
                counted = await self._endpoint.count(text)
            except (aiohttp.ClientError, TimeoutError, KeyError, ValueError, TypeError):
                if self._failed_at is None:
                    log.warning(
                        "the server's token count is unavailable; counting with %s instead",
                        type(self._fallback).__name__,
                        exc_info=True,
                    )
                self._failed_at = time.monotonic()  # no failing round trip on every request
                return
        self._cache[key] = counted
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


class ServerTokenCounters:
    """Every model of a local server shares the server's tokenizer."""

    needs_prefetch = True

    def __init__(self, endpoint: TokenizerEndpoint, *, fallback_encoding: str = "o200k_base"):
        self._endpoint = endpoint
        self._counter = ServerTokenCounter(
            endpoint, BpeTokenCounters().for_encoding(fallback_encoding)
        )

    def for_model(self, model: str) -> TokenCounter:
        return self._counter

    async def prefetch(self, model: str, texts: Iterable[str]) -> None:
        await self._counter.prefetch(texts)

    async def aclose(self) -> None:
        await self._endpoint.aclose()
