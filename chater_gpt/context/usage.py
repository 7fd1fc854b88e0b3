"""A call's usage counted by the service, for a backend that reported none (a stream
from a server that sends no usage, KoboldCPP's native API): the prompt as the context
builder counts it (framing, roles, texts, image parts) and the answer's text, each in
the model's tokens. The result keeps `usage_reported=False`: counted, not billed."""

from __future__ import annotations

import dataclasses

from chater_gpt.context.tokens import (
    REPLY_PRIMING_TOKENS,
    TokenCounter,
    TokenCounters,
    message_tokens,
)
from chater_gpt.domain import ChatCall, ChatMessage, ChatResult, ImageInput, content_parts


class UsageCounter:
    def __init__(self, counters: TokenCounters) -> None:
        self._counters = counters

    async def __call__(self, call: ChatCall, result: ChatResult) -> ChatResult:
        """`result` with its usage counted, when its backend reported none."""
        if result.usage_reported:
            return result
        parts = [_texts_and_images(message) for message in call.messages]
        texts = [text for _, text, _ in parts] + [result.text]
        await self._counters.prefetch(call.model, texts)
        counter = self._counters.for_model(call.model)
        prompt = REPLY_PRIMING_TOKENS + sum(
            message_tokens(counter, role, text, _image_tokens(counter, images))
            for role, text, images in parts
        )
        return dataclasses.replace(
            result, prompt_tokens=prompt, completion_tokens=counter.count(result.text)
        )


def _texts_and_images(message: ChatMessage) -> tuple[str, str, list[str]]:
    texts, images = content_parts(message.get("content"))
    return str(message.get("role", "user")), "\n".join(texts), images


def _image_tokens(counter: TokenCounter, urls: list[str]) -> int:
    return sum(counter.image_tokens(ImageInput(url, None, None, None)) for url in urls)
