"""One request in, one reply out: the business logic of answering a chat request.

Kafka knows nothing of this module and this module knows nothing of Kafka: it
receives a decoded request and returns the reply bytes to publish. Every failure
becomes an error reply here; only cancellation escapes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from chater_gpt.backends.base import ChatCall, ChatResult, LLMBackend
from chater_gpt.context.builder import BuiltContext, ContextBuilder
from chater_gpt.contracts import ChatRequest, ForgetRequest, Job, RejectedRequest
from chater_gpt.domain import Turn
from chater_gpt.errors import BackendError, ChaterError, CircuitOpen, ContextTooLong, ErrorCode
from chater_gpt.json_repair import enforce_json, with_json_instruction
from chater_gpt.observability.logging import warn_degraded
from chater_gpt.replies import error_bytes, forget_ack_bytes, reply_bytes
from chater_gpt.resilience.admission import Admission, AdmissionControl
from chater_gpt.resilience.budget import GlobalBudgetExhausted
from chater_gpt.storage.cache import CachedAnswer, ResponseCache, cache_key, is_cacheable
from chater_gpt.storage.history import HistoryStore
from chater_gpt.storage.outcomes import OutcomeStore

log = logging.getLogger(__name__)


class Pauser(Protocol):
    """Stops and restarts consumption for a named reason (breaker, budget)."""

    def pause(self, reason: str) -> None: ...

    def resume(self, reason: str) -> None: ...


class ProcessorObserver(Protocol):
    """What the processor reports (metrics); every method must be cheap and never raise."""

    def request_done(
        self, *, outcome: str, code: str, model: str, backend: str, route: str
    ) -> None: ...

    def tokens(self, *, model: str, prompt: int, completion: int) -> None: ...

    def backend_latency(self, *, backend: str, seconds: float) -> None: ...

    def replayed(self) -> None: ...

    def store_error(self, *, store: str) -> None: ...

    def cache_hit(self) -> None: ...

    def cache_miss(self) -> None: ...

    def json_repaired(self, *, route: str) -> None: ...


class NullObserver:
    def request_done(
        self, *, outcome: str, code: str, model: str, backend: str, route: str
    ) -> None:
        pass

    def json_repaired(self, *, route: str) -> None:
        pass

    def tokens(self, *, model: str, prompt: int, completion: int) -> None:
        pass

    def backend_latency(self, *, backend: str, seconds: float) -> None:
        pass

    def replayed(self) -> None:
        pass

    def store_error(self, *, store: str) -> None:
        pass

    def cache_hit(self) -> None:
        pass

    def cache_miss(self) -> None:
        pass


class WaitingRoom:
    """Requests waiting for one reason (an open breaker, a spent budget). Consumption
    stays paused while at least one waits, and resumes when the last one leaves, however
    it leaves (answered, or failed): a pause nobody waits on would never be lifted."""

    def __init__(self, pauser: Pauser, reason: str) -> None:
        self._pauser = pauser
        self._reason = reason
        self._waiting = 0

    def enter(self) -> None:
        self._waiting += 1
        self._pauser.pause(self._reason)

    def leave(self) -> None:
        self._waiting -= 1
        if self._waiting == 0:
            self._pauser.resume(self._reason)


class RequestProcessor:
    def __init__(
        self,
        *,
        backend: LLMBackend,
        builder: ContextBuilder,
        history: HistoryStore,
        outcomes: OutcomeStore,
        pauser: Pauser,
        system_prompt: str,
        admission: AdmissionControl | None = None,
        cache: ResponseCache | None = None,
        seed: int | None = None,
        observer: ProcessorObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        context_fallbacks: Mapping[str, str] | None = None,
        min_breaker_wait: float = 0.2,
        max_pause_wait: float = 5.0,
        json_repair_attempts: int = 1,
    ) -> None:
        self._backend = backend
        self._builder = builder
        self._history = history
        self._outcomes = outcomes
        self._pauser = pauser
        self._system_prompt = system_prompt
        self._admission = admission
        self._cache = cache
        self._seed = seed
        self._observer = observer or NullObserver()
        self._clock = clock
        self._min_breaker_wait = min_breaker_wait
        self._max_pause_wait = max_pause_wait
        self._context_fallbacks = dict(context_fallbacks or {})
        self._json_repair_attempts = json_repair_attempts
        self._breaker_waiters = WaitingRoom(pauser, "breaker")
        self._budget_waiters = WaitingRoom(pauser, "budget")

    async def process(self, job: Job) -> bytes:
        request = job.request
        if isinstance(request, RejectedRequest):
            assert request.key is not None  # keyless rejects never reach the processor
            self._observer.request_done(
                outcome="error",
                code=request.error.code.value,
                model="",
                backend="",
                route=job.route,
            )
            return error_bytes(request.key, request.error, request.style)
        if isinstance(request, ForgetRequest):
            deleted = await self._history.forget_user(request.user_email)
            self._observer.request_done(
                outcome="forget", code="", model="", backend="", route=job.route
            )
            return forget_ack_bytes(request.key, request.user_email, deleted)
        recorded = await self._recorded(job.dedupe_id)
        if recorded is not None:
            self._observer.replayed()
            return recorded
        try:
            reply = await self._answer(request, job)
        except ChaterError as exc:
            self._observer.request_done(
                outcome="error",
                code=exc.code.value,
                model=request.model,
                backend="",
                route=job.route,
            )
            # The backend's failures are the operator's business; the caller's are not.
            level = logging.WARNING if isinstance(exc, BackendError) else logging.INFO
            log.log(level, "answered with an error: %s", exc.code.value, extra={"key": request.key})
            reply = error_bytes(request.key, exc, request.style)
        except Exception:
            log.exception("unexpected error while answering", extra={"key": request.key})
            self._observer.request_done(
                outcome="error",
                code=ErrorCode.INTERNAL_ERROR.value,
                model=request.model,
                backend="",
                route=job.route,
            )
            reply = error_bytes(
                request.key,
                ChaterError("internal error while answering the request"),
                request.style,
            )
        await self._record(job.dedupe_id, reply)
        return reply

    async def _answer(self, request: ChatRequest, job: Job) -> bytes:
        history = await self._load_history(request)
        await self._builder.prefetch(
            model=request.model,
            system_prompt=self._system_prompt_for(request),
            history=history,
            supplied_context=request.context,
            user_message=request.message,
        )
        model, built = self._build(request, history)
        call = ChatCall(
            model=model,
            messages=built.messages,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            request_id=job.correlation_id,
            seed=self._seed,
            response_format=request.response_format,
        )
        cache_id = self._cache_id(call, has_history=bool(history))
        result = await self._cached(cache_id)
        cached = result is not None
        if result is None:
            result = await self._answer_checked(request, call, built.prompt_tokens, job.route)
            await self._cache_answer(cache_id, result)
        else:
            self._observer.request_done(
                outcome="cached",
                code="",
                model=result.model,
                backend=result.backend,
                route=job.route,
            )
        await self._remember(request, result, job.dedupe_id)
        return reply_bytes(
            request.key,
            result,
            self._clock() - job.received_at,
            cached=cached,
            style=request.style,
        )

    def _system_prompt_for(self, request: ChatRequest) -> str:
        return with_json_instruction(
            request.system_prompt or self._system_prompt, request.message, request.response_format
        )

    async def _answer_checked(
        self, request: ChatRequest, call: ChatCall, prompt_tokens: int, route: str
    ) -> ChatResult:
        """The backend's answer; a JSON answer is checked (and repaired) before it counts."""

        async def ask(attempt: ChatCall, estimate: int) -> ChatResult:
            return await self._admitted_call(request, attempt, estimate)

        result = await ask(call, prompt_tokens)
        if request.response_format is not None:
            result = await enforce_json(
                result,
                call,
                request.response_format,
                prompt_tokens=prompt_tokens,
                attempts=self._json_repair_attempts,
                ask=ask,
                on_repair=lambda: self._observer.json_repaired(route=route),
            )
        self._observer.request_done(
            outcome="ok", code="", model=result.model, backend=result.backend, route=route
        )
        return result

    def _build(self, request: ChatRequest, history: list[Turn]) -> tuple[str, BuiltContext]:
        """The context for the requested model or, when the prompt would have to be cut to
        fit it, for its larger-context fallback (CONTEXT_FALLBACK_MODELS). The reply names
        the model used."""
        model = request.model
        while True:
            larger = self._context_fallbacks.get(model)
            if larger == request.model:
                larger = None
            try:
                built = self._builder.build(
                    model=model,
                    system_prompt=self._system_prompt_for(request),
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

    async def _admitted_call(
        self, request: ChatRequest, call: ChatCall, prompt_tokens: int
    ) -> ChatResult:
        """Admission (limits, budget reservation), the backend call, then settlement."""
        admission = await self._admit(request, prompt_tokens)
        try:
            result = await self._call_backend(call)
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
        """Admit the request; while the *global* daily budget is spent, wait (paused)."""
        if self._admission is None:
            return None
        waiting = False
        try:
            while True:
                try:
                    return await self._admission.admit(
                        key=request.key,
                        user_email=request.user,
                        app_code=request.app_code,
                        model=request.model,
                        max_tokens=request.max_tokens,
                        prompt_tokens=prompt_tokens,
                    )
                except GlobalBudgetExhausted as exc:
                    # Not this caller's fault: the request waits in the service, and
                    # consumption pauses, until the budget resets at UTC midnight.
                    if not waiting:
                        self._budget_waiters.enter()
                        waiting = True
                    await asyncio.sleep(min(exc.retry_after or 1.0, self._max_pause_wait))
        finally:
            if waiting:
                self._budget_waiters.leave()

    async def _call_backend(self, call: ChatCall) -> ChatResult:
        """Call the backend; while its breaker is open, wait (paused) instead of failing."""
        waiting = False
        try:
            while True:
                started = self._clock()
                try:
                    result = await self._backend.complete(call)
                except CircuitOpen as exc:
                    if not waiting:
                        self._breaker_waiters.enter()
                        waiting = True
                    wait = max(exc.retry_after or 0.0, self._min_breaker_wait)
                    await asyncio.sleep(min(wait, self._max_pause_wait))
                    continue
                self._observer.backend_latency(
                    backend=result.backend, seconds=self._clock() - started
                )
                return result
        finally:
            if waiting:
                self._breaker_waiters.leave()

    async def _load_history(self, request: ChatRequest) -> list[Turn]:
        if request.conversation is None:
            return []
        try:
            return await self._history.load(request.conversation)
        except Exception as exc:
            # Degrade rather than stall: answer without stored history (README, faults).
            warn_degraded(log, "history unavailable; answering without it", exc)
            self._observer.store_error(store="history")
            return []

    async def _remember(self, request: ChatRequest, result: ChatResult, dedupe_id: str) -> None:
        if request.conversation is None:
            return
        turns = [Turn("user", request.message), Turn("assistant", result.text)]
        try:
            await self._history.append(request.conversation, turns, dedupe_id=dedupe_id)
        except Exception as exc:
            warn_degraded(log, "could not store the conversation turn", exc)
            self._observer.store_error(store="history")

    def _cache_id(self, call: ChatCall, *, has_history: bool) -> str | None:
        if self._cache is None or not is_cacheable(
            temperature=call.temperature, has_history=has_history
        ):
            return None
        return cache_key(
            model=call.model,
            messages=call.messages,
            max_tokens=call.max_tokens,
            temperature=call.temperature,
            seed=call.seed,
            response_format=(
                call.response_format.to_openai() if call.response_format is not None else None
            ),
        )

    async def _cached(self, cache_id: str | None) -> ChatResult | None:
        if self._cache is None or cache_id is None:
            return None
        try:
            answer = await self._cache.get(cache_id)
        except Exception as exc:
            warn_degraded(log, "response cache unavailable", exc)
            self._observer.store_error(store="cache")
            return None
        if answer is None:
            self._observer.cache_miss()
            return None
        self._observer.cache_hit()
        # A cached answer spends no tokens: usage is reported as zero.
        return ChatResult(answer.text, answer.model, 0, 0, answer.finish_reason, "cache")

    async def _cache_answer(self, cache_id: str | None, result: ChatResult) -> None:
        if self._cache is None or cache_id is None:
            return
        try:
            await self._cache.put(
                cache_id, CachedAnswer(result.text, result.model, result.finish_reason)
            )
        except Exception as exc:
            warn_degraded(log, "could not store the answer in the response cache", exc)
            self._observer.store_error(store="cache")

    async def _recorded(self, dedupe_id: str) -> bytes | None:
        try:
            return await self._outcomes.get(dedupe_id)
        except Exception as exc:
            warn_degraded(log, "outcome store unavailable; cannot detect a replay", exc)
            self._observer.store_error(store="outcomes")
            return None

    async def _record(self, dedupe_id: str, reply: bytes) -> None:
        try:
            await self._outcomes.put(dedupe_id, reply)
        except Exception as exc:
            warn_degraded(log, "could not record the outcome", exc)
            self._observer.store_error(store="outcomes")
