"""The prompt: system prompt (with the JSON instruction a JSON answer needs), the context
fitted to the model's window, and the backend call made of them."""

from __future__ import annotations

from collections.abc import Mapping

from chater_gpt.context.builder import BuiltContext, ContextBuilder
from chater_gpt.contracts import ChatRequest, Job
from chater_gpt.domain import ChatCall, DeltaSink, Turn
from chater_gpt.errors import ContextTooLong
from chater_gpt.json_repair import with_json_instruction
from chater_gpt.processing.stages import Answer, Prompt, PromptStep
from chater_gpt.processing.streaming import Streams


class Prompting:
    def __init__(
        self,
        inner: PromptStep,
        builder: ContextBuilder,
        *,
        system_prompt: str,
        seed: int | None = None,
        context_fallbacks: Mapping[str, str] | None = None,
        streams: Streams | None = None,
    ) -> None:
        self._inner = inner
        self._builder = builder
        self._system_prompt = system_prompt
        self._seed = seed
        self._context_fallbacks = dict(context_fallbacks or {})
        self._streams = streams

    async def __call__(self, request: ChatRequest, job: Job, history: list[Turn]) -> Answer:
        system_prompt = with_json_instruction(
            request.system_prompt or self._system_prompt, request.message, request.response_format
        )
        await self._builder.prefetch(
            model=request.model,
            system_prompt=system_prompt,
            history=history,
            supplied_context=request.context,
            user_message=request.message,
        )
        model, built = fit_context(
            self._builder, request, history, system_prompt, self._context_fallbacks
        )
        call = ChatCall(
            model=model,
            messages=built.messages,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            request_id=job.correlation_id,
            seed=self._seed,
            response_format=request.response_format,
            on_delta=self._delta_sink(request, job),
        )
        return await self._inner(
            Prompt(request, call, built.prompt_tokens, job.route, has_history=bool(history))
        )

    def _delta_sink(self, request: ChatRequest, job: Job) -> DeltaSink | None:
        # A JSON answer is checked (and may be asked again) before it may be read: its
        # stream gets the checked answer when it ends (`processing.streaming`).
        if not request.stream or self._streams is None or request.response_format is not None:
            return None
        return self._streams.open(request, job).delta


def fit_context(
    builder: ContextBuilder,
    request: ChatRequest,
    history: list[Turn],
    system_prompt: str,
    fallbacks: Mapping[str, str],
) -> tuple[str, BuiltContext]:
    """The context for the requested model or, when the prompt would have to be cut to
    fit it, for its larger-context fallback (CONTEXT_FALLBACK_MODELS). The reply names
    the model used."""
    model = request.model
    while True:
        larger = fallbacks.get(model)
        if larger == request.model:
            larger = None
        try:
            built = builder.build(
                model=model,
                system_prompt=system_prompt,
                history=history,
                supplied_context=request.context,
                user_message=request.message,
                images=request.images,
                max_tokens=request.max_tokens,
            )
        except ContextTooLong:
            if larger is None:
                raise
            model = larger
            continue
        if built.truncated and larger is not None:
            model = larger
            continue
        return model, built
