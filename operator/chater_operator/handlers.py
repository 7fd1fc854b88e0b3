"""kopf wiring: `kopf run -m chater_operator.handlers`.

One code path (`reconcile`) serves create, update, resume and the drift timer;
deletion goes through the finalizer handler. The handlers only adapt kopf's
arguments and errors; the logic lives in `reconcile`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from functools import partial
from typing import Any

import kopf

from chater_operator import GROUP, PLURAL, VERSION
from chater_operator.client import HttpKubeApi
from chater_operator.errors import KubeApiError
from chater_operator.login import kopf_login, login_info
from chater_operator.reconcile import Reconciler, finalize, reconcile

# How often the timer compares the children with their rendered state and
# refreshes the status (readyReplicas). Cheap: a few GETs, no writes when equal.
DRIFT_INTERVAL_SECONDS = 30.0
RETRY_DELAY_SECONDS = 15.0


class KopfEvents:
    """Events through kopf's poster (batched, attached to the ChaterGpt)."""

    def emit(self, body: Mapping[str, Any], *, type: str, reason: str, message: str) -> None:
        target = body if isinstance(body, kopf.Body) else kopf.Body(dict(body))  # type: ignore[arg-type]
        kopf.event(target, type=type, reason=reason, message=message)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Our own names for kopf's bookkeeping on the objects, not kopf.zalando.org.
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Our events say what was done; kopf's per-log-line events only for problems.
    settings.posting.level = logging.WARNING
    if "reconciler" not in memo:  # a test may have put its own
        api = HttpKubeApi(partial(kopf_login, settings))
        memo.reconciler = Reconciler(api=api, events=KopfEvents())
        memo.client = api


@kopf.on.login()
def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo | None:
    # Explicit, so it does not depend on what kopf detected when it was imported.
    return login_info(settings)


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    client = memo.get("client")
    if isinstance(client, HttpKubeApi):
        await client.close()


async def on_change(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await _reconcile(body, memo)


async def drift_timer(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await _reconcile(body, memo)


async def on_delete(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    async with _lock(memo):
        try:
            await finalize(body, memo.reconciler)
        except KubeApiError as exc:
            # Keep the finalizer until the children are really gone: retry.
            raise kopf.TemporaryError(exc.message, delay=RETRY_DELAY_SECONDS) from exc


async def _reconcile(body: kopf.Body, memo: kopf.Memo) -> None:
    # The timer and the change handlers of one object must not interleave.
    async with _lock(memo):
        try:
            await reconcile(body, memo.reconciler)
        except KubeApiError as exc:
            if exc.temporary:
                raise kopf.TemporaryError(exc.message, delay=RETRY_DELAY_SECONDS) from exc
            raise kopf.PermanentError(exc.message) from exc


# Registered by calls rather than decorators, so the names stay plain typed coroutines
# that tests (and readers) can call with just the arguments they use.
kopf.on.resume(GROUP, VERSION, PLURAL)(on_change)
kopf.on.create(GROUP, VERSION, PLURAL)(on_change)
kopf.on.update(GROUP, VERSION, PLURAL)(on_change)
kopf.timer(
    GROUP, VERSION, PLURAL, interval=DRIFT_INTERVAL_SECONDS, initial_delay=DRIFT_INTERVAL_SECONDS
)(drift_timer)
kopf.on.delete(GROUP, VERSION, PLURAL)(on_delete)


def _lock(memo: kopf.Memo) -> asyncio.Lock:
    # kopf gives every object a shallow copy of the operator's memo: a per-object lock.
    lock = memo.get("lock")
    if not isinstance(lock, asyncio.Lock):
        lock = asyncio.Lock()
        memo["lock"] = lock
    return lock
