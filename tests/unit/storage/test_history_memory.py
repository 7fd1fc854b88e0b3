"""The in-memory history store: TTL, LRU bound, max_history in pairs, dedupe, forget."""

from __future__ import annotations

import pytest

from chater_gpt.domain import ConversationRef, Turn
from chater_gpt.storage.history import InMemoryHistoryStore, trim_start
from tests.support.fakes import FakeClock

ALICE = ConversationRef("alice@example.com")
ALICE_WORK = ConversationRef("alice@example.com", "work")
BOB = ConversationRef("bob@example.com")


def exchange(n: int) -> list[Turn]:
    return [Turn("user", f"q{n}"), Turn("assistant", f"a{n}")]


def store(clock: FakeClock | None = None, **overrides: float) -> InMemoryHistoryStore:
    options = {"max_history": 10, "ttl_seconds": 60.0, "max_conversations": 100}
    options.update(overrides)
    return InMemoryHistoryStore(
        max_history=int(options["max_history"]),
        ttl_seconds=options["ttl_seconds"],
        max_conversations=int(options["max_conversations"]),
        clock=clock or FakeClock(1000.0),
    )


async def test_appended_turns_come_back_in_order() -> None:
    history = store()
    await history.append(ALICE, exchange(1), dedupe_id="r1")
    await history.append(ALICE, exchange(2), dedupe_id="r2")
    assert await history.load(ALICE) == exchange(1) + exchange(2)
    assert await history.load(BOB) == []


async def test_conversation_expires_after_ttl_since_last_append() -> None:
    clock = FakeClock(1000.0)
    history = store(clock)
    await history.append(ALICE, exchange(1), dedupe_id="r1")
    clock.now += 50
    await history.append(ALICE, exchange(2), dedupe_id="r2")  # refreshes the TTL
    clock.now += 50
    assert await history.load(ALICE) == exchange(1) + exchange(2)
    clock.now += 11
    assert await history.load(ALICE) == []


async def test_max_history_keeps_the_newest_whole_exchanges() -> None:
    history = store(max_history=4)
    for n in range(1, 5):
        await history.append(ALICE, exchange(n), dedupe_id=f"r{n}")
    assert await history.load(ALICE) == exchange(3) + exchange(4)


async def test_odd_max_history_never_keeps_an_answer_without_its_question() -> None:
    history = store(max_history=3)
    for n in range(1, 4):
        await history.append(ALICE, exchange(n), dedupe_id=f"r{n}")
    assert await history.load(ALICE) == exchange(3)


@pytest.mark.parametrize(
    ("roles", "max_history", "start"),
    [
        (["user", "assistant"] * 3, 4, 2),
        (["user", "assistant"] * 3, 5, 2),
        (["user", "assistant"] * 3, 10, 0),
        (["user", "assistant"], 0, 2),
        (["assistant", "user", "assistant"], 10, 1),
    ],
)
def test_trim_start(roles: list[str], max_history: int, start: int) -> None:
    assert trim_start(roles, max_history) == start


async def test_replayed_append_is_not_stored_twice() -> None:
    history = store()
    await history.append(ALICE, exchange(1), dedupe_id="r1")
    await history.append(ALICE, exchange(1), dedupe_id="r1")
    assert await history.load(ALICE) == exchange(1)


async def test_least_recently_used_conversation_is_evicted() -> None:
    history = store(max_conversations=2)
    await history.append(ALICE, exchange(1), dedupe_id="r1")
    await history.append(BOB, exchange(2), dedupe_id="r2")
    assert await history.load(ALICE) == exchange(1)  # ALICE is now the most recent
    await history.append(ALICE_WORK, exchange(3), dedupe_id="r3")
    assert await history.load(BOB) == []
    assert await history.load(ALICE) == exchange(1)
    assert await history.load(ALICE_WORK) == exchange(3)


async def test_two_conversations_of_one_user_are_kept_apart() -> None:
    history = store()
    await history.append(ALICE, exchange(1), dedupe_id="r1")
    await history.append(ALICE_WORK, exchange(2), dedupe_id="r2")
    assert await history.load(ALICE) == exchange(1)
    assert await history.load(ALICE_WORK) == exchange(2)


async def test_forget_deletes_every_conversation_of_the_user_only() -> None:
    clock = FakeClock(1000.0)
    history = store(clock)
    await history.append(ALICE, exchange(1), dedupe_id="r1")
    await history.append(ALICE_WORK, exchange(2), dedupe_id="r2")
    await history.append(BOB, exchange(3), dedupe_id="r3")
    assert await history.forget_user("alice@example.com") == 2
    assert await history.load(ALICE) == []
    assert await history.load(ALICE_WORK) == []
    assert await history.load(BOB) == exchange(3)
    assert await history.forget_user("alice@example.com") == 0
    # After forgetting, the same request id may start a new history.
    await history.append(ALICE, exchange(1), dedupe_id="r1")
    assert await history.load(ALICE) == exchange(1)


async def test_forget_does_not_count_expired_conversations() -> None:
    clock = FakeClock(1000.0)
    history = store(clock)
    await history.append(ALICE, exchange(1), dedupe_id="r1")
    clock.now += 61
    assert await history.forget_user("alice@example.com") == 0


async def test_ping() -> None:
    assert await store().ping() is True


async def test_evicted_and_expired_conversations_leave_the_user_index() -> None:
    clock = FakeClock(1000.0)
    history = store(clock, max_conversations=1)
    await history.append(ALICE, exchange(1), dedupe_id="r1")
    await history.append(BOB, exchange(2), dedupe_id="r2")  # evicts ALICE's
    assert await history.forget_user("alice@example.com") == 0
    clock.now += 61
    assert await history.load(BOB) == []  # expired when read
    assert history._by_user == {}  # nothing left behind for either user
