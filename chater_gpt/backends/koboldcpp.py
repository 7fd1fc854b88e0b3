"""KoboldCPP through plain aiohttp: its OpenAI-compatible chat API, else its native API.

The first call tries `POST {base}/v1/chat/completions`. A 404/405 means the server
has no chat endpoint (older KoboldCPP); from then on the native KoboldAI API is
used: `POST {base}/api/v1/generate` with a prompt rendered from the messages by a
simple chat template, `max_length`, `temperature` and the images as a list of
base64 strings (KoboldCPP's `images` field), answered as `results[0].text`. Token
usage comes from the response when the server reports it, else from
`POST {base}/api/extra/tokencount` (`{"prompt": text}` -> `{"value": n}`).

JSON answers (`ChatCall.response_format`), in each API's own dialect:
- chat API: OpenAI's `response_format` field as is; KoboldCPP turns `json_object`
  and `json_schema` into a grammar itself.
- native API: its documented `grammar` field, "a string containing the GBNF grammar
  to use" (with `grammar_retain_state: false`, so no state leaks between requests).
  `json_object` sends `JSON_OBJECT_GRAMMAR` (any JSON object). `json_schema` asks the
  server to convert the schema first, `POST {base}/api/extra/json_to_grammar`
  (`{"schema": ...}` -> `{"success": true, "result": "<GBNF>"}`), and caches the
  result per schema; a server without that endpoint (404/405, remembered) or one
  that cannot convert the schema gets `JSON_OBJECT_GRAMMAR` instead. The prompt also
  carries `json_output.json_instruction` (added as a last "System:" line unless the
  messages already contain it), so the model knows the schema even when only the
  generic grammar holds it. The service checks the answer either way.

Streaming (`stream`) takes the same way: the chat API with `stream: true` (OpenAI's
chunks, the usage asked with `stream_options.include_usage`), else the native
`POST /api/extra/generate/stream` (`koboldcpp_stream`); usage the stream does not
report is counted by the server's tokenizer, as above.

Errors are mapped to ours (see `_raise_for_status` and `_mapped_errors`); messages
never include the upstream body, the URL or the key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any, Literal

import aiohttp
import orjson
from pydantic import SecretStr

from chater_gpt.backends.http import error_for_status, mapped_aiohttp_errors, raise_for_status
from chater_gpt.backends.koboldcpp_prompt import (
    JSON_OBJECT_GRAMMAR,
    chat_payload,
    converted_grammar,
    render_prompt,
    with_instruction,
)
from chater_gpt.backends.koboldcpp_stream import TokenReader, openai_chunk
from chater_gpt.backends.openai_wire import ChunkReader
from chater_gpt.backends.sse import SseEvent
from chater_gpt.backends.streaming import event_json, relay, streamed_events
from chater_gpt.domain import ChatCall, ChatResult, DeltaSink, ResponseFormat
from chater_gpt.errors import (
    BackendBadResponse,
    BackendConfigError,
    BackendError,
)

log = logging.getLogger(__name__)

CHAT_PATH = "/v1/chat/completions"
GENERATE_PATH = "/api/v1/generate"
GENERATE_STREAM_PATH = "/api/extra/generate/stream"
TOKENCOUNT_PATH = "/api/extra/tokencount"
JSON_TO_GRAMMAR_PATH = "/api/extra/json_to_grammar"

_GRAMMAR_CACHE_SIZE = 64

_STOP_SEQUENCES = ("\nUser:", "\nSystem:")

Api = Literal["chat", "native"]


class _EndpointAbsent(Exception):
    """The chat endpoint is not there (404/405): use the native API."""


class KoboldCppBackend:
    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: SecretStr | None,
        timeout: float,
        session: aiohttp.ClientSession | None = None,
        name: str = "koboldcpp",
    ) -> None:
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise BackendConfigError("KOBOLDCPP_API_URL must be set to an http(s) URL")
        base = base_url.rstrip("/")
        for suffix in ("/v1", "/api"):  # accept the API root as well as the server root
            base = base.removesuffix(suffix)
        self._base = base
        self._api_key = api_key
        self._timeout = timeout
        self._session = session
        self._owns_session = session is None
        self._name = name
        self._api: Api | None = None
        # Schema (compact JSON) -> the server's GBNF for it; None once the server has
        # shown it has no json_to_grammar endpoint.
        self._schema_grammars: dict[str, str] | None = {}

    @property
    def name(self) -> str:
        return self._name

    @property
    def api(self) -> Api | None:
        """Which API answered last ("chat" or "native"), None before the first call."""
        return self._api

    async def complete(self, call: ChatCall) -> ChatResult:
        if self._api != "native":
            try:
                result = await self._chat(call)
            except _EndpointAbsent:
                log.info("the KoboldCPP server has no chat endpoint; using its native API")
                self._api = "native"
            else:
                self._api = "chat"
                return result
        return await self._native(call)

    async def ping(self) -> None:
        """KoboldCPP's model name (`GET /api/v1/model`), served by every version."""
        headers = {}
        if self._api_key is not None and self._api_key.get_secret_value():
            headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        with mapped_aiohttp_errors(self._name):
            async with self._client().get(self._base + "/api/v1/model", headers=headers) as resp:
                await resp.read()
                status, response_headers = resp.status, resp.headers
        raise_for_status(status, response_headers, self._name)

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    # --- the two APIs ------------------------------------------------------------

    async def _chat(self, call: ChatCall) -> ChatResult:
        payload = chat_payload(call)
        status, headers, body = await self._post(CHAT_PATH, payload, call)
        if status in (404, 405) and self._api is None:
            raise _EndpointAbsent
        raise_for_status(status, headers, self._name)
        data = self._json(body)
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] or ""
            finish = choice.get("finish_reason") or "stop"
            usage = data.get("usage") or {}
            model = data.get("model") or call.model
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise BackendBadResponse(f"the {self._name} backend sent an unexpected answer") from exc
        prompt_tokens, completion_tokens, exact = await self._usage(
            usage.get("prompt_tokens") if isinstance(usage, Mapping) else None,
            usage.get("completion_tokens") if isinstance(usage, Mapping) else None,
            prompt=render_prompt(call.messages)[0],
            text=str(text),
            call=call,
        )
        return ChatResult(
            text=str(text),
            model=str(model),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=str(finish),
            backend=self._name,
            usage_reported=exact,
        )

    async def _native(self, call: ChatCall) -> ChatResult:
        payload = await self._native_payload(call)
        prompt = payload["prompt"]
        status, headers, body = await self._post(GENERATE_PATH, payload, call)
        if status in (404, 405):
            raise BackendConfigError(
                f"the {self._name} server has neither the chat nor the generate API"
            )
        raise_for_status(status, headers, self._name)
        data = self._json(body)
        try:
            result = data["results"][0]
            text = str(result["text"])
        except (KeyError, IndexError, TypeError) as exc:
            raise BackendBadResponse(f"the {self._name} backend sent an unexpected answer") from exc
        for stop in _STOP_SEQUENCES:  # the server may leave the stop sequence in
            text = text.removesuffix(stop)
        prompt_tokens, completion_tokens, exact = await self._usage(
            result.get("prompt_tokens"),
            result.get("completion_tokens"),
            prompt=prompt,
            text=text,
            call=call,
        )
        return ChatResult(
            text=text.strip(),
            model=call.model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=str(result.get("finish_reason") or "stop"),
            backend=self._name,
            usage_reported=exact,
        )

    async def _native_payload(self, call: ChatCall) -> dict[str, Any]:
        prompt, images = render_prompt(call.messages)
        payload: dict[str, Any] = {
            "prompt": prompt,
            "max_length": call.max_tokens,
            "temperature": call.temperature,
            "stop_sequence": list(_STOP_SEQUENCES),
        }
        if images:
            payload["images"] = images
        if call.seed is not None:
            payload["sampler_seed"] = call.seed
        if call.response_format is not None:
            payload["prompt"] = with_instruction(prompt, call.response_format)
            payload["grammar"] = await self._grammar(call.response_format, call)
            payload["grammar_retain_state"] = False
        return payload

    # --- streaming -------------------------------------------------------------------

    async def stream(self, call: ChatCall, on_delta: DeltaSink) -> ChatResult:
        """As `complete`: the chat API's stream (OpenAI's chunks), else the native
        `POST /api/extra/generate/stream` (see `koboldcpp_stream`)."""
        if self._api != "native":
            try:
                result = await self._chat_stream(call, on_delta)
            except _EndpointAbsent:
                log.info("the KoboldCPP server has no chat endpoint; using its native API")
                self._api = "native"
            else:
                self._api = "chat"
                return result
        return await self._native_stream(call, on_delta)

    async def _chat_stream(self, call: ChatCall, on_delta: DeltaSink) -> ChatResult:
        payload = {**chat_payload(call), "stream": True, "stream_options": {"include_usage": True}}
        reader = ChunkReader(backend=self._name, requested_model=call.model)
        async with self._events(CHAT_PATH, payload, call) as events:
            await relay(events, lambda event: openai_chunk(event, reader, self._name), on_delta)
        result = reader.result()
        if result.usage_reported:
            return result
        prompt = render_prompt(call.messages)[0]
        p, c, exact = await self._usage(None, None, prompt=prompt, text=result.text, call=call)
        return replace(result, prompt_tokens=p, completion_tokens=c, usage_reported=exact)

    async def _native_stream(self, call: ChatCall, on_delta: DeltaSink) -> ChatResult:
        # trim_stop: the server holds back what may begin a stop sequence, and cuts it.
        payload = {**await self._native_payload(call), "trim_stop": True}
        reader = TokenReader(self._name)
        async with self._events(GENERATE_STREAM_PATH, payload, call) as events:
            await relay(events, lambda event: reader.feed(event_json(event, self._name)), on_delta)
        finish = reader.finish_reason()
        p, c, exact = await self._usage(
            None, None, prompt=payload["prompt"], text=reader.text, call=call
        )
        return ChatResult(
            text=reader.text,
            model=call.model,
            prompt_tokens=p,
            completion_tokens=c,
            finish_reason=finish,
            backend=self._name,
            usage_reported=exact,
        )

    def _events(
        self, path: str, payload: Mapping[str, Any], call: ChatCall
    ) -> AbstractAsyncContextManager[AsyncIterator[SseEvent]]:
        def error_for(status: int, headers: Mapping[str, str], _body: bytes) -> BackendError:
            if status in (404, 405) and path == CHAT_PATH and self._api is None:
                raise _EndpointAbsent
            if status in (404, 405) and path != CHAT_PATH:
                return BackendConfigError(
                    f"the {self._name} server has neither the chat nor the generate API"
                )
            return error_for_status(status, headers, self._name)

        pending = self._client().post(
            self._base + path, data=orjson.dumps(payload), headers=self._headers(call)
        )
        return streamed_events(pending, self._name, error_for)

    # --- JSON answers ------------------------------------------------------------------

    async def _grammar(self, fmt: ResponseFormat, call: ChatCall) -> str:
        """The native API's GBNF grammar for a JSON answer (see the module docstring)."""
        if fmt.type != "json_schema" or fmt.schema is None or self._schema_grammars is None:
            return JSON_OBJECT_GRAMMAR
        schema = dict(fmt.schema)
        key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS).decode()
        cached = self._schema_grammars.get(key)
        if cached is not None:
            return cached
        status, _, body = await self._post(JSON_TO_GRAMMAR_PATH, {"schema": schema}, call)
        if status in (404, 405):
            log.info("the KoboldCPP server cannot convert schemas; using a JSON-object grammar")
            self._schema_grammars = None
            return JSON_OBJECT_GRAMMAR
        grammar = converted_grammar(status, body)
        if grammar is None:
            log.warning("the KoboldCPP server did not convert a schema; using a JSON grammar")
            return JSON_OBJECT_GRAMMAR
        if len(self._schema_grammars) >= _GRAMMAR_CACHE_SIZE:
            self._schema_grammars.pop(next(iter(self._schema_grammars)))
        self._schema_grammars[key] = grammar
        return grammar

    # --- usage ---------------------------------------------------------------------

    async def _usage(
        self, prompt_tokens: Any, completion_tokens: Any, *, prompt: str, text: str, call: ChatCall
    ) -> tuple[int, int, bool]:
        """(prompt, completion, exact): the server's report, else its tokenizer's count;
        an estimate (exact False) only when it cannot count."""
        if isinstance(prompt_tokens, int) and isinstance(completion_tokens, int):
            return prompt_tokens, completion_tokens, True
        counted = await asyncio.gather(self._count(prompt, call), self._count(text, call))
        if counted[0] is None or counted[1] is None:
            log.warning("the KoboldCPP token count is unavailable; estimating usage")
            return _estimate(prompt), _estimate(text), False
        return counted[0], counted[1], True

    async def _count(self, text: str, call: ChatCall) -> int | None:
        """Tokens of `text` by the server's own tokenizer; None if it cannot say."""
        try:
            status, _, body = await self._post(TOKENCOUNT_PATH, {"prompt": text}, call)
            if status == 200:
                value = orjson.loads(body).get("value")
                if isinstance(value, int):
                    return value
        except (BackendError, orjson.JSONDecodeError, AttributeError):
            pass
        return None

    # --- HTTP ------------------------------------------------------------------------

    async def _post(
        self, path: str, payload: Mapping[str, Any], call: ChatCall
    ) -> tuple[int, Mapping[str, str], bytes]:
        with mapped_aiohttp_errors(self._name):
            async with self._client().post(
                self._base + path, data=orjson.dumps(payload), headers=self._headers(call)
            ) as response:
                body = await response.read()
                return response.status, response.headers, body

    def _headers(self, call: ChatCall) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **call.extra_headers}
        if call.request_id:
            headers["X-Request-ID"] = call.request_id
        if self._api_key is not None and self._api_key.get_secret_value():
            headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        return headers

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use: a ClientSession belongs to the running event loop.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        return self._session

    def _json(self, body: bytes) -> dict[str, Any]:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BackendBadResponse(f"the {self._name} backend did not answer in JSON") from exc
        if not isinstance(data, dict):
            raise BackendBadResponse(f"the {self._name} backend sent an unexpected answer")
        return data


def _estimate(text: str) -> int:
    return max(1, len(text) // 4) if text else 0
