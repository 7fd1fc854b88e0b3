"""What the load test shows: the summary rows and the plot."""

from pathlib import Path

from tests.load._report import plot, result_rows
from tests.load._stats import LoadResult, Sample
from tests.load.load_test import _error_code, _photo_error_code


def result() -> LoadResult:
    r = LoadResult(requested=3, sent=3, answered=2, lost=1, duplicates=1, elapsed=2.0)
    r.record_error("rate_limited")
    r.samples += [Sample(0.0, 0.25), Sample(0.5, 0.5, "rate_limited")]
    return r


def test_rows_show_error_codes_losses_and_latency() -> None:
    rows = dict(result_rows(result()))
    assert rows["answered"] == "2 (1 ok, 1 error replies)"
    assert rows["  error rate_limited"] == "1"
    assert rows["lost (no reply in time)"] == "1"
    assert rows["duplicate replies"] == "1"
    assert rows["throughput"] == "1.0 replies/s"
    assert rows["latency max"] == "500.0 ms"


def test_plot_writes_a_png(tmp_path: Path) -> None:
    path = tmp_path / "plots" / "run.png"
    plot(result(), path, "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_error_codes_are_read_from_error_replies_only() -> None:
    assert _error_code(b'{"key":"k","value":{"response":"ok"}}') is None
    assert _error_code(b'{"key":"k","value":{"error":{"code":"backend_timeout"}}}') == (
        "backend_timeout"
    )
    assert _error_code(b'{"error" broken') == "unreadable_reply"


def test_photo_replies_are_answers_only_with_an_analysis() -> None:
    answer = b'{"key":"k","value":{"analysis":"{\\"ok\\": true}","image_id":"i"}}'
    assert _photo_error_code(answer) is None
    error = b'{"key":"k","value":{"error":{"code":"invalid_model_output"},"image_id":"i"}}'
    assert _photo_error_code(error) == "invalid_model_output"
    assert _photo_error_code(b'{"key":"k","value":{"image_id":"i"}}') == "no_analysis"
    assert _photo_error_code(b"not json") == "unreadable_reply"
