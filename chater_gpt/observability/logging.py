"""Logging: JSON lines in production, text in the embedded demo, secrets never written.

Redaction happens on the final formatted line (message, arguments and traceback
alike): configured secret values, API-key and bearer-token shapes, passwords in
URLs. E-mail addresses are masked. A request's key travels as `extra={"key": ...}`
and comes out as the `key` field, the correlation id.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

_PATTERNS = (
    re.compile(r"sk-[A-Za-z0-9_\-]{8,}"),  # OpenAI-style keys
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-~+/=]{8,}"),
    re.compile(
        r"(?i)((?:api[_-]?key|password|passwd|secret|token)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"
    ),
    re.compile(r"(?i)([a-z][a-z0-9+.\-]*://[^:/@\s]*:)[^@\s]+(@)"),  # user:password@ in URLs
)
_EMAIL = re.compile(r"([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*@([A-Za-z0-9.\-]+\.[A-Za-z]{2,})")
REDACTED = "[REDACTED]"


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(_keep_prefix, text)
        return _EMAIL.sub(r"\1***@\2", text)


def _keep_prefix(match: re.Match[str]) -> str:
    groups = match.groups()
    if not groups:
        return REDACTED
    suffix = groups[1] if len(groups) > 1 and groups[1] else ""
    return f"{groups[0]}{REDACTED}{suffix}"


class JsonFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        key = getattr(record, "key", None)
        if key is not None:
            entry["key"] = str(key)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return self._redact(orjson.dumps(entry).decode())


class TextFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        self._redact = redactor

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        key = getattr(record, "key", None)
        return self._redact(f"{line} [key={key}]" if key is not None else line)


class RepeatFilter(logging.Filter):
    """Lets a WARNING-or-lower line through once per `interval` seconds per call site;
    the next one that passes says how many were held back. An outage of Redis or the
    backend would otherwise write the same warning for every request."""

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self._interval = interval
        self._clock = clock
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.WARNING:
            return True
        site = (record.pathname, record.lineno, str(record.msg))
        now = self._clock()
        last, held = self._seen.get(site, (-self._interval, 0))
        if now - last < self._interval:
            self._seen[site] = (last, held + 1)
            return False
        self._seen[site] = (now, 0)
        if held:
            record.msg = f"{record.msg} [{held} similar lines held back]"
        return True


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str  # DEBUG, INFO, WARNING, ERROR
    json: bool  # JSON lines (production) or text (the demo)
    secrets: tuple[str, ...] = ()  # every configured secret value, redacted wherever it shows


def configure_logging(config: LoggingConfig, *, stream: object = None) -> Redactor:
    redactor = Redactor(config.secrets)
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    formatter: logging.Formatter = (
        JsonFormatter(redactor) if config.json else TextFormatter(redactor)
    )
    handler.setFormatter(formatter)
    if config.level != "DEBUG":
        handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.level)
    # Client libraries log request details at DEBUG/INFO; keep them at WARNING.
    for noisy in ("httpx", "httpx2", "openai", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return redactor


def warn_degraded(
    logger: logging.Logger, message: str, exc: BaseException, *, stacklevel: int = 2
) -> None:
    """A dependency failed and the service carries on without it: one WARNING line naming
    the error's class (and its cause's, e.g. `StoreUnavailable from ConnectionError`), the
    traceback only at DEBUG, so an outage does not flood the log (and the client's
    message, which may carry an address, stays out of it)."""
    name = type(exc).__name__
    if exc.__cause__ is not None:
        name = f"{name} from {type(exc.__cause__).__name__}"
    # stacklevel: the line is the caller's, so each call site is throttled on its own (a
    # helper that calls this on its callers' behalf passes 3: the line is its caller's).
    logger.warning("%s (%s)", message, name, stacklevel=stacklevel)
    logger.debug("%s", message, exc_info=exc, stacklevel=stacklevel)
