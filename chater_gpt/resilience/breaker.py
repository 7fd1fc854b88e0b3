"""The circuit breaker of one backend, its state shared by every replica.

pybreaker holds the state machine (its `CircuitBreaker`, storage and listeners);
its own `call()` is synchronous (async only through Tornado), so the async call
protocol is here: `Breaker.call(fn)` awaits `fn` and records the outcome.

Sharing: with Redis, the state (closed/open/half_open, opened-at, failure count)
lives in one Redis hash per backend (`storage/breaker_state.py`), read once before
each call and written after it with the *async* client: the event loop never blocks
on Redis (pybreaker's own `CircuitRedisStorage` takes a sync client and costs a
blocking round trip per storage access, several per call). If Redis fails, the
breaker keeps working on its local copy (per process) and logs a warning.

Rules:
- Only retryable backend failures (5xx, 408, 429, timeouts, connection errors)
  count. Client errors (`BackendRejected`), bad responses and auth errors never
  trip it: the backend is up and waiting would not fix the request or the key
  (auth errors are answered as `backend_auth_error`; alert on that code). Such an
  answer counts as a success (the backend answered). Cancellation counts as
  nothing.
- While open: `CircuitOpen(retry_after=seconds until half-open)`, no backend call.
- Half-open: exactly one probe at a time across all replicas (a Redis key set
  with NX and a TTL); the others get `CircuitOpen(retry_after=probe_wait)`.
  The probe's success closes the breaker, its failure opens it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pybreaker

from chater_gpt.domain import BreakerState
from chater_gpt.errors import BackendError, CircuitOpen
from chater_gpt.storage.breaker_state import BreakerStateStore

log = logging.getLogger(__name__)

T = TypeVar("T")
# Called with (breaker name, new state) on every state change this process sees.
StateListener = Callable[[str, BreakerState], None]

_TO_OURS: dict[str, BreakerState] = {
    pybreaker.STATE_CLOSED: BreakerState.CLOSED,
    pybreaker.STATE_OPEN: BreakerState.OPEN,
    pybreaker.STATE_HALF_OPEN: BreakerState.HALF_OPEN,
}
_TO_PYBREAKER = {ours: theirs for theirs, ours in _TO_OURS.items()}


def counts_as_failure(exc: BaseException) -> bool:
    """Only failures that say "the backend is unwell" trip the breaker."""
    return isinstance(exc, BackendError) and exc.retryable and not isinstance(exc, CircuitOpen)


class _Storage(pybreaker.CircuitBreakerStorage):
    """pybreaker's view of the state: a local copy, refreshed from the shared store."""

    def __init__(self) -> None:
        super().__init__("shared-copy")
        self._state = pybreaker.STATE_CLOSED
        self._failures = 0
        self._successes = 0
        self._opened_at: datetime | None = None

    @property
    def state(self) -> str:
        return self._state

    @state.setter
    def state(self, state: str) -> None:
        self._state = state

    def increment_counter(self) -> None:
        self._failures += 1

    def reset_counter(self) -> None:
        self._failures = 0

    def set_counter(self, value: int) -> None:
        self._failures = value

    def increment_success_counter(self) -> None:
        self._successes += 1

    def reset_success_counter(self) -> None:
        self._successes = 0

    @property
    def counter(self) -> int:
        return self._failures

    @property
    def success_counter(self) -> int:
        return self._successes

    @property
    def opened_at(self) -> datetime | None:
        return self._opened_at

    @opened_at.setter
    def opened_at(self, value: datetime | None) -> None:
        self._opened_at = value


class _Relay(pybreaker.CircuitBreakerListener):
    def __init__(self, name: str, listeners: list[StateListener]) -> None:
        self._name = name
        self._listeners = listeners

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        state = _TO_OURS.get(new_state.name, BreakerState.CLOSED)
        for listener in self._listeners:
            try:
                listener(self._name, state)
            except Exception:  # a metrics hook must not break the breaker
                log.exception("breaker listener failed")


