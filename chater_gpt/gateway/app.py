"""The gateway's HTTP routes: OpenAI's chat completions and models, and the probes.

A chat completion is authenticated, read (at most `max_body_bytes`), validated,
translated into the core's request and sent to the request topic with this instance's
reply address and a fresh correlation id; the handler then waits for that reply (at
most `timeout_seconds`, else 504), or, for `stream: true`, relays its stream as
server-sent events (`streaming.py`). A client that disconnects cancels only its wait
(the server runs with handler cancellation): the core still answers, records and bills.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from aiohttp import web

from chater_gpt.errors import (
    ChaterError,
    GatewayUnavailable,
    InvalidJson,
    PayloadTooLarge,
)
from chater_gpt.gateway.auth import ApiKeys
from chater_gpt.gateway.error_map import HttpError, from_core_reply, http_error
from chater_gpt.gateway.metrics import GatewayMetrics
from chater_gpt.gateway.openai_shapes import (
    Caller,
    ChatCompletionRequest,
    completion,
    model_list,
    owner,
    parse_request,
    to_core_request,
)
from chater_gpt.gateway.requester import Requester
from chater_gpt.gateway.streaming import StreamSpec, relay
from chater_gpt.gateway.waiter import ReplyWaiter

log = logging.getLogger(__name__)

CORS_KEY = "chater_cors_headers"
USER_HEADER = "X-Chater-User"
CONVERSATION_HEADER = "X-Chater-Conversation"
_UNOBSERVED = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class MoreRoutes(Protocol):
    """Routes of another API served next to OpenAI's (the job API, the event endpoint)."""

    def register(self, router: web.UrlDispatcher) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    request_topic: str
    reply_topic: str
    models: frozenset[str]
    timeout_seconds: float
    max_body_bytes: int
    cors_origins: tuple[str, ...] = ()
    stream_idle_seconds: float = 30.0
    # A tenant's own allowed models (the tenant policy), when it narrows `models`.
    tenant_models: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Who serves each model (the catalogue's provider), for the models list.
    owners: Mapping[str, str] = field(default_factory=dict)

    def models_for(self, tenant: str | None) -> frozenset[str]:
        """The models a caller of this tenant may ask for."""
        narrowed = self.tenant_models.get(tenant) if tenant is not None else None
        return self.models if narrowed is None else self.models & narrowed


class GatewayState:
    """What the probes read: stopping, the reply reader alive, the producer healthy."""

    def __init__(self, reader_ready: Callable[[], bool] = lambda: True) -> None:
        self.draining = False
        self.producer_error: str | None = None
        self.reader_ready = reader_ready

    def failing(self) -> dict[str, str]:
        checks = {
            "draining": "the gateway is stopping" if self.draining else "",
            "replies": "" if self.reader_ready() else "the reply reader is not running",
            "kafka": self.producer_error or "",
        }
        return {name: detail for name, detail in checks.items() if detail}


def _route_of(request: web.Request) -> str:
    """The matched route's path template, or `unmatched` (a 404 of the router)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )


def _error(error: HttpError) -> web.Response:
    return _json(error.body, error.status, error.headers)


def _from_exception(exc: ChaterError, param: str | None = None) -> web.Response:
    return _error(http_error(exc.code.value, exc.message, param=param, retry_after=exc.retry_after))


class GatewayApp:
    def __init__(
        self,
        config: GatewayConfig,
        keys: ApiKeys,
        waiter: ReplyWaiter,
        requester: Requester,
        metrics: GatewayMetrics,
        state: GatewayState,
        more_routes: Sequence[MoreRoutes] = (),
    ) -> None:
        self._more_routes = more_routes
        self._config = config
        self._keys = keys
        self._waiter = waiter
        self._requester = requester
        self._metrics = metrics
        self._state = state

    def app(self) -> web.Application:
        app = web.Application(
            client_max_size=self._config.max_body_bytes,
            middlewares=[self._cors, self._observe],
        )
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/livez", self._livez)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics_text)
        for routes in self._more_routes:
            routes.register(app.router)
        return app

    # --- middlewares ----------------------------------------------------------------

    @web.middleware
    async def _observe(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every API request counted by its route's template (a bounded label: the job
        id in `/get_request/<id>` is not one); probes and scrapes are not API traffic."""
        route = _route_of(request)
        if route in _UNOBSERVED:
            return await handler(request)
        started = time.monotonic()
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # the router's 404 / 405
            self._metrics.answered(route, exc.status, time.monotonic() - started)
            raise
        self._metrics.answered(route, response.status, time.monotonic() - started)
        return response

    @web.middleware
    async def _cors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        allowed = self._config.cors_origins
        if not origin or not allowed or ("*" not in allowed and origin not in allowed):
            return await handler(request)
        cors = {"Access-Control-Allow-Origin": "*" if "*" in allowed else origin, "Vary": "Origin"}
        request[CORS_KEY] = cors  # a stream sends its headers before the handler returns
        if request.method == "OPTIONS":
            cors["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            cors["Access-Control-Allow-Headers"] = request.headers.get(
                "Access-Control-Request-Headers", "Authorization, Content-Type"
            )
            cors["Access-Control-Max-Age"] = "600"
            return web.Response(status=204, headers=cors)
        response = await handler(request)
        if not response.prepared:
            response.headers.update(cors)
        return response

    # --- OpenAI API -----------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.Response:
        """The models this caller's tenant may ask for, each with its provider."""
        try:
            identity = self._keys.identify(request.headers.get("Authorization"))
        except ChaterError as exc:
            return _from_exception(exc)
        models = self._config.models_for(identity.tenant)
        return _json(model_list(models, self._config.owners))

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            identity = self._keys.identify(request.headers.get("Authorization"))
            if self._state.draining:
                raise GatewayUnavailable("the gateway is stopping; retry", retry_after=1)
            body = await self._read_json(request)
            parsed = parse_request(body)
            caller = Caller(
                tenant=identity.tenant,
                user=request.headers.get(USER_HEADER),
                conversation=request.headers.get(CONVERSATION_HEADER),
            )
            correlation_id = uuid.uuid4().hex
            value = to_core_request(parsed, caller, correlation_id)
            who = owner(caller, parsed)
            key = f"{who}:{caller.conversation or ''}" if who else correlation_id
            if parsed.stream:
                return await self._streamed(request, parsed, key, value, correlation_id)
            reply = await self._requester.round_trip(key, value, correlation_id)
        except ChaterError as exc:
            return _from_exception(exc)
        if "error" in reply:
            return _error(from_core_reply(reply["error"]))
        return _json(completion(reply, correlation_id))

    async def _streamed(
        self,
        request: web.Request,
        parsed: ChatCompletionRequest,
        key: str,
        value: dict[str, Any],
        correlation_id: str,
    ) -> web.StreamResponse:
        events = self._waiter.expect_stream(correlation_id)
        spec = StreamSpec(
            completion_id=correlation_id,
            model=parsed.model or "",
            include_usage=bool(parsed.stream_options and parsed.stream_options.include_usage),
            timeout=self._config.timeout_seconds,
            idle=self._config.stream_idle_seconds,
            headers=request.get(CORS_KEY, {}),
        )
        try:
            self._requester.send(key, value, correlation_id)
            return await relay(request, events, spec)
        finally:
            self._waiter.forget(correlation_id)  # answered, timed out, or the caller left

    async def _read_json(self, request: web.Request) -> Any:
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise PayloadTooLarge(
                f"the request body is over {self._config.max_body_bytes} bytes"
            ) from None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise InvalidJson("the request body is not JSON") from None

    # --- probes ---------------------------------------------------------------------

    async def _livez(self, _: web.Request) -> web.Response:
        return _json({"ok": True})  # answered by the loop, so the loop is alive

    async def _readyz(self, _: web.Request) -> web.Response:
        failing = self._state.failing()
        return _json({"failing": failing}, 503) if failing else _json({"ok": True})

    async def _healthz(self, _: web.Request) -> web.Response:
        return _json(
            {
                "failing": self._state.failing(),
                "open_requests": len(self._waiter),
                "reply_topic": self._config.reply_topic,
                "auth": "open" if self._keys.is_open else "api keys",
            }
        )

    async def _metrics_text(self, _: web.Request) -> web.Response:
        self._metrics.open_requests(len(self._waiter))
        return web.Response(body=self._metrics.render(), content_type="text/plain")
