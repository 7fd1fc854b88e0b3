"""What processing reports (metrics), and the one way a failing store is reported."""

from __future__ import annotations

import logging
from typing import Protocol

from chater_gpt.observability.logging import warn_degraded


class ProcessorObserver(Protocol):
    """What the processor reports (metrics); every method must be cheap and never raise."""

    def request_done(
        self, *, outcome: str, code: str, model: str, backend: str, route: str
    ) -> None: ...

    def tokens(self, *, model: str, prompt: int, completion: int) -> None: ...

    def cost(self, *, model: str, provider: str, usd: float) -> None: ...

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

    def cost(self, *, model: str, provider: str, usd: float) -> None:
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


def store_degraded(
    logger: logging.Logger,
    observer: ProcessorObserver,
    store: str,
    message: str,
    exc: BaseException,
) -> None:
    """A store failed and the request carries on without it (README, "faults"): one
    throttled WARNING naming the error's class, at the caller's line, and the store's
    error counted."""
    warn_degraded(logger, message, exc, stacklevel=3)
    observer.store_error(store=store)
