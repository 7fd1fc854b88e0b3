"""Google Gemini (the Gemini Developer API) through the official async SDK, `google-genai`.

Calls go through `client.aio.models.generate_content`; the wire mapping (messages,
images, JSON answers, the answer, the API's errors) is `gemini_wire`'s. The SDK's own
retries are off (`HttpRetryOptions(attempts=1)`, which also stops its implicit retry of
a refused connection, a 1..10 s sleep): the resilience layer owns the one retry loop.
`timeout` bounds each request (the SDK's `HttpOptions.timeout`, in milliseconds).

The SDK runs on aiohttp. We hand it our own `aiohttp.ClientSession` (created on first
use, since a session belongs to the running loop), closed by `aclose`: the session the
SDK would open itself subclasses `aiohttp.ClientSession`, which aiohttp deprecates with
a DeprecationWarning per session.

Errors, chained with `from exc`; messages without the key, the address or the body:
- `google.genai.errors.APIError` (ClientError 4xx, ServerError 5xx): `gemini_wire.error_of`
  (401/403 and a 400 API_KEY_INVALID: credentials; 429 RESOURCE_EXHAUSTED: rate limited,
  with the `retry-after` header or the RetryInfo `retryDelay`; 408 and 5xx: retryable;
  any other 4xx: rejected).
- a connect timeout, a refused or broken connection, a cut answer: `BackendUnavailable`;
  the deadline (the builtin TimeoutError): `BackendTimeout`; another aiohttp error:
  `BackendError` (retryable); an answer the SDK cannot read: `BackendBadResponse`.

`ping` lists the models (`models.list`, one per page): no tokens spent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from pydantic import SecretStr

from chater_gpt.backends.gemini_wire import error_of, request_of, result_of
from chater_gpt.domain import ChatCall, ChatResult
from chater_gpt.errors import (
    BackendBadResponse,
    BackendConfigError,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
)


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
        if api_key is None or not api_key.get_secret_value():
            raise BackendConfigError("GEMINI_API_KEY must be set for the gemini backend")
        if base_url is not None and not base_url.startswith(("http://", "https://")):
            raise BackendConfigError("GEMINI_BASE_URL must be an http(s) URL")
        self._name = name
        self._api_key = api_key
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
        yield
    except genai_errors.APIError as exc:
        raise error_of(exc, backend) from exc
    except aiohttp.ConnectionTimeoutError as exc:
        raise BackendUnavailable(f"the {backend} backend could not be reached") from exc
    except TimeoutError as exc:
        raise BackendTimeout(f"the {backend} backend timed out") from exc
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError) as exc:
        raise BackendUnavailable(f"the {backend} backend could not be reached") from exc
    except aiohttp.ClientError as exc:
        raise BackendError(f"the {backend} backend failed") from exc
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        # The SDK reading an answer that is not JSON, or not a GenerateContentResponse.
        raise BackendBadResponse(f"the {backend} backend sent an unexpected response") from exc
