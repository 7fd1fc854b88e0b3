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

Errors are mapped to ours (see `_raise_for_status` and `_mapped_errors`); messages
never include the upstream body, the URL or the key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import aiohttp
import orjson
from pydantic import SecretStr

from chater_gpt.backends.http import mapped_aiohttp_errors, raise_for_status
from chater_gpt.domain import ChatCall, ChatMessage, ChatResult, ResponseFormat
from chater_gpt.errors import (
    BackendBadResponse,
    BackendConfigError,
    BackendError,
    InvalidImage,
)
from chater_gpt.images import split_data_url
from chater_gpt.json_output import json_instruction

log = logging.getLogger(__name__)

CHAT_PATH = "/v1/chat/completions"
GENERATE_PATH = "/api/v1/generate"
TOKENCOUNT_PATH = "/api/extra/tokencount"
JSON_TO_GRAMMAR_PATH = "/api/extra/json_to_grammar"

# GBNF (llama.cpp's grammar format, which KoboldCPP uses): exactly one JSON object.
# Written with the oldest GBNF constructs only (no {m,n} repetition), so that old
# servers parse it too.
JSON_OBJECT_GRAMMAR = r"""root ::= object
object ::= "{" ws ( member ( "," ws member )* )? "}" ws
member ::= string ":" ws value
value ::= object | array | string | number | ( "true" | "false" | "null" ) ws
array ::= "[" ws ( value ( "," ws value )* )? "]" ws
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" hex hex hex hex ) )* "\"" ws
hex ::= [0-9a-fA-F]
number ::= "-"? ( "0" | [1-9] [0-9]* ) ( "." [0-9]+ )? ( [eE] [-+]? [0-9]+ )? ws
ws ::= ( [ \t\n] ws )?
"""
_GRAMMAR_CACHE_SIZE = 64

_ROLE_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}
_STOP_SEQUENCES = ("\nUser:", "\nSystem:")

Api = Literal["chat", "native"]


class _EndpointAbsent(Exception):
    """The chat endpoint is not there (404/405): use the native API."""


def render_prompt(messages: Sequence[ChatMessage]) -> tuple[str, list[str]]:
    """The native API's prompt ("Role: text" lines ending with "Assistant:") and the
    images of the messages as bare base64 strings."""
    lines: list[str] = []
    images: list[str] = []
    for message in messages:
        role = _ROLE_LABELS.get(str(message.get("role", "user")), "User")
        text, found = _text_and_images(message.get("content"))
        images.extend(found)
        lines.append(f"{role}: {text}")
    lines.append("Assistant:")
    return "\n".join(lines), images


def _text_and_images(content: Any) -> tuple[str, list[str]]:
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    images: list[str] = []
    for part in content or []:
        if not isinstance(part, Mapping):
            continue
        if part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        elif part.get("type") == "image_url":
            url = str((part.get("image_url") or {}).get("url", ""))
            if not url.startswith("data:"):
                raise InvalidImage(
                    "the KoboldCPP native API takes only inline images; send base64, not URLs"
                )
            images.append(split_data_url(url).data)
    return " ".join(texts), images


def with_instruction(prompt: str, fmt: ResponseFormat) -> str:
    """The native prompt with the JSON instruction as its last "System:" line, unless the
    messages already carry it."""
    instruction = json_instruction(fmt)
    if instruction in prompt:
        return prompt
    head = prompt.removesuffix("Assistant:")
    return f"{head}System: {instruction}\nAssistant:"


def _converted_grammar(status: int, body: bytes) -> str | None:
    """The GBNF from a json_to_grammar answer, or None when the server could not convert."""
    if status != 200:
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("success") is False:
        return None
    grammar = data.get("result")
    return grammar if isinstance(grammar, str) and grammar.strip() else None


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
        payload: dict[str, Any] = {
            "model": call.model,
            "messages": list(call.messages),
            "max_tokens": call.max_tokens,
            "temperature": call.temperature,
        }
        if call.seed is not None:
            payload["seed"] = call.seed
        if call.response_format is not None:
            payload["response_format"] = call.response_format.to_openai()
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
        prompt_tokens, completion_tokens = await self._usage(
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
        )

    async def _native(self, call: ChatCall) -> ChatResult:
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
            payload["prompt"] = prompt = with_instruction(prompt, call.response_format)
            payload["grammar"] = await self._grammar(call.response_format, call)
            payload["grammar_retain_state"] = False
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
        prompt_tokens, completion_tokens = await self._usage(
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
        )

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
        grammar = _converted_grammar(status, body)
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
    ) -> tuple[int, int]:
        if isinstance(prompt_tokens, int) and isinstance(completion_tokens, int):
            return prompt_tokens, completion_tokens
        counted = await asyncio.gather(self._count(prompt, call), self._count(text, call))
        return counted[0], counted[1]

    async def _count(self, text: str, call: ChatCall) -> int:
        """Tokens of `text` by the server's own tokenizer; an estimate if it cannot say."""
        try:
            status, _, body = await self._post(TOKENCOUNT_PATH, {"prompt": text}, call)
            if status == 200:
                value = orjson.loads(body).get("value")
                if isinstance(value, int):
                    return value
        except (BackendError, orjson.JSONDecodeError, AttributeError):
            pass
        log.warning("the KoboldCPP token count is unavailable; estimating usage")
        return max(1, len(text) // 4) if text else 0

    # --- HTTP ------------------------------------------------------------------------

    async def _post(
        self, path: str, payload: Mapping[str, Any], call: ChatCall
    ) -> tuple[int, Mapping[str, str], bytes]:
        headers = {"Content-Type": "application/json", **call.extra_headers}
        if call.request_id:
            headers["X-Request-ID"] = call.request_id
        if self._api_key is not None and self._api_key.get_secret_value():
            headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        with mapped_aiohttp_errors(self._name):
            async with self._client().post(
                self._base + path, data=orjson.dumps(payload), headers=headers
            ) as response:
                body = await response.read()
                return response.status, response.headers, body

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
