"""What a load run measured, and the arithmetic on it (pure: no I/O, no clocks)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of already sorted values, interpolated linearly
    between the closest ranks (numpy's default), so small samples stay meaningful."""
    if not sorted_values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, not {q}")
    position = (len(sorted_values) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = position - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


@dataclass(frozen=True)
class LatencySummary:
    """Seconds; NaN everywhere when nothing was measured."""

    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    max: float

    def as_ms(self) -> dict[str, Any]:
        return {
            "count": self.count,
            **{name: _ms(getattr(self, name)) for name in ("mean", "p50", "p90", "p99", "max")},
        }


def _ms(seconds: float) -> float | None:
    return None if math.isnan(seconds) else round(seconds * 1000, 3)


def summarize(values: Iterable[float]) -> LatencySummary:
    ordered = sorted(values)
    if not ordered:
        return LatencySummary(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    return LatencySummary(
        count=len(ordered),
        mean=math.fsum(ordered) / len(ordered),
        p50=percentile(ordered, 50),
        p90=percentile(ordered, 90),
        p99=percentile(ordered, 99),
        max=ordered[-1],
    )


@dataclass(frozen=True)
class Sample:
    """One answered request: when it was sent (seconds after the run started), how long
    its first reply took, and the error code of that reply (None for an answer)."""

    sent_at: float
    latency: float
    error_code: str | None = None


@dataclass
class LoadResult:
    """Counts of one run. `answered` counts first replies (answers and error replies);
    `lost` requests had no reply within the timeout (`late` of them got one afterwards);
    `duplicates` are replies beyond the first for one request."""

    requested: int
    sent: int = 0
    send_failed: int = 0
    answered: int = 0
    lost: int = 0
    late: int = 0
    duplicates: int = 0
    errors_by_code: dict[str, int] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    elapsed: float = 0.0  # first send to the last first reply

    @property
    def errors(self) -> int:
        return sum(self.errors_by_code.values())

    @property
    def ok(self) -> int:
        return self.answered - self.errors

    @property
    def throughput(self) -> float:
        """First replies per second over the run."""
        return self.answered / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def latency(self) -> LatencySummary:
        return summarize(s.latency for s in self.samples)

    @property
    def clean(self) -> bool:
        """Nothing lost and nothing left unsent: what the exit code reports."""
        return self.lost == 0 and self.send_failed == 0 and self.sent == self.requested

    def record_error(self, code: str) -> None:
        self.errors_by_code[code] = self.errors_by_code.get(code, 0) + 1

    def summary(self) -> dict[str, Any]:
        """The JSON form (latencies in milliseconds)."""
        return {
            "requested": self.requested,
            "sent": self.sent,
            "send_failed": self.send_failed,
            "answered": self.answered,
            "ok": self.ok,
            "errors": self.errors,
            "errors_by_code": dict(sorted(self.errors_by_code.items())),
            "lost": self.lost,
            "late": self.late,
            "duplicates": self.duplicates,
            "elapsed_s": round(self.elapsed, 3),
            "throughput_per_s": round(self.throughput, 2),
            "latency_ms": self.latency.as_ms(),
        }
