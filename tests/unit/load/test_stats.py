"""Percentiles and the counts a load run reports."""

import math

import pytest

from tests.load._stats import LoadResult, Sample, percentile, summarize


def test_percentile_interpolates_between_ranks() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 100) == 4.0
    assert percentile(list(map(float, range(1, 101))), 99) == pytest.approx(99.01)


def test_percentile_of_one_value_and_of_nothing() -> None:
    assert percentile([0.3], 99) == 0.3
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match=r"within 0\.\.100"):
        percentile([1.0], 101)


def test_summary_sorts_its_input() -> None:
    summary = summarize([0.3, 0.1, 0.2])
    assert (summary.count, summary.p50, summary.max) == (3, 0.2, 0.3)
    assert summary.as_ms()["p50"] == 200.0
    assert summarize([]).as_ms() == {
        "count": 0,
        "mean": None,
        "p50": None,
        "p90": None,
        "p99": None,
        "max": None,
    }


def test_result_counts_errors_throughput_and_cleanliness() -> None:
    result = LoadResult(requested=4, sent=4, answered=3, lost=1, elapsed=1.5)
    result.record_error("backend_error")
    result.record_error("backend_error")
    result.samples += [Sample(0.0, 0.2), Sample(0.1, 0.4, "backend_error")]
    assert (result.errors, result.ok) == (2, 1)
    assert result.throughput == 2.0
    assert not result.clean  # one was lost
    summary = result.summary()
    assert summary["errors_by_code"] == {"backend_error": 2}
    assert summary["latency_ms"]["max"] == 400.0
    assert LoadResult(requested=2, sent=2, answered=2).clean
    assert not LoadResult(requested=2, sent=1, answered=1).clean  # one never sent
