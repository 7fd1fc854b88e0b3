"""The Redis client of the process, and the one policy for a Redis outage.

The policy. Every Redis store turns a failure to reach Redis (any `RedisError`, or an
`OSError` from the socket) into `StoreUnavailable`, naming the store; nothing else in
the service sees a Redis exception. What happens next depends only on what the store
holds, and is decided once:

- shared coordination (rate windows, budget counters, breaker state): the store is
  wrapped in its `Failover*` store by `open_stores`. While Redis fails the same limits
  hold per process and the breaker keeps its local state; one throttled warning
  ("... limits hold per process", "... using the local state"). A budget settlement
  that cannot reach Redis is dropped with a warning (the reservation stays charged).
- conversation data (history, outcomes, response cache): the error reaches the
  caller (the processing stages, through `processing.observer.store_degraded`), which
  carries on without the store: answers without stored history, with no
  replay protection (outcome neither read nor recorded) or without the cache; a
  warning and `chater_gpt_store_errors_total{store}`. A *forget* that cannot reach
  Redis cannot carry on without it: it is answered `store_unavailable` (retryable),
  and nothing is acknowledged as deleted.
- reads that must not guess (the `usage` command, `open_stores(..., fail_over=False)`):
  the error ends the command (exit code 1).
- health: `/readyz` pings the client itself and reports `redis` failing while it
  does not answer; `HistoryStore.ping` answers False.

So a Redis outage never stops the service nor fails a chat request: it loses sharing
(limits per replica) and memory (history, replay records) until Redis is back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from chater_gpt.errors import StoreUnavailable


@contextmanager
def store_errors(store: str) -> Iterator[None]:
    """Inside, a failure to reach Redis is raised as `StoreUnavailable(store)`."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(store) from exc


def redis_client(url: str, *, max_connections: int) -> Redis:
    """One pool for the process. Blocking: with many requests in flight a request waits
    for a connection instead of failing (which would look like Redis being down, and
    make a replay miss its recorded outcome)."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=10,
        socket_timeout=5,
        socket_connect_timeout=5,
    )
    return Redis(connection_pool=pool)
