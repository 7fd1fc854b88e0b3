"""The one bounded expiring map: TTL, LRU order, per-entry TTL, pop, eviction hook."""

from __future__ import annotations

from chater_gpt.storage.ttl_lru import TtlLru
from tests.support.fakes import FakeClock


def test_values_expire_after_their_ttl() -> None:
    clock = FakeClock(100.0)
    lru: TtlLru[str] = TtlLru(ttl_seconds=10, max_entries=5, clock=clock)
    lru.put("a", "A")
    clock.now += 9.9
    assert lru.get("a") == "A"
    clock.now += 0.1
    assert lru.get("a") is None
    assert len(lru) == 0


def test_a_put_refreshes_the_ttl_and_may_set_its_own() -> None:
    clock = FakeClock(100.0)
    lru: TtlLru[str] = TtlLru(ttl_seconds=10, max_entries=5, clock=clock)
    lru.put("a", "A")
    clock.now += 8
    lru.put("a", "A2")
    lru.put("short", "S", ttl_seconds=1)
    clock.now += 8
    assert lru.get("a") == "A2"
    assert lru.get("short") is None


def test_the_least_recently_used_goes_first() -> None:
    lru: TtlLru[int] = TtlLru(ttl_seconds=10, max_entries=2, clock=FakeClock(100.0))
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # "b" is now the least recently used
    lru.put("c", 3)
    assert lru.get("b") is None
    assert (lru.get("a"), lru.get("c")) == (1, 3)


def test_pop_removes_and_returns_only_a_live_value() -> None:
    clock = FakeClock(100.0)
    lru: TtlLru[int] = TtlLru(ttl_seconds=10, max_entries=5, clock=clock)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.pop("a") == 1
    assert lru.pop("a") is None
    clock.now += 10
    assert lru.pop("b") is None  # expired: removed, but not returned
    assert len(lru) == 0


def test_entries_leaving_on_their_own_are_reported() -> None:
    clock = FakeClock(100.0)
    gone: list[tuple[str, int]] = []
    lru: TtlLru[int] = TtlLru(
        ttl_seconds=10, max_entries=2, clock=clock, on_evict=lambda k, v: gone.append((k, v))
    )
    lru.put("a", 1)
    lru.put("b", 2)
    lru.put("c", 3)  # "a" makes room
    lru.put("c", 4)  # an overwrite is not an eviction
    assert lru.pop("b") == 2  # nor is a pop
    clock.now += 10
    assert lru.get("c") is None  # expired when read
    assert gone == [("a", 1), ("c", 4)]
