"""The event endpoint's route: `POST /event` → `{"completion"}` or `{"error", "details"}`.

The prompt is extracted from the event (`event_shapes.py`), sent through Kafka like any
gateway request and waited for (`GATEWAY_TIMEOUT_SECONDS`). With API keys configured
the caller sends one as `Authorization: Bearer <key>` or in `GATEWAY_API_KEY_HEADER`
(`X-API-Key`); probes and metrics stay open.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from aiohttp import web

from chater_gpt.errors import ChaterError
from chater_gpt.gateway.auth import ApiKeys
from chater_gpt.gateway.event_shapes import (
    EventError,
    core_event_request,
    event_answer,
    from_exception,
)
from chater_gpt.gateway.requester import Requester


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


class EventApi:
    def __init__(self, requester: Requester, keys: ApiKeys, key_header: str) -> None:
        self._requester = requester
        self._keys = keys
        self._key_header = key_header

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_post("/event", self._event)

    async def aclose(self) -> None:
        pass

    def _authorization(self, request: web.Request) -> str | None:
        key = request.headers.get(self._key_header)
        return f"Bearer {key}" if key else request.headers.get("Authorization")

    async def _event(self, request: web.Request) -> web.Response:
        try:
            identity = self._keys.identify(self._authorization(request))
            try:
                body = orjson.loads(await request.read())
            except orjson.JSONDecodeError:
                raise EventError(400, "invalid_input_format", "the body is not JSON") from None
            correlation_id = uuid.uuid4().hex
            value = core_event_request(body, identity.tenant, correlation_id)
            reply = await self._requester.round_trip(correlation_id, value, correlation_id)
            return _json(event_answer(reply))
        except web.HTTPRequestEntityTooLarge:
            return _json({"error": "invalid_input_format", "details": "the body is too large"}, 413)
        except ChaterError as exc:
            error = from_exception(exc)
            return _json(error.body(), error.status)
        except EventError as exc:
            return _json(exc.body(), exc.status)
