"""The one way a failing store is reported: a throttled warning at the caller's line, and
the store's error counted."""

from __future__ import annotations

import logging

import pytest

from chater_gpt.observability.logging import RepeatFilter
from chater_gpt.processing.observer import NullObserver, store_degraded
from tests.unit.processing.fakes import RecordingObserver

log = logging.getLogger("chater.test.store_degraded")


def test_a_degraded_store_is_logged_by_class_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    observer = RecordingObserver()
    with caplog.at_level(logging.DEBUG, logger=log.name):
        store_degraded(log, observer, "history", "history unavailable", ConnectionError("10.0.0.1"))
    assert observer.events == [("store_error", {"store": "history"})]
    warning, detail = caplog.records
    assert warning.levelno == logging.WARNING
    assert warning.getMessage() == "history unavailable (ConnectionError)"
    assert "10.0.0.1" not in warning.getMessage()  # the error's text stays out of the line
    assert detail.levelno == logging.DEBUG
    assert detail.exc_info is not None  # the traceback only at DEBUG
    # The line is the caller's, not the helper's: each call site is throttled on its own.
    assert warning.pathname == __file__
    assert warning.funcName == "test_a_degraded_store_is_logged_by_class_and_counted"


def test_degraded_stores_of_different_call_sites_are_throttled_apart() -> None:
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Keep()
    handler.addFilter(RepeatFilter())
    logger = logging.getLogger("chater.test.store_degraded.sites")
    logger.addHandler(handler)
    logger.propagate = False
    observer = NullObserver()
    try:
        for _ in range(3):
            store_degraded(logger, observer, "history", "history unavailable", OSError())
            store_degraded(logger, observer, "outcomes", "outcome store unavailable", OSError())
    finally:
        logger.removeHandler(handler)
    assert seen == ["history unavailable (OSError)", "outcome store unavailable (OSError)"]
