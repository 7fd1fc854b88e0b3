"""Optional Sentry error reporting (SENTRY_DSN), with secrets scrubbed from every event.

sentry-sdk is imported only when a DSN is configured. Before anything is sent,
every string in the event (messages, exception values, breadcrumbs, request
data) goes through the log `Redactor`, and values under secret-looking keys are
replaced whole. Local variables are not collected at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chater_gpt.observability.logging import REDACTED, Redactor

if TYPE_CHECKING:  # sentry-sdk is imported at run time only when a DSN is set
    from sentry_sdk.types import Breadcrumb, BreadcrumbHint, Event, Hint

# Whole key names or their last segment ("x-api-key", "access_token"), not "prompt_tokens".
_SECRET_KEY = re.compile(
    r"(?i)^(?:.*[_\-.])?"
    r"(?:api[_\-]?key|authorization|password|passwd|secret(?:[_\-]key)?|token|cookies?|dsn"
    r"|credentials?)$"
)

BeforeSend = Callable[["Event", "Hint"], "Event | None"]


def scrub(value: Any, redactor: Redactor) -> Any:
    """A copy of `value` with secrets redacted in every string, at any depth."""
    if isinstance(value, str):
        return redactor(value)
    if isinstance(value, dict):
        return {
            key: REDACTED
            if isinstance(key, str) and _SECRET_KEY.search(key) and item
            else scrub(item, redactor)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub(item, redactor) for item in value]
    return value


def make_before_send(redactor: Redactor) -> BeforeSend:
    def before_send(event: Event, hint: Hint) -> Event | None:
        scrubbed: Event = scrub(event, redactor)
        return scrubbed

    return before_send


def make_before_breadcrumb(
    redactor: Redactor,
) -> Callable[[Breadcrumb, BreadcrumbHint], Breadcrumb | None]:
    def before_breadcrumb(crumb: Breadcrumb, hint: BreadcrumbHint) -> Breadcrumb | None:
        scrubbed: Breadcrumb = scrub(crumb, redactor)
        return scrubbed

    return before_breadcrumb


def init_sentry(dsn: str | None, redactor: Redactor, **options: Any) -> bool:
    """Start Sentry when a DSN (SENTRY_DSN) is given; returns whether it was started.

    `options` go to `sentry_sdk.init` (tests pass a `transport`).
    """
    if not dsn:
        return False
    import sentry_sdk

    sentry_sdk.init(
        dsn=dsn,
        before_send=make_before_send(redactor),
        before_breadcrumb=make_before_breadcrumb(redactor),
        include_local_variables=False,
        traces_sample_rate=0.0,
        **options,
    )
    return True
