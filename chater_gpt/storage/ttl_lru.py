"""A bounded, expiring map: the in-memory stand-in for Redis keys with a TTL.

Every in-memory store is one of these (outcomes, response cache, history, rate
windows, budget counters), so "bounded" and "expires" mean the same everywhere.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class TtlLru(Generic[V]):
    """At most `max_entries` values, each forgotten `ttl_seconds` after it was put (or
    the `ttl_seconds` given to that `put`); the least recently used go first when full.

    `on_evict(key, value)` is called for an entry that leaves on its own (expired when
    read, or dropped to make room), never for `pop` or an overwrite: a store that
    indexes its entries elsewhere keeps its index in step through it.
    """

    def __init__(
        self,
        *,
        ttl_seconds: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
        on_evict: Callable[[str, V], None] | None = None,
    ) -> None:
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._on_evict = on_evict

    def get(self, key: str) -> V | None:
        """The live value (now the most recently used), or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= self._clock():
            del self._entries[key]
            self._evicted(key, value)
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: str, value: V, *, ttl_seconds: float | None = None) -> None:
        """Store `value` as the most recently used, expiring `ttl_seconds` from now."""
        ttl = self._ttl if ttl_seconds is None else ttl_seconds
        self._entries[key] = (self._clock() + ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            oldest, (_, dropped) = self._entries.popitem(last=False)
            self._evicted(oldest, dropped)

    def pop(self, key: str) -> V | None:
        """Remove the entry; its value if it was still live, else None."""
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        expires, value = entry
        return value if expires > self._clock() else None

    def __len__(self) -> int:
        return len(self._entries)

    def _evicted(self, key: str, value: V) -> None:
        if self._on_evict is not None:
            self._on_evict(key, value)
