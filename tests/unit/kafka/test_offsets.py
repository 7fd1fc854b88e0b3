"""Only contiguous finished offsets may be committed, whatever order work finishes in."""

from hypothesis import given
from hypothesis import strategies as st

from chater_gpt.kafka.offsets import OffsetTracker

TP = ("gpt-send", 0)


def tracker_with(offsets: list[int]) -> OffsetTracker:
    tracker = OffsetTracker()
    tracker.assign([TP])
    for offset in offsets:
        assert tracker.track(TP, offset) == EPOCH
    return tracker


EPOCH = 1  # a new tracker's first assignment


def test_nothing_to_commit_until_the_first_offset_finishes() -> None:
    tracker = tracker_with([5, 6, 7])
    tracker.finish(TP, 6, EPOCH)
    tracker.finish(TP, 7, EPOCH)
    assert tracker.to_commit() == []
    tracker.finish(TP, 5, EPOCH)
    assert tracker.to_commit() == [(TP, 8)]
    assert tracker.unfinished == 0


def test_a_gap_holds_the_position_back() -> None:
    tracker = tracker_with([0, 1, 2, 3])
    tracker.finish(TP, 0, EPOCH)
    tracker.finish(TP, 2, EPOCH)
    tracker.finish(TP, 3, EPOCH)
    assert tracker.to_commit() == [(TP, 1)]
    assert tracker.unfinished == 1


def test_committed_positions_are_not_offered_again() -> None:
    tracker = tracker_with([0, 1])
    tracker.finish(TP, 0, EPOCH)
    positions = tracker.to_commit()
    tracker.mark_committed(positions)
    assert tracker.to_commit() == []
    tracker.finish(TP, 1, EPOCH)
    assert tracker.to_commit() == [(TP, 2)]


def test_revoked_partitions_stop_counting_and_refuse_new_offsets() -> None:
    tracker = tracker_with([0, 1, 2])
    tracker.revoke([TP])
    assert tracker.unfinished == 0
    assert tracker.track(TP, 3) is None
    tracker.finish(TP, 0, EPOCH)  # a late completion of revoked work is ignored
    assert tracker.to_commit() == []


def test_work_from_before_a_loss_cannot_finish_the_new_assignment() -> None:
    # Partitions lost (session timeout) and assigned again: offsets 0-2 are replayed.
    tracker = tracker_with([0, 1, 2])
    tracker.revoke([TP])
    tracker.assign([TP])
    epoch = tracker.track(TP, 0)
    assert epoch is not None
    assert epoch != EPOCH
    tracker.track(TP, 1)
    tracker.finish(TP, 0, EPOCH)  # the old attempt's reply: must not count for the replay
    tracker.finish(TP, 1, epoch)
    assert tracker.to_commit() == []
    assert tracker.unfinished == 1
    assert not tracker.owns(TP, EPOCH)
    tracker.finish(TP, 0, epoch)
    assert tracker.to_commit() == [(TP, 2)]
    assert tracker.unfinished == 0


@given(st.integers(1, 60).flatmap(lambda n: st.permutations(list(range(n)))), st.data())
def test_position_is_one_past_the_longest_finished_prefix(
    order: list[int], data: st.DataObject
) -> None:
    count = len(order)
    tracker = tracker_with(list(range(100, 100 + count)))
    finished_count = data.draw(st.integers(0, count))
    finished = set(order[:finished_count])
    for index in order[:finished_count]:
        tracker.finish(TP, 100 + index, EPOCH)
    prefix = 0
    while prefix in finished:
        prefix += 1
    expected = [(TP, 100 + prefix)] if prefix else []
    assert tracker.to_commit() == expected
    assert tracker.unfinished == count - finished_count
