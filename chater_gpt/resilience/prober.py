"""The breaker's half-open probe, made by the service itself.

A breaker moves from open to half-open only when a call arrives after its reset
time. After an outage with no traffic nothing calls, so the breaker would stay open,
and `/readyz` would answer 503 (and KEDA or a load balancer would keep the replica
out) until the first request came. The prober calls each open breaker's guarded
`ping` (the model list: no tokens, no rate-limit turn) every `interval` seconds; the
breaker itself decides whether that call is the probe (its reset time has passed and
no other probe runs here or, with Redis, on another replica), so the prober never
adds calls beyond one probe per reset period. A request waiting on the breaker may
make the probe instead; whichever comes first closes it.

A model list that answers proves the backend is reachable and accepts the key, not
that completions work: if they still fail, the breaker opens again after
BREAKER_FAIL_MAX failures, as it would after any probe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from chater_gpt.backends.base import LLMBackend
from chater_gpt.domain import BreakerState
from chater_gpt.errors import BackendError, CircuitOpen
from chater_gpt.resilience.breaker import Breaker

log = logging.getLogger(__name__)


class BreakerProber:
    def __init__(
        self,
        breakers: Mapping[str, Breaker],
        guarded: Mapping[str, LLMBackend],
        *,
        interval: float,
    ) -> None:
        self._targets = [(breakers[name], guarded[name]) for name in breakers if name in guarded]
        self._interval = interval

    async def probe_open_breakers(self) -> None:
        """One round: ping through every breaker that is open (as last seen here)."""
        for breaker, backend in self._targets:
            if breaker.state is not BreakerState.OPEN:
                continue
            try:
                await backend.ping()
            except CircuitOpen:
                pass  # not due yet, or another probe is running
            except BackendError as exc:
                log.info(
                    "half-open probe failed; the breaker stays open",
                    extra={"backend": breaker.name, "code": exc.code.value},
                )
            else:
                log.info(
                    "half-open probe answered; breaker closed", extra={"backend": breaker.name}
                )

    async def run(self) -> None:
        """Probe every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(self._interval)
            await self.probe_open_breakers()
