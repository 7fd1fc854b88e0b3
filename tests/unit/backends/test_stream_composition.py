"""`stream` through the layers the core composes: the retry guard retries only before
the first delta, the breaker counts a failure inside a stream, the fallback chain moves
on only before the first delta, and the router names provider and cost as for
`complete`."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from chater_gpt.backends.fallback import FallbackBackend, FallbackLink
from chater_gpt.backends.router import ModelRouter
from chater_gpt.catalogue import DEFAULT_CATALOGUE, Provider
from chater_gpt.domain import BreakerState, ChatCall, ChatResult
from chater_gpt.errors import BackendError, BackendRejected, BackendUnavailable
from chater_gpt.resilience.breaker import Breaker
from chater_gpt.resilience.guards import BreakerBackend, RetryingBackend
from chater_gpt.resilience.retry import RetryPolicy
from tests.support.scripted_common import Deltas

# One attempt: the deltas it sends, then the error it raises (None: it succeeds).
Attempt = tuple[Sequence[str], BackendError | None]


class StreamingFake:
    """A backend whose each `stream` plays the next scripted attempt."""

    def __init__(self, name: str, *attempts: Attempt) -> None:
        self._name = name
        self.attempts = list(attempts)
        self.calls: list[ChatCall] = []

    @property
    def name(self) -> str:
        return self._name

    async def complete(self, call: ChatCall) -> ChatResult:
        return await self.stream(call, Deltas())

    async def stream(self, call: ChatCall, on_delta: Deltas) -> ChatResult:  # type: ignore[override]
        self.calls.append(call)
        texts, error = self.attempts.pop(0)
        for text in texts:
            await on_delta(text)
        if error is not None:
            raise error
        return ChatResult(
            text="".join(texts),
            model=call.model,
            prompt_tokens=1000,
            completion_tokens=100,
            finish_reason="stop",
            backend=self._name,
        )

    async def ping(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def call(model: str = "gpt-4o-mini") -> ChatCall:
    return ChatCall(
        model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=9, temperature=0
    )


async def no_sleep(_seconds: float) -> None:
    pass


def retrying(inner: StreamingFake) -> RetryingBackend:
    return RetryingBackend(inner, RetryPolicy(max_retries=3, retry_after_cap=1), sleep=no_sleep)


async def test_a_failure_before_the_first_delta_is_retried() -> None:
    fake = StreamingFake("a", ([], BackendUnavailable("down")), (["he", "llo"], None))
    deltas = Deltas()
    result = await retrying(fake).stream(call(), deltas)
    assert (result.text, deltas.texts, len(fake.calls)) == ("hello", ["he", "llo"], 2)


async def test_a_failure_after_the_first_delta_is_never_retried() -> None:
    fake = StreamingFake("a", (["he"], BackendUnavailable("cut")), (["hello"], None))
    deltas = Deltas()
    with pytest.raises(BackendUnavailable):
        await retrying(fake).stream(call(), deltas)
    assert (deltas.texts, len(fake.calls)) == (["he"], 1)


async def test_the_breaker_counts_a_failure_inside_a_stream() -> None:
    fake = StreamingFake("a", (["he"], BackendUnavailable("cut")))
    breaker = Breaker("a", fail_max=1, reset_seconds=30)
    with pytest.raises(BackendUnavailable):
        await BreakerBackend(fake, breaker).stream(call(), Deltas())
    assert breaker.state is BreakerState.OPEN


async def test_the_fallback_moves_on_only_before_the_first_delta() -> None:
    primary = StreamingFake(
        "a", ([], BackendUnavailable("down")), (["par"], BackendUnavailable("cut"))
    )
    backup = StreamingFake("b", (["from b"], None), (["never"], None))
    chain = FallbackBackend([FallbackLink(primary), FallbackLink(backup)])
    deltas = Deltas()
    assert (await chain.stream(call(), deltas)).text == "from b"
    assert deltas.texts == ["from b"]
    deltas = Deltas()
    with pytest.raises(BackendUnavailable):
        await chain.stream(call(), deltas)
    assert deltas.texts == ["par"]
    assert len(backup.calls) == 1  # not asked after text went out


async def test_the_fallback_keeps_a_non_retryable_error() -> None:
    primary = StreamingFake("a", ([], BackendRejected("bad request")))
    backup = StreamingFake("b", (["x"], None))
    with pytest.raises(BackendRejected):
        await FallbackBackend([FallbackLink(primary), FallbackLink(backup)]).stream(
            call(), Deltas()
        )
    assert backup.calls == []


async def test_the_router_streams_from_the_models_provider_and_prices_it() -> None:
    openai = StreamingFake("openai", (["a", "b"], None))
    router = ModelRouter(
        {Provider.OPENAI: openai}, default=Provider.OPENAI, catalogue=DEFAULT_CATALOGUE
    )
    deltas = Deltas()
    result = await router.stream(call("gpt-4o-mini"), deltas)
    assert (result.text, result.provider, deltas.texts) == ("ab", "openai", ["a", "b"])
    assert result.cost_usd > 0