class Breaker:
    def __init__(
        self,
        name: str,
        *,
        fail_max: int,
        reset_seconds: float,
        store: BreakerStateStore | None = None,
        probe_ttl: float = 120.0,
        probe_wait: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._name = name
        self._store = store
        self._probe_ttl = probe_ttl
        self._probe_wait = probe_wait
        self._clock = clock
        self._listeners: list[StateListener] = []
        self._storage = _Storage()
        self._cb = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_seconds,
            state_storage=self._storage,
            listeners=[_Relay(name, self._listeners)],
            name=name,
        )
        self._probing = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def state(self) -> BreakerState:
        """The state as last seen (call `refresh()` first for the replicas' latest)."""
        return _TO_OURS.get(self._cb.current_state, BreakerState.CLOSED)

    def add_listener(self, listener: StateListener) -> None:
        self._listeners.append(listener)

    async def refresh(self) -> BreakerState:
        """Read the shared state (for readiness and metrics) and return it."""
        await self._pull()
        return self.state

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        await self._pull()
        probe = await self._admit()
        try:
            result = await fn()
        except BaseException as exc:
            if counts_as_failure(exc):
                await self._failed(probe)
            elif isinstance(exc, BackendError):
                await self._succeeded(probe)  # the backend answered; the request was wrong
            raise
        else:
            await self._succeeded(probe)
            return result
        finally:
            if probe:
                self._probing = False
                if self._store is not None:
                    await self._store.release_probe()

    # --- transitions -------------------------------------------------------------

    async def _admit(self) -> bool:
        """Raise CircuitOpen, or return whether this call is the half-open probe."""
        state = self.state
        if state is BreakerState.CLOSED:
            return False
        if state is BreakerState.OPEN:
            remaining = self._opened_at() + self._cb.reset_timeout - self._clock()
            if remaining > 0:
                raise CircuitOpen(f"the {self._name} backend is unavailable", retry_after=remaining)
        if self._probing:
            raise self._probe_running()
        self._probing = True  # before any await: one probe per process
        claimed = True
        if self._store is not None:
            claimed = await self._store.claim_probe(self._probe_ttl) is not False
        if not claimed:
            self._probing = False
            raise self._probe_running()
        if state is BreakerState.OPEN:
            self._cb.half_open()
            await self._save(BreakerState.HALF_OPEN)
        return True

    async def _failed(self, probe: bool) -> None:
        failures = await self._store.add_failure() if self._store is not None else None
        if failures is None:
            self._storage.increment_counter()
        else:
            self._storage.set_counter(failures)
        state = self.state
        if probe or (state is BreakerState.CLOSED and self._storage.counter >= self._cb.fail_max):
            self._cb.open()
            opened_at = self._clock()
            self._storage.opened_at = datetime.fromtimestamp(opened_at, UTC)
            await self._save(BreakerState.OPEN, opened_at=opened_at)

    async def _succeeded(self, probe: bool) -> None:
        if probe and self.state is BreakerState.HALF_OPEN:
            self._cb.close()
            await self._save(BreakerState.CLOSED)
        elif self.state is BreakerState.CLOSED and self._storage.counter:
            self._storage.reset_counter()
            if self._store is not None:
                await self._store.reset_failures()

    # --- shared state --------------------------------------------------------------

    async def _pull(self) -> None:
        if self._store is None:
            return
        shared = await self._store.load()
        if shared is None:
            return
        self._storage.set_counter(shared.failures)
        self._storage.opened_at = (
            datetime.fromtimestamp(shared.opened_at, UTC) if shared.opened_at is not None else None
        )
        if shared.state != self.state:
            self._storage.state = _TO_PYBREAKER[shared.state]
            _ = self._cb.state  # pybreaker notices the outside change and tells the listeners

    async def _save(self, state: BreakerState, *, opened_at: float | None = None) -> None:
        if self._store is not None:
            await self._store.save(state, opened_at=opened_at)

    def _opened_at(self) -> float:
        opened = self._storage.opened_at
        return opened.timestamp() if opened is not None else 0.0

    def _probe_running(self) -> CircuitOpen:
        return CircuitOpen(
            f"the {self._name} backend is being probed", retry_after=self._probe_wait
        )
