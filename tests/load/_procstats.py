"""CPU time and memory of another process, read from /proc (Linux only).

The parsers are pure functions of the file text; `ProcessStats` is the thin reader."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def cpu_seconds_from_stat(stat: str, ticks_per_second: int) -> float:
    """utime + stime of a /proc/<pid>/stat line, in seconds (all threads of the process)."""
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of the line
    return (utime + stime) / ticks_per_second


def status_kib(status: str, name: str) -> int:
    """A `Name:   123 kB` value of /proc/<pid>/status, in KiB."""
    for line in status.splitlines():
        label, _, rest = line.partition(":")
        if label == name:
            return int(rest.split()[0])
    raise KeyError(f"{name} is not in the status file")


@dataclass(frozen=True)
class ProcessStats:
    pid: int

    def cpu_seconds(self) -> float:
        text = Path(f"/proc/{self.pid}/stat").read_text()
        return cpu_seconds_from_stat(text, os.sysconf("SC_CLK_TCK"))

    def peak_rss_mib(self) -> float:
        """VmHWM: the highest resident set size the process has had."""
        return status_kib(Path(f"/proc/{self.pid}/status").read_text(), "VmHWM") / 1024

    def rss_mib(self) -> float:
        return status_kib(Path(f"/proc/{self.pid}/status").read_text(), "VmRSS") / 1024
