"""The building blocks of a `HealthSource` over the running service.

`Heartbeat` (the service loop's beat, for `/livez`), `RedisCheck` (a cached, shared
ping), the views of the pipeline and the consumer the probes read, and
`ServiceHealth`, which adapts the running service to `health.HealthSource`.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from chater_gpt.domain import BreakerState, PauseReason
from chater_gpt.observability.health import CheckResult


class Heartbeat:
    """The service loop calls `beat()`; a stale beat means the loop is wedged."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last = clock()

    def beat(self) -> None:
        self._last = self._clock()

    def age(self) -> float:
        return self._clock() - self._last

    async def run(self, interval: float = 1.0) -> None:
        """Beat every `interval` seconds for as long as the event loop turns."""
        while True:
            self.beat()
            await asyncio.sleep(interval)


class RedisCheck:
    """A Redis ping with a short timeout, its result reused for `ttl` seconds.

    The lock makes concurrent probes share one ping instead of piling up.
    """

    def __init__(
        self,
        ping: Callable[[], Any] | None,
        *,
        timeout: float = 1.0,
        ttl: float = 1.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ping = ping
        self._timeout = timeout
        self._ttl = ttl
        self._clock = clock
        self._lock = asyncio.Lock()
        self._cached: CheckResult | None = None
        self._checked_at = 0.0

    async def __call__(self) -> CheckResult:
        if self._ping is None:
            return CheckResult(True, "not configured")
        async with self._lock:
            if self._cached is None or self._clock() - self._checked_at >= self._ttl:
                self._cached = await self._check()
                self._checked_at = self._clock()
            return self._cached

    async def _check(self) -> CheckResult:
        assert self._ping is not None
        try:
            async with asyncio.timeout(self._timeout):
                result = self._ping()
                if inspect.isawaitable(result):
                    await result
        except TimeoutError:
            return CheckResult(False, f"no answer to PING within {self._timeout:g} s")
        except Exception as exc:
            # The class name only: client error messages may carry the address.
            return CheckResult(False, f"unreachable ({type(exc).__name__})")
        return CheckResult(True, "PING answered")


class TrackerView(Protocol):
    @property
    def in_flight(self) -> int: ...


class PipelineView(Protocol):
    """The parts of `kafka.pipeline.Pipeline` the probes read."""

    @property
    def pause_reasons(self) -> frozenset[PauseReason]: ...

    @property
    def tracker(self) -> TrackerView: ...


class IngressView(Protocol):
    """The parts of `kafka.consumer.KafkaIngress` the probes read."""

    @property
    def assignment(self) -> frozenset[tuple[str, int]]: ...

    @property
    def paused(self) -> bool: ...

    @property
    def last_poll(self) -> float: ...

    @property
    def broker_error(self) -> str | None: ...


class ServiceView(Protocol):
    """The running service; pipeline and ingress exist once `run()` has started."""

    @property
    def pipeline(self) -> PipelineView | None: ...

    @property
    def ingress(self) -> IngressView | None: ...


def _no_breakers() -> Mapping[str, BreakerState]:
    return {}


class ServiceHealth:
    """`HealthSource` over the running service, its heartbeat, Redis and breakers."""

    def __init__(
        self,
        service: ServiceView,
        *,
        heartbeat: Heartbeat,
        redis: RedisCheck,
        draining: Callable[[], bool],
        breakers: Callable[[], Mapping[str, BreakerState]] = _no_breakers,
        poll_stale_after: float = 30.0,
        join_grace: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._service = service
        self._heartbeat = heartbeat
        self._redis = redis
        self._draining = draining
        self._breakers = breakers
        self._poll_stale_after = poll_stale_after
        self._join_grace = join_grace
        self._clock = clock
        self._started = clock()

    def heartbeat_age(self) -> float:
        return self._heartbeat.age()

    def kafka_check(self) -> CheckResult:
        ingress = self._service.ingress
        if ingress is None:
            return CheckResult(False, "consumer not started")
        poll_age = self._clock() - ingress.last_poll
        if poll_age > self._poll_stale_after:
            return CheckResult(False, f"consumer has not polled for {poll_age:.0f} s")
        assigned = len(ingress.assignment)
        if assigned:
            return CheckResult(True, f"{assigned} partition(s) assigned")
        if ingress.broker_error is not None:
            return CheckResult(
                False, f"no partition assigned; broker error: {ingress.broker_error}"
            )
        if self._clock() - self._started < self._join_grace:
            return CheckResult(False, "waiting for a partition assignment")
        # More consumers than partitions: idle but healthy, ready to take over.
        return CheckResult(True, "connected; no partition assigned to this member")

    async def redis_check(self) -> CheckResult:
        return await self._redis()

    def breaker_states(self) -> Mapping[str, BreakerState]:
        return self._breakers()

    def draining(self) -> bool:
        return self._draining()

    def in_flight(self) -> int:
        pipeline = self._service.pipeline
        return 0 if pipeline is None else pipeline.tracker.in_flight

    def pause_reasons(self) -> frozenset[PauseReason]:
        pipeline = self._service.pipeline
        return frozenset() if pipeline is None else pipeline.pause_reasons

    def paused_partitions(self) -> int:
        ingress = self._service.ingress
        return len(ingress.assignment) if ingress is not None and ingress.paused else 0
