"""Admission around the backend call: rate limits and a token budget reservation before
it (waiting, paused, while the *global* daily budget is spent: not this caller's fault),
the reservation settled with the tokens used after it, or released when it failed."""

from __future__ import annotations

from chater_gpt.contracts import ChatRequest
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
        admission = await self._admit(prompt.request, prompt.prompt_tokens)
        try:
            result = await self._inner(prompt.call)
        except BaseException:
            if admission is not None:
                await admission.release()
            raise
        if admission is not None:
            await admission.settle(result.total_tokens)
        self._observer.tokens(
            model=result.model, prompt=result.prompt_tokens, completion=result.completion_tokens
        )
        return result

    async def _admit(self, request: ChatRequest, prompt_tokens: int) -> Admission | None:
        control = self._admission
        if control is None:
            return None
        # Until the budget resets at UTC midnight the request waits in the service, and
        # consumption pauses.
        return await self._budget_wait.run(
            lambda: control.admit(
                key=request.key,
                user_email=request.user,
                app_code=request.app_code,
                model=request.model,
                max_tokens=request.max_tokens,
                prompt_tokens=prompt_tokens,
            )
        )
