"""The checked answer: counted once good; a JSON answer repaired by re-asking."""

from __future__ import annotations

import pytest

from chater_gpt.domain import ChatResult, ResponseFormat
from chater_gpt.errors import InvalidModelOutput
from chater_gpt.json_repair import REPAIR_PROMPT_ALLOWANCE
from chater_gpt.processing.checked import Checked
from chater_gpt.processing.stages import Prompt
from tests.unit.processing.fakes import RecordingObserver, chat_request, prompt_for

JSON = chat_request(response_format=ResponseFormat(type="json_object"))


class Asked:
    """Answers the scripted texts in turn; remembers every prompt it was asked."""

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)
        self.prompts: list[Prompt] = []

    async def __call__(self, prompt: Prompt) -> ChatResult:
        self.prompts.append(prompt)
        return ChatResult(self.texts.pop(0), "gpt-4o-mini", 10, 4, "stop", "openai")


async def test_a_plain_answer_counts_as_it_is() -> None:
    inner, observer = Asked("hello"), RecordingObserver()
    answer = await Checked(inner, observer)(prompt_for(route="photo"))
    assert answer.result.text == "hello"
    assert not answer.cached
    assert observer.events == [
        (
            "request_done",
            {
                "outcome": "ok",
                "code": "",
                "model": "gpt-4o-mini",
                "backend": "openai",
                "route": "photo",
            },
        )
    ]


async def test_a_json_answer_is_unfenced() -> None:
    inner = Asked('```json\n{"a": 1}\n```')
    answer = await Checked(inner, RecordingObserver())(prompt_for(JSON))
    assert answer.result.text == '{"a": 1}'
    assert len(inner.prompts) == 1


async def test_a_broken_json_answer_is_repaired_by_asking_again() -> None:
    inner, observer = Asked("not json", '{"a": 1}'), RecordingObserver()
    first = prompt_for(JSON, route="photo")
    answer = await Checked(inner, observer, repair_attempts=1)(first)
    assert answer.result.text == '{"a": 1}'
    # Both attempts' tokens are the answer's usage.
    assert (answer.result.prompt_tokens, answer.result.completion_tokens) == (20, 8)
    repair = inner.prompts[1]
    assert repair.request is first.request
    assert len(repair.call.messages) > len(first.call.messages)
    assert repair.prompt_tokens == first.prompt_tokens + 4 + REPAIR_PROMPT_ALLOWANCE
    assert [event for event, _ in observer.events] == ["json_repaired", "request_done"]
    assert observer.named("json_repaired") == [{"route": "photo"}]


async def test_a_json_answer_still_broken_after_the_repairs_fails_uncounted() -> None:
    inner, observer = Asked("not json", "still not"), RecordingObserver()
    with pytest.raises(InvalidModelOutput):
        await Checked(inner, observer, repair_attempts=1)(prompt_for(JSON))
    assert observer.named("request_done") == []
