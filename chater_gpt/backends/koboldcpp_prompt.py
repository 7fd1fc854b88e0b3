"""KoboldCPP's request bodies: the chat API's (OpenAI's fields), and the native API's
prompt: the chat messages rendered as "Role: text" lines (its images apart, as base64),
and the JSON instruction as a last "System:" line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from chater_gpt.domain import ChatCall, ChatMessage, ResponseFormat, content_parts
from chater_gpt.errors import InvalidImage
from chater_gpt.images import split_data_url
from chater_gpt.json_output import json_instruction

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
_ROLE_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}


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
    texts, urls = content_parts(content)
    images: list[str] = []
    for url in urls:
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


def chat_payload(call: ChatCall) -> dict[str, Any]:
    """The chat API's body (`POST /v1/chat/completions`)."""
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
    return payload


def converted_grammar(status: int, body: bytes) -> str | None:
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
