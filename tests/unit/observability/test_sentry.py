"""Sentry is optional, and whatever it would send has its secrets scrubbed."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from pydantic import SecretStr

from chater_gpt.config import Settings
from chater_gpt.observability.logging import REDACTED, Redactor
from chater_gpt.observability.sentry import init_sentry, make_before_send, scrub

KEY = "sk-test-SENTRY-SECRET-9a8b7c6d"
REDIS_PASSWORD = "hunter2-redis-pw"


def settings(dsn: str | None) -> Settings:
    return Settings(
        bootstrap_server="127.0.0.1:9092",
        openai_api_key=SecretStr(KEY),
        redis_url=SecretStr(f"redis://:{REDIS_PASSWORD}@10.0.0.5:6379/0"),
        sentry_dsn=SecretStr(dsn) if dsn else None,
    )


def event_with_secrets() -> dict[str, Any]:
    return {
        "level": "error",
        "logentry": {"message": "call failed with key %s", "params": [KEY]},
        "exception": {
            "values": [
                {
                    "type": "AuthenticationError",
                    "value": f"Incorrect API key provided: {KEY}",
                    "stacktrace": {
                        "frames": [{"function": "complete", "vars": {"api_key": "anything"}}]
                    },
                }
            ]
        },
        "request": {
            "headers": {"Authorization": "Bearer abc.def.ghi", "Content-Type": "application/json"}
        },
        "extra": {
            "redis": f"redis://:{REDIS_PASSWORD}@10.0.0.5:6379/0",
            "usage": {"prompt_tokens": 12, "completion_tokens": 34},
            "owner": "someone@example.com",
        },
        "breadcrumbs": {"values": [{"message": f"retrying with {KEY}", "category": "log"}]},
    }


def test_scrub_removes_every_secret_and_keeps_the_rest() -> None:
    redactor = Redactor([KEY, REDIS_PASSWORD])
    scrubbed = scrub(event_with_secrets(), redactor)
    text = repr(scrubbed)

    for secret in (KEY, REDIS_PASSWORD, "abc.def.ghi", "anything", "someone@example.com"):
        assert secret not in text
    assert scrubbed["request"]["headers"]["Authorization"] == REDACTED
    assert scrubbed["request"]["headers"]["Content-Type"] == "application/json"
    assert scrubbed["extra"]["usage"] == {"prompt_tokens": 12, "completion_tokens": 34}
    assert scrubbed["exception"]["values"][0]["type"] == "AuthenticationError"
    assert scrubbed["level"] == "error"


def test_before_send_never_drops_the_event() -> None:
    before_send = make_before_send(Redactor([KEY]))
    event = before_send(event_with_secrets(), {})  # type: ignore[arg-type]
    assert event is not None
    assert KEY not in repr(event)


def test_without_a_dsn_sentry_is_not_even_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentry_sdk", None)  # any import would raise
    assert init_sentry(None, Redactor()) is False


def test_with_a_dsn_captured_errors_reach_the_transport_scrubbed() -> None:
    import sentry_sdk
    from sentry_sdk.envelope import Envelope
    from sentry_sdk.transport import Transport

    sent: list[bytes] = []

    class Recording(Transport):
        def capture_envelope(self, envelope: Envelope) -> None:
            sent.append(envelope.serialize())

    config = settings("https://public@sentry.example.invalid/1")
    redactor = Redactor([KEY, REDIS_PASSWORD])
    try:
        dsn = config.sentry_dsn.get_secret_value() if config.sentry_dsn else None
        assert init_sentry(dsn, redactor, transport=Recording) is True
        try:
            raise RuntimeError(f"backend said: bad key {KEY} (redis {config.redis_url})")
        except RuntimeError:
            sentry_sdk.capture_exception()
        sentry_sdk.flush(2)
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init()  # back to a disabled client for the rest of the session

    payload = b"".join(sent)
    assert b"backend said: bad key" in payload
    assert KEY.encode() not in payload
    assert REDIS_PASSWORD.encode() not in payload
