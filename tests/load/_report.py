"""How a load run is shown: a terminal table, a live progress bar, a PNG plot."""

from __future__ import annotations

import math
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tests.load._stats import LoadResult


def _fmt_ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f} ms"


def result_rows(result: LoadResult) -> list[tuple[str, str]]:
    """(label, value) rows of the summary table, in reading order."""
    latency = result.latency
    rows = [
        ("requested", str(result.requested)),
        ("sent", str(result.sent)),
        ("answered", f"{result.answered} ({result.ok} ok, {result.errors} error replies)"),
    ]
    rows += [(f"  error {code}", str(n)) for code, n in sorted(result.errors_by_code.items())]
    rows += [
        ("lost (no reply in time)", str(result.lost)),
        ("  of which late", str(result.late)),
        ("duplicate replies", str(result.duplicates)),
        ("send failures", str(result.send_failed)),
        ("elapsed", f"{result.elapsed:.2f} s"),
        ("throughput", f"{result.throughput:.1f} replies/s"),
        ("latency p50", _fmt_ms(latency.p50)),
        ("latency p90", _fmt_ms(latency.p90)),
        ("latency p99", _fmt_ms(latency.p99)),
        ("latency max", _fmt_ms(latency.max)),
    ]
    return rows


def print_result(console: Console, result: LoadResult, title: str) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for label, value in result_rows(result):
        bad = (label.startswith(("lost", "duplicate", "send failures"))) and value != "0"
        table.add_row(label, f"[bold red]{value}[/]" if bad else value)
    console.print(table)


class RichProgress:
    """The live progress bar (on stderr); a context manager."""

    def __init__(self, total: int, console: Console | None = None) -> None:
        self._progress = Progress(
            TextColumn("[bold]load"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} answered"),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._task = self._progress.add_task("load", total=total, detail="")

    def update(self, *, sent: int, answered: int, lost: int, in_flight: int) -> None:
        self._progress.update(
            self._task,
            completed=answered + lost,
            detail=f"sent {sent} · in flight {in_flight} · lost {lost}",
        )

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()


def plot(result: LoadResult, path: Path, title: str) -> None:
    """Latency over the run (errors in red) beside the latency histogram."""
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    ok = [s for s in result.samples if s.error_code is None]
    failed = [s for s in result.samples if s.error_code is not None]
    figure, (over_time, histogram) = plt.subplots(1, 2, figsize=(13, 4.5))
    over_time.scatter([s.sent_at for s in ok], [s.latency * 1000 for s in ok], s=3, label="reply")
    if failed:
        over_time.scatter(
            [s.sent_at for s in failed],
            [s.latency * 1000 for s in failed],
            s=6,
            color="red",
            label="error reply",
        )
    over_time.set(
        xlabel="sent at (s into the run)", ylabel="latency (ms)", title="latency over time"
    )
    over_time.legend(loc="upper right")
    latencies = [s.latency * 1000 for s in result.samples]
    histogram.hist(latencies or [0.0], bins=60)
    summary = result.latency
    for label, value in (("p50", summary.p50), ("p99", summary.p99)):
        if not math.isnan(value):
            histogram.axvline(value * 1000, linestyle="--", color="black")
            histogram.annotate(label, (value * 1000, 0), rotation=90, va="bottom")
    histogram.set(xlabel="latency (ms)", ylabel="replies", title="latency histogram")
    figure.suptitle(
        f"{title}: {result.answered} replies, {result.throughput:.1f}/s, lost {result.lost}"
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def run_json(spec: dict[str, Any], result: LoadResult, extra: dict[str, Any]) -> dict[str, Any]:
    return {"spec": spec, "result": result.summary(), **extra}
