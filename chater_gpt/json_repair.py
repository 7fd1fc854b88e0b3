"""JSON answers: check the model's answer and, when it is not the JSON asked for, ask
once more (JSON_REPAIR_ATTEMPTS), billed like any call; then give up with
`invalid_model_output`.

The answer that goes out is the checked JSON text (one markdown fence stripped);
the usage (and the cost) reported is the sum over every call made for the request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from chater_gpt.domain import ChatCall, ChatResult, ResponseFormat
from chater_gpt.errors import InvalidModelOutput
from chater_gpt.json_output import check_answer, json_instruction, repair_messages

# A repair call's prompt is the first one plus the bad answer plus a short request;
# this covers the request when reserving budget (settled to the real usage after).
REPAIR_PROMPT_ALLOWANCE = 300

AdmittedCall = Callable[[ChatCall, int], Awaitable[ChatResult]]


def with_json_instruction(system_prompt: str, message: str, fmt: ResponseFormat | None) -> str:
    """The system prompt, plus a line asking for JSON when neither it nor the message says
    so (OpenAI's JSON mode refuses a request whose messages never mention JSON)."""
    if fmt is None or "json" in system_prompt.lower() or "json" in message.lower():
        return system_prompt
    instruction = json_instruction(fmt)
    return f"{system_prompt}\n\n{instruction}" if system_prompt else instruction


async def enforce_json(
    first: ChatResult,
    call: ChatCall,
    fmt: ResponseFormat,
    *,
    prompt_tokens: int,
    attempts: int,
    ask: AdmittedCall,
    on_repair: Callable[[], None],
) -> ChatResult:
    """The checked answer, repairing up to `attempts` times; raises InvalidModelOutput."""
    result = first
    prompt_total, completion_total = first.prompt_tokens, first.completion_tokens
    cached_total, cost_total = first.cached_prompt_tokens, first.cost_usd
    repairs_left = attempts
    while True:
        try:
            text = check_answer(result.text, fmt)
        except InvalidModelOutput as problem:
            if repairs_left == 0:
                raise
            repairs_left -= 1
            on_repair()
            repair = dataclasses.replace(
                call, messages=repair_messages(call.messages, result.text, problem.message, fmt)
            )
            estimate = prompt_tokens + result.completion_tokens + REPAIR_PROMPT_ALLOWANCE
            result = await ask(repair, estimate)
            prompt_total += result.prompt_tokens
            completion_total += result.completion_tokens
            cached_total += result.cached_prompt_tokens
            cost_total += result.cost_usd
            continue
        return dataclasses.replace(
            result,
            text=text,
            prompt_tokens=prompt_total,
            completion_tokens=completion_total,
            cached_prompt_tokens=cached_total,
            cost_usd=cost_total,
        )
