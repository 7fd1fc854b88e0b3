from __future__ import annotations

import pytest

from chater_gpt.backends.fallback import (
    FallbackBackend,
    FallbackLink,
)
from chater_gpt.errors import BackendError, BackendRejected, CircuitOpen
from tests.support.fakes import ScriptedBackend, call


async def test_fallback_models_are_tried_in_order_and_the_reply_names_the_one_that_answered() -> (
    None
):
    primary = ScriptedBackend("openai", [BackendError("500"), CircuitOpen("open")])
    chain = FallbackBackend(
        [FallbackLink(primary), FallbackLink(primary, "gpt-4o"), FallbackLink(primary, "gpt-4.1")]
    )
    result = await chain.complete(call("gpt-4o-mini"))
    assert [c.model for c in primary.calls] == ["gpt-4o-mini", "gpt-4o", "gpt-4.1"]
    assert result.model == "gpt-4.1"


async def test_fallback_backend_answers_when_the_primary_breaker_is_open() -> None:
    primary = ScriptedBackend("openai", [CircuitOpen("open", retry_after=5)])
    local = ScriptedBackend("koboldcpp")
    seen: list[tuple[str, str, str]] = []
    chain = FallbackBackend(
        [FallbackLink(primary), FallbackLink(local)],
        on_fallback=lambda name, model, exc: seen.append((name, model, type(exc).__name__)),
    )
    result = await chain.complete(call())
    assert result.backend == "koboldcpp"
    assert seen == [("openai", "gpt-4o-mini", "CircuitOpen")]


async def test_a_non_retryable_error_is_the_answer() -> None:
    primary = ScriptedBackend("openai", [BackendRejected("400")])
    local = ScriptedBackend("koboldcpp")
    chain = FallbackBackend([FallbackLink(primary), FallbackLink(local)])
    with pytest.raises(BackendRejected):
        await chain.complete(call())
    assert local.calls == []


async def test_when_all_fail_the_primary_error_is_raised() -> None:
    primary = ScriptedBackend("openai", [CircuitOpen("open", retry_after=5)])
    local = ScriptedBackend("koboldcpp", [BackendError("502")])
    chain = FallbackBackend([FallbackLink(primary), FallbackLink(local)])
    with pytest.raises(CircuitOpen):  # so the processor waits for the primary
        await chain.complete(call())


async def test_the_same_model_is_not_tried_twice_and_close_closes_each_once() -> None:
    primary = ScriptedBackend("openai", [BackendError("500")] * 2)
    chain = FallbackBackend([FallbackLink(primary), FallbackLink(primary, "gpt-4o-mini")])
    with pytest.raises(BackendError):
        await chain.complete(call("gpt-4o-mini"))
    assert len(primary.calls) == 1
    await chain.aclose()
    assert primary.closed == 1
