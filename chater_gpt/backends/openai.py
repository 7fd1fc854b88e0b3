"""OpenAI (and any OpenAI-compatible server) through the official async SDK
(`OPENAI_CLIENT=sdk`, the default).

The SDK's own retries are off: the resilience layer owns the one retry loop. The
SDK's errors are mapped to ours (the same status rules as every backend, see
`http.raise_for_status`), chained with `from exc`; messages say what happened
without the upstream body, URL or key.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import openai
from pydantic import SecretStr

from chater_gpt.backends.http import raise_for_status, stream_error
from chater_gpt.backends.openai_wire import (
    CHAT_COMPLETIONS_PATH,
    MODELS_PATH,
    ChunkReader,
    chat_body,
    parse_completion,
    request_headers,
    stream_body,
)
from chater_gpt.backends.streaming import mapped_items
from chater_gpt.domain import ChatCall, ChatResult, DeltaSink
from chater_gpt.errors import (
    BackendBadResponse,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
)


class OpenAIBackend:
    def __init__(
        self,
        *,
        api_key: SecretStr | None,
        base_url: str,
        timeout: float,
        name: str = "openai",
        use_aiohttp: bool = True,
    ) -> None:
        self._name = name
        key = api_key.get_secret_value() if api_key is not None else "not-needed"
        http_client = openai.DefaultAioHttpClient(timeout=timeout) if use_aiohttp else None
        self._client = openai.AsyncOpenAI(
            api_key=key,
            base_url=base_url,
            timeout=timeout,
            max_retries=0,
            http_client=http_client,
        )

    @property
    def name(self) -> str:
        return self._name

    async def complete(self, call: ChatCall) -> ChatResult:
        with _mapped_errors(self._name):
            # The SDK's low-level `post` keeps its transport, status-code errors and
            # timeouts but skips its typed request transform and response models, which
            # cost half of the CPU per call (BENCHMARKS.md); we read the JSON ourselves.
            body = await self._client.post(
                CHAT_COMPLETIONS_PATH,
                body=chat_body(call),
                cast_to=object,
                options={"headers": request_headers(call)},
            )
        return parse_completion(body, backend=self._name, requested_model=call.model)

    async def stream(self, call: ChatCall, on_delta: DeltaSink) -> ChatResult:
        # The same low-level `post`, streaming: the SDK parses the server-sent events
        # and hands each chunk's JSON over as is (it stops at `[DONE]`, and raises an
        # `{"error": ...}` chunk as an APIError carrying that error object).
        reader = ChunkReader(backend=self._name, requested_model=call.model)
        with _mapped_errors(self._name):
            chunks = await self._client.post(
                CHAT_COMPLETIONS_PATH,
                body=stream_body(call),
                cast_to=object,
                options={"headers": request_headers(call)},
                stream=True,
                stream_cls=openai.AsyncStream[object],
            )
        async with chunks:
            async for chunk in mapped_items(chunks.__aiter__(), lambda: _mapped_errors(self._name)):
                text = reader.feed(chunk)
                if text:
                    await on_delta(text)
        return reader.result()

    async def ping(self) -> None:
        with _mapped_errors(self._name):
            await self._client.get(MODELS_PATH, cast_to=object)

    async def aclose(self) -> None:
        await self._client.close()


@contextmanager
def _mapped_errors(backend: str) -> Iterator[None]:
    try:
        yield
    except openai.APITimeoutError as exc:
        if _refused(exc):
            raise BackendUnavailable(f"the {backend} backend could not be reached") from exc
        raise BackendTimeout(f"the {backend} backend timed out") from exc
    except openai.APIConnectionError as exc:
        raise BackendUnavailable(f"the {backend} backend could not be reached") from exc
    except openai.APIStatusError as exc:
        try:
            raise_for_status(exc.status_code, exc.response.headers, backend)
        except BackendError as mapped:
            raise mapped from exc
        raise BackendError(f"the {backend} backend failed (HTTP {exc.status_code})") from exc
    except openai.APIResponseValidationError as exc:
        raise BackendBadResponse(f"the {backend} backend sent an unexpected response") from exc
    except openai.APIError as exc:
        # An error event inside a stream: the SDK keeps its error object as `body`.
        raise stream_error(exc.body, backend) from exc
    except ValueError as exc:
        # A stream event whose data is not JSON (the SDK parses it with json.loads).
        raise BackendBadResponse(f"the {backend} backend sent an unexpected response") from exc
    except openai.OpenAIError as exc:
        raise BackendError(f"the {backend} backend failed") from exc


def _refused(exc: BaseException) -> bool:
    """The SDK's aiohttp transport reports a refused connection as a connect *timeout*;
    the chained causes tell the two apart (a refusal is not worth a long wait)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
