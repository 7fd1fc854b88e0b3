"""CPU and memory numbers read from /proc."""

import os

from tests.load._procstats import ProcessStats, cpu_seconds_from_stat, status_kib


def test_cpu_seconds_survive_a_command_name_with_spaces_and_parentheses() -> None:
    # fields 14 and 15 (utime, stime) are 250 and 150 ticks
    stat = "4242 (python main (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 9 0"
    assert cpu_seconds_from_stat(stat, 100) == 4.0


def test_status_values_are_read_by_name() -> None:
    status = "Name:\tpython\nVmPeak:\t  300000 kB\nVmHWM:\t  123456 kB\nVmRSS:\t  100000 kB\n"
    assert status_kib(status, "VmHWM") == 123456
    assert status_kib(status, "VmRSS") == 100000


def test_reads_a_live_process() -> None:
    stats = ProcessStats(os.getpid())
    sum(i * i for i in range(200_000))  # burn a little CPU
    assert stats.cpu_seconds() > 0
    # The current size first: the peak read after it is at least that (the process may
    # grow between the two reads, so the other order can see a peak below it).
    rss = stats.rss_mib()
    assert stats.peak_rss_mib() >= rss > 1
