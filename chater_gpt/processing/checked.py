"""The backend's answer, checked before it counts: a JSON answer (the request's or the
route's `response_format`) is checked, and repaired by re-asking when it fails."""

from __future__ import annotations

import dataclasses

from chater_gpt.domain import ChatCall, ChatResult
from chater_gpt.json_repair import enforce_json
from chater_gpt.processing.observer import ProcessorObserver
from chater_gpt.processing.stages import Answer, AskStep, Prompt


class Checked:
    def __init__(
        self, inner: AskStep, observer: ProcessorObserver, *, repair_attempts: int = 1
    ) -> None:
        self._inner = inner
        self._observer = observer
        self._repair_attempts = repair_attempts

    async def __call__(self, prompt: Prompt) -> Answer:
        result = await self._inner(prompt)
        fmt = prompt.request.response_format
        if fmt is not None:

            async def ask(attempt: ChatCall, estimate: int) -> ChatResult:
                return await self._inner(
                    dataclasses.replace(prompt, call=attempt, prompt_tokens=estimate)
                )

            result = await enforce_json(
                result,
                prompt.call,
                fmt,
                prompt_tokens=prompt.prompt_tokens,
                attempts=self._repair_attempts,
                ask=ask,
                on_repair=lambda: self._observer.json_repaired(route=prompt.route),
            )
        self._observer.request_done(
            outcome="ok", code="", model=result.model, backend=result.backend, route=prompt.route
        )
        return Answer(result)
