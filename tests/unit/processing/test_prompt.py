"""The prompt stage: system prompt, JSON instruction, context fitted (or a larger model)."""

from __future__ import annotations

import pytest

from chater_gpt.context.builder import ContextBuilder
from chater_gpt.domain import ResponseFormat, Turn
from chater_gpt.errors import ContextTooLong
from chater_gpt.processing.prompt import Prompting, fit_context
from chater_gpt.processing.stages import Answer, Prompt
from tests.unit.processing.fakes import chat_request, job_for, result

LONG = "Please summarise this. " + "lorem ipsum dolor sit amet " * 1200  # ~6k tokens


class Inner:
    def __init__(self) -> None:
        self.prompts: list[Prompt] = []

    async def __call__(self, prompt: Prompt) -> Answer:
        self.prompts.append(prompt)
        return Answer(result())


async def prompted(
    history: list[Turn] | None = None, *, seed: int | None = None, **request: object
) -> Prompt:
    """The prompt the stage hands down for a request."""
    inner = Inner()
    prompting = Prompting(inner, ContextBuilder(8000), system_prompt="Be brief.", seed=seed)
    chat = chat_request("k-1", **request)
    await prompting(chat, job_for(chat, route="photo"), history or [])
    (prompt,) = inner.prompts
    return prompt


def system_text(prompt: Prompt) -> str:
    first = prompt.call.messages[0]
    assert first["role"] == "system"
    return str(first["content"])


async def test_the_call_is_made_of_the_request_and_the_configuration() -> None:
    history = [Turn("user", "before"), Turn("assistant", "answer")]
    prompt = await prompted(history, seed=7, message="now", max_tokens=20, temperature=0.5)
    call = prompt.call
    assert (call.model, call.max_tokens, call.temperature, call.seed) == (
        "gpt-4o-mini",
        20,
        0.5,
        7,
    )
    assert call.request_id == "k-1"  # the correlation id
    assert system_text(prompt) == "Be brief."
    assert [m["content"] for m in call.messages[1:]] == ["before", "answer", "now"]
    assert prompt.route == "photo"
    assert prompt.has_history
    assert prompt.prompt_tokens > 0


async def test_the_requests_system_prompt_replaces_the_configured_one() -> None:
    prompt = await prompted(system_prompt="Be a pirate.")
    assert system_text(prompt) == "Be a pirate."
    assert not prompt.has_history


async def test_a_json_answer_is_asked_for_in_the_system_prompt() -> None:
    fmt = ResponseFormat(type="json_object")
    prompt = await prompted(response_format=fmt)
    assert system_text(prompt).startswith("Be brief.\n\n")
    assert "JSON" in system_text(prompt)
    assert prompt.call.response_format == fmt


def fitted(builder: ContextBuilder, fallbacks: dict[str, str], **request: object) -> str:
    chat = chat_request("k", **request)
    model, _built = fit_context(builder, chat, [], "Be brief.", fallbacks)
    return model


def test_a_prompt_that_fits_keeps_its_model() -> None:
    assert fitted(ContextBuilder(32_000), {"gpt-4": "gpt-4o"}, model="gpt-4") == "gpt-4"


def test_a_prompt_that_would_be_cut_goes_to_the_larger_context_fallback() -> None:
    builder = ContextBuilder(32_000)
    chat = chat_request("k", model="gpt-4", message=LONG, max_tokens=4000)
    model, built = fit_context(builder, chat, [], "Be brief.", {"gpt-4": "gpt-4o"})
    assert model == "gpt-4o"  # gpt-4's 8k window is too small
    assert not built.truncated
    assert built.messages[-1]["content"] == LONG  # nothing was cut


def test_without_a_fallback_the_prompt_is_cut() -> None:
    chat = chat_request("k", model="gpt-4", message=LONG, max_tokens=4000)
    model, built = fit_context(ContextBuilder(32_000), chat, [], "Be brief.", {})
    assert model == "gpt-4"
    assert built.truncated


def test_a_context_too_long_for_the_model_goes_to_the_fallback_or_fails() -> None:
    builder = ContextBuilder(32_000)
    request = {"model": "gpt-4", "max_tokens": 8190}  # no room left in gpt-4's window
    assert fitted(builder, {"gpt-4": "gpt-4o"}, **request) == "gpt-4o"
    with pytest.raises(ContextTooLong):
        fitted(builder, {}, **request)


def test_fallbacks_that_lead_back_to_the_requested_model_stop_there() -> None:
    builder = ContextBuilder(3_000)  # both windows too small
    fallbacks = {"gpt-4": "gpt-4o", "gpt-4o": "gpt-4"}
    chat = chat_request("k", model="gpt-4", message=LONG, max_tokens=100)
    model, built = fit_context(builder, chat, [], "Be brief.", fallbacks)
    assert model == "gpt-4o"
    assert built.truncated
