"""Which offsets may be committed: only the contiguous run of finished ones.

A message is "finished" when the broker acknowledged its reply (or when it needs
no reply at all). Offsets finish out of order because conversations run in
parallel; the committable position of a partition is one past the highest offset
below which every consumed offset has finished. Pure bookkeeping, no I/O.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

TopicPartition = tuple[str, int]


@dataclass(slots=True)
class PartitionOffsets:
    """Consumed-but-unfinished offsets of one partition, in consumption order."""

    # Which assignment of the partition this is: work consumed under an earlier one
    # (before a loss and re-assignment) must not finish offsets of this one.
    epoch: int = 0
    pending: deque[int] = field(default_factory=deque)
    finished: set[int] = field(default_factory=set)
    # Next offset to commit (Kafka commits "the next offset to read").
    position: int | None = None
    committed: int | None = None

    def track(self, offset: int) -> None:
        self.pending.append(offset)

    def finish(self, offset: int) -> None:
        if self.pending and self.pending[0] == offset:
            self.pending.popleft()
            self.position = offset + 1
            # Earlier completions that were waiting on this one become contiguous.
            while self.pending and self.pending[0] in self.finished:
                done = self.pending.popleft()
                self.finished.discard(done)
                self.position = done + 1
        else:
            self.finished.add(offset)

    @property
    def in_flight(self) -> int:
        return len(self.pending) - len(self.finished)


class OffsetTracker:
    """Offsets of every assigned partition; the source of truth for commits."""

    def __init__(self) -> None:
        self._partitions: dict[TopicPartition, PartitionOffsets] = {}
        self._in_flight = 0
        self._epochs = itertools.count(1)

    @property
    def in_flight(self) -> int:
        """Messages consumed and not yet finished, over all partitions."""
        return self._in_flight

    def assign(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            if tp not in self._partitions:
                self._partitions[tp] = PartitionOffsets(epoch=next(self._epochs))

    def revoke(self, partitions: list[TopicPartition]) -> None:
        """Forget partitions; their unfinished work no longer counts (or commits)."""
        for tp in partitions:
            state = self._partitions.pop(tp, None)
            if state is not None:
                self._in_flight -= state.in_flight

    def owns(self, tp: TopicPartition, epoch: int) -> bool:
        """Whether work tracked under `epoch` still belongs to the current assignment."""
        state = self._partitions.get(tp)
        return state is not None and state.epoch == epoch

    def track(self, tp: TopicPartition, offset: int) -> int | None:
        """Record a consumed offset; its assignment epoch, or None when the partition is
        not (or no longer) ours."""
        state = self._partitions.get(tp)
        if state is None:
            return None
        state.track(offset)
        self._in_flight += 1
        return state.epoch

    def finish(self, tp: TopicPartition, offset: int, epoch: int) -> None:
        if not self.owns(tp, epoch):
            return  # revoked or lost meanwhile: the partition's owner replays it
        self._partitions[tp].finish(offset)
        self._in_flight -= 1

    def to_commit(
        self, partitions: list[TopicPartition] | None = None
    ) -> list[tuple[TopicPartition, int]]:
        """Positions that advanced since the last `mark_committed`."""
        chosen = (
            self._partitions
            if partitions is None
            else {tp: self._partitions[tp] for tp in partitions if tp in self._partitions}
        )
        return [
            (tp, state.position)
            for tp, state in chosen.items()
            if state.position is not None and state.position != state.committed
        ]

    def mark_committed(self, positions: list[tuple[TopicPartition, int]]) -> None:
        for tp, position in positions:
            state = self._partitions.get(tp)
            if state is not None and (state.committed is None or position > state.committed):
                state.committed = position
