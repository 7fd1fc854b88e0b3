"""Anthropic (Claude) through the official async SDK (`anthropic`, pinned in
requirements.txt): the Messages API, `POST /v1/messages`.

The request and the answer are `anthropic_wire`'s (system prompt, alternation, images,
JSON answers, usage, finish reasons). As the OpenAI backend does, the SDK's low-level
`post` is called with the body we build and the JSON is read by `parse_message`: the
SDK keeps its transport, authentication, version header, status errors and timeouts,
and we skip its typed request transform and response models (what cost the OpenAI SDK
half of its CPU per call, BENCHMARKS.md). `ping` reads `GET /v1/models?limit=1`, which
spends no tokens.

The client: the SDK's aiohttp transport (`DefaultAioHttpClient`), as the OpenAI backend
uses, the key as given (the SDK sends it as `Authorization: Bearer`; without a
key a placeholder, so the SDK never looks for credentials in the environment or in
profile files), the SDK's own retries off (the resilience layer owns the one retry
loop), its OpenTelemetry spans off (they would record requests outside our own
observability). Each call carries `X-Request-ID` (the correlation id) and the call's
`extra_headers`.

Temperature and the API version: the pinned SDK (2.14.0) sends `anthropic-version:
2026-10-21`, and that version removed `temperature`, `top_p` and `top_k` (the API
refuses a request with any of them, even at the default value); its `messages.create`
has no `temperature` parameter any more. So by default no temperature is sent and the
model samples as it does by default. `api_version` pins an earlier version instead
(e.g. "2023-06-01", through the client's default headers); then the call's temperature
is sent, clamped to Anthropic's 0..1 (see `anthropic_wire.accepts_sampling`).

Errors are mapped to ours with the same status rules as every backend
(`http.raise_for_status`): 401/403 credentials; 429 rate limited, with `retry-after-ms`
or `retry-after`; 408, 5xx and Anthropic's 529 overloaded retryable; any other 4xx
(400, 402 billing, 404, 413, 422) the request's fault, not retried; timeouts
`BackendTimeout`; refused, reset or cut connections and failed connects
`BackendUnavailable` (also the transport's own errors, aiohttp's or `httpx2`'s, when the
SDK lets one escape); an answer that is not a Messages API answer `BackendBadResponse`. Messages
never carry the upstream body, the URL or the key; the SDK's error is chained.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import anthropic
import httpx2
from pydantic import SecretStr

from chater_gpt.backends.anthropic_wire import (
    DEFAULT_BASE_URL,
    MESSAGES_PATH,
    MODELS_PATH,
    EventReader,
    accepts_sampling,
    messages_body,
    parse_message,
)
from chater_gpt.backends.http import error_for_status, mapped_aiohttp_errors, stream_error
from chater_gpt.backends.openai_wire import request_headers
from chater_gpt.backends.streaming import mapped_items
from chater_gpt.domain import ChatCall, ChatResult, DeltaSink
from chater_gpt.errors import (
    BackendBadResponse,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
)


class AnthropicBackend:
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
        key = api_key.get_secret_value() if api_key is not None else ""
        self._client = anthropic.AsyncAnthropic(
            api_key=key or "not-needed",
            base_url=base_url,
            timeout=timeout,
            max_retries=0,
            default_headers={"anthropic-version": api_version} if api_version else None,
            open_telemetry=False,
            # The SDK's aiohttp transport: ~1 ms of CPU less per call than its default
            # httpx2 one (BENCHMARKS.md, "Providers"), errors mapped alike.
            http_client=anthropic.DefaultAioHttpClient(timeout=timeout),
        )
        # The version the client sends: the one pinned here, else the SDK's.
        sent = self._client.default_headers.get("anthropic-version")
        self._api_version = sent if isinstance(sent, str) else ""
        self._send_temperature = bool(self._api_version) and accepts_sampling(self._api_version)

    @property
    def name(self) -> str:
        return self._name

    @property
    def api_version(self) -> str:
        """The `anthropic-version` every request carries."""
        return self._api_version

    async def complete(self, call: ChatCall) -> ChatResult:
        body = messages_body(call, send_temperature=self._send_temperature)
        with _mapped_errors(self._name):
            answer = await self._client.post(
                MESSAGES_PATH,
                body=body,
                cast_to=object,
                options={"headers": request_headers(call)},
            )
        return parse_message(answer, backend=self._name, requested_model=call.model)

    async def stream(self, call: ChatCall, on_delta: DeltaSink) -> ChatResult:
        # The same low-level `post`, streaming: the SDK parses the events, skips `ping`,
        # raises an `error` event as a status error (status 200, the error as its body)
        # and hands every other event's JSON over as is.
        body = {**messages_body(call, send_temperature=self._send_temperature), "stream": True}
        reader = EventReader(backend=self._name, requested_model=call.model)
        with _mapped_errors(self._name):
            events = await self._client.post(
                MESSAGES_PATH,
                body=body,
                cast_to=object,
                options={"headers": request_headers(call)},
                stream=True,
                stream_cls=anthropic.AsyncStream[object],
            )
        async with events:
            async for data in mapped_items(events.__aiter__(), lambda: _mapped_errors(self._name)):
                kind = data.get("type") if isinstance(data, dict) else None
                text = reader.feed(str(kind or ""), data)
                if text:
                    await on_delta(text)
        return reader.result()

    async def ping(self) -> None:
        with _mapped_errors(self._name):
            await self._client.get(MODELS_PATH, cast_to=object, options={"params": {"limit": 1}})

    async def aclose(self) -> None:
        await self._client.close()


@contextmanager
def _mapped_errors(backend: str) -> Iterator[None]:
    unreachable = f"the {backend} backend could not be reached"
    try:
        # What the aiohttp transport lets through unwrapped, mapped as every aiohttp
        # client's is.
        with mapped_aiohttp_errors(backend):
            yield
    except anthropic.APITimeoutError as exc:
        if _failed_to_connect(exc):
            raise BackendUnavailable(unreachable) from exc
        raise BackendTimeout(f"the {backend} backend timed out") from exc
    except anthropic.APIConnectionError as exc:
        raise BackendUnavailable(unreachable) from exc
    except anthropic.APIStatusError as exc:
        raise _status_error(exc, backend) from exc
    except anthropic.APIResponseValidationError as exc:
        raise BackendBadResponse(f"the {backend} backend sent an unexpected response") from exc
    except anthropic.AnthropicError as exc:
        raise BackendError(f"the {backend} backend failed") from exc
    # The transport's own errors. The SDK wraps what sending raises (a connection cut
    # mid-answer is an APIConnectionError), not what reading a body later raises, as a
    # stream's does; and JSON that does not parse is a bare ValueError.
    except httpx2.ConnectTimeout as exc:
        raise BackendUnavailable(unreachable) from exc
    except httpx2.TimeoutException as exc:
        raise BackendTimeout(f"the {backend} backend timed out") from exc
    except httpx2.TransportError as exc:
        raise BackendUnavailable(unreachable) from exc
    except (httpx2.HTTPError, httpx2.StreamError, ValueError) as exc:
        # A body it could not decode, or JSON that does not parse.
        raise BackendBadResponse(f"the {backend} backend sent an unexpected response") from exc


def _status_error(exc: anthropic.APIStatusError, backend: str) -> BackendError:
    if exc.status_code < 400:  # an `error` event inside a stream that began with 200
        body = exc.body if isinstance(exc.body, dict) else {}
        return stream_error(body.get("error"), backend)
    return error_for_status(exc.status_code, exc.response.headers, backend)


def _failed_to_connect(exc: BaseException) -> bool:
    """A timeout while connecting (nothing was sent) is an unreachable server, as a
    refused connection is; a timeout waiting for the answer is a timeout."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, httpx2.ConnectTimeout | ConnectionError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
