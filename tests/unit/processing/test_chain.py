"""The assembled chain (build_processor). Its pauses: consumption stays paused exactly
while some request waits on an open breaker, and never outlives the requests that caused
it."""

from __future__ import annotations

import asyncio

import orjson

from chater_gpt.context.builder import ContextBuilder
from chater_gpt.contracts import ChatRequest, Job
from chater_gpt.domain import ChatCall, ChatResult
from chater_gpt.errors import BackendUnavailable, CircuitOpen
from chater_gpt.kafka.pipeline import PauseGate
from chater_gpt.processing.build import ProcessingConfig, ProcessingStores, build_processor
from chater_gpt.processing.dispatch import Dispatch
from chater_gpt.storage.cache import InMemoryResponseCache
from chater_gpt.storage.history import InMemoryHistoryStore
from chater_gpt.storage.outcomes import InMemoryOutcomeStore
from tests.support.fakes import ScriptedBackend
from tests.unit.processing.fakes import RecordingObserver


def job(key: str) -> Job:
    request = ChatRequest(
        key=key,
        message="hello",
        user=None,
        conversation=None,
        context=(),
        model="gpt-4o-mini",
        max_tokens=10,
        temperature=0.0,
        system_prompt=None,
        images=(),
        request_id=None,
        app_code=None,
    )
    return Job(request=request, dedupe_id=f"d-{key}", received_at=0.0, correlation_id=key)


def stores(*, cache: bool = False) -> ProcessingStores:
    return ProcessingStores(
        history=InMemoryHistoryStore(max_history=10, ttl_seconds=60, max_conversations=10),
        outcomes=InMemoryOutcomeStore(ttl_seconds=60),
        cache=InMemoryResponseCache(ttl_seconds=60) if cache else None,
    )


def processor(backend: ScriptedBackend, gate: PauseGate) -> Dispatch:
    return build_processor(
        ProcessingConfig(system_prompt="Be brief.", min_breaker_wait=0.0),
        stores(),
        backend=backend,
        builder=ContextBuilder(8000),
        pauser=gate,
    )


async def test_the_breaker_pause_lasts_while_a_request_waits_and_ends_when_it_is_answered() -> None:
    gate = PauseGate()
    backend = ScriptedBackend(outcomes=[CircuitOpen("open", retry_after=0.0)])
    reply = await processor(backend, gate).process(job("a"))
    assert b'"response":"ok from fake"' in reply
    assert len(backend.calls) == 2
    assert gate.reasons == frozenset()


async def test_the_pause_is_lifted_even_when_the_waiting_request_fails() -> None:
    seen: list[frozenset[str]] = []
    gate = PauseGate(on_change=seen.append)
    backend = ScriptedBackend(
        outcomes=[CircuitOpen("open", retry_after=0.0), BackendUnavailable("down")]
    )
    reply = await processor(backend, gate).process(job("b"))
    assert b'"code":"backend_unavailable"' in reply
    assert seen == [frozenset({"breaker"}), frozenset()]  # paused, then lifted


class GatedBackend(ScriptedBackend):
    """Open breaker for "slow" until released; one open-breaker answer for the others."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.tried: set[str] = set()

    async def complete(self, call: ChatCall) -> ChatResult:
        first_try = call.request_id not in self.tried
        self.tried.add(call.request_id)
        if (call.request_id == "slow" and not self.release.is_set()) or first_try:
            raise CircuitOpen("open", retry_after=0.0)
        return await super().complete(call)


async def test_two_waiters_keep_the_pause_until_the_last_one_leaves() -> None:
    gate = PauseGate()
    backend = GatedBackend()
    shared = processor(backend, gate)
    slow = asyncio.create_task(shared.process(job("slow")))
    await shared.process(job("fast"))
    assert gate.reasons == frozenset({"breaker"})  # "slow" still waits
    backend.release.set()
    await slow
    assert gate.reasons == frozenset()


async def test_a_replayed_job_is_answered_from_its_record_without_a_second_call() -> None:
    backend, observer = ScriptedBackend(), RecordingObserver()
    chain = build_processor(
        ProcessingConfig(system_prompt="Be brief."),
        stores(),
        backend=backend,
        builder=ContextBuilder(8000),
        pauser=PauseGate(),
        observer=observer,
    )
    first = await chain.process(job("a"))
    assert await chain.process(job("a")) == first
    assert len(backend.calls) == 1
    assert [event for event, _ in observer.events] == [
        "backend_latency",
        "cost",
        "tokens",
        "request_done",
        "replayed",
    ]


async def test_with_a_response_cache_a_deterministic_prompt_is_answered_once() -> None:
    backend, observer = ScriptedBackend(), RecordingObserver()
    chain = build_processor(
        ProcessingConfig(system_prompt="Be brief."),
        stores(cache=True),
        backend=backend,
        builder=ContextBuilder(8000),
        pauser=PauseGate(),
        observer=observer,
    )
    await chain.process(job("a"))
    again = orjson.loads(await chain.process(job("b")))  # another request, the same prompt
    assert len(backend.calls) == 1
    assert again["value"]["cached"] is True
    assert again["value"]["usage"]["total_tokens"] == 0
    outcomes = [done["outcome"] for done in observer.named("request_done")]
    assert outcomes == ["ok", "cached"]
