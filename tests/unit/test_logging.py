"""Logs never carry secrets; e-mails are masked; JSON lines carry the request key."""

from __future__ import annotations

import io
import logging

import orjson
import pytest

from chater_gpt.config import Settings
from chater_gpt.observability.logging import configure_logging
from chater_gpt.wiring import logging_config

KEY = "sk-live-LOGGING-SECRET-abcdef0123456789"
REDIS_PASSWORD = "r3dis-Pa55word-xyz"


@pytest.fixture
def captured() -> io.StringIO:
    stream = io.StringIO()
    settings = Settings(
        bootstrap_server="k:9092",
        openai_api_key=KEY,
        redis_url=f"redis://default:{REDIS_PASSWORD}@redis:6379/0",
        log_format="json",
    )
    configure_logging(logging_config(settings), stream=stream)
    yield stream
    logging.getLogger().handlers.clear()


def test_configured_secrets_are_redacted_everywhere(captured: io.StringIO) -> None:
    log = logging.getLogger("test")
    log.warning("calling with key %s", KEY, extra={"key": "req-1"})
    try:
        raise RuntimeError(f"connect failed redis://default:{REDIS_PASSWORD}@redis:6379")
    except RuntimeError:
        log.exception("failure")
    log.info("Authorization: Bearer some-other-token-123456")
    text = captured.getvalue()
    assert KEY not in text
    assert REDIS_PASSWORD not in text
    assert "some-other-token-123456" not in text
    first = orjson.loads(text.splitlines()[0])
    assert first["key"] == "req-1"
    assert first["level"] == "WARNING"


def test_unknown_key_shapes_and_emails_are_masked(captured: io.StringIO) -> None:
    logging.getLogger("test").warning("user alice.smith@example.com used sk-abcdefghijklmnop1234")
    text = captured.getvalue()
    assert "alice.smith@example.com" not in text
    assert "a***@example.com" in text
    assert "sk-abcdefghijklmnop1234" not in text


def test_repeated_warnings_are_held_back_and_counted() -> None:
    from chater_gpt.observability.logging import RepeatFilter

    now = [0.0]
    repeat = RepeatFilter(interval=10.0, clock=lambda: now[0])

    def record(msg: str, level: int = logging.WARNING, line: int = 1) -> logging.LogRecord:
        return logging.LogRecord("chater", level, "processor.py", line, msg, None, None)

    first = record("redis down (%s)")
    assert repeat.filter(first)
    assert not any(repeat.filter(record("redis down (%s)")) for _ in range(5))
    assert repeat.filter(record("another warning", line=2))  # another call site
    assert repeat.filter(record("boom", level=logging.ERROR))  # errors always pass
    now[0] = 11.0
    later = record("redis down (%s)")
    assert repeat.filter(later)
    assert later.msg == "redis down (%s) [5 similar lines held back]"


def test_degraded_warnings_of_different_call_sites_are_throttled_apart() -> None:
    from chater_gpt.observability.logging import RepeatFilter, warn_degraded

    logger = logging.getLogger("chater.test.degraded")
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Keep()
    handler.addFilter(RepeatFilter())
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for _ in range(3):
            warn_degraded(logger, "history unavailable", ConnectionError())
            warn_degraded(logger, "outcome store unavailable", ConnectionError())
    finally:
        logger.removeHandler(handler)
    assert seen == [
        "history unavailable (ConnectionError)",
        "outcome store unavailable (ConnectionError)",
    ]


def test_a_degraded_warning_names_the_cause_never_its_message() -> None:
    from chater_gpt.observability.logging import warn_degraded

    logger = logging.getLogger("chater.test.degraded.cause")
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno == logging.WARNING:
                seen.append(record.getMessage())

    handler = Keep()
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise LookupError("store") from ConnectionError("redis://:pw@10.0.0.1")
        except LookupError as exc:
            warn_degraded(logger, "history unavailable", exc)
    finally:
        logger.removeHandler(handler)
    assert seen == ["history unavailable (LookupError from ConnectionError)"]
