"""Admission around the backend call: rate limits and a budget reservation (tokens and
money) before it (waiting, paused, while a *global* daily budget is spent: not this
caller's fault), the reservation settled with the tokens used and their cost after it,
or released when it failed."""

from __future__ import annotations

from chater_gpt.domain import ChatResult
from chater_gpt.processing.observer import ProcessorObserver
from chater_gpt.processing.stages import CallStep, Prompt
from chater_gpt.processing.waiting import PausedWait
from chater_gpt.resilience.admission import Admission, AdmissionControl


class Admitted:
    def __init__(
        self,
        inner: CallStep,
        admission: AdmissionControl | None,
        budget_wait: PausedWait,
        observer: ProcessorObserver,
    ) -> None:
        self._inner = inner
        self._admission = admission
        self._budget_wait = budget_wait
        self._observer = observer

    async def __call__(self, prompt: Prompt) -> ChatResult:
        admission = await self._admit(prompt)
        try:
            result = await self._inner(prompt.call)
        except BaseException:
            if admission is not None:
                await admission.release()
            raise
        if admission is not None:
            await admission.settle(result)
        self._observer.tokens(
            model=result.model, prompt=result.prompt_tokens, completion=result.completion_tokens
        )
        return result

    async def _admit(self, prompt: Prompt) -> Admission | None:
        control = self._admission
        if control is None:
            return None
        request = prompt.request
        # Until the budget resets at UTC midnight the request waits in the service, and
        # consumption pauses.
        return await self._budget_wait.run(
            lambda: control.admit(
                key=request.key,
                user_email=request.user,
                app_code=request.app_code,
                model=request.model,
                max_tokens=request.max_tokens,
                prompt_tokens=prompt.prompt_tokens,
                call_model=prompt.call.model,
            )
        )
