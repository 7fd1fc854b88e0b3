"""The gateway process: its reply topic, the Kafka producer and reply reader, the web
server; on SIGTERM it stops taking requests, lets open ones finish within the grace
period, answers the rest 503 (retryable) and exits. Only this instance's open requests
fail: other instances read other reply topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from chater_gpt.errors import GatewayUnavailable
from chater_gpt.gateway.app import GatewayApp, GatewayConfig, GatewayState, MoreRoutes
from chater_gpt.gateway.auth import ApiKeys
from chater_gpt.gateway.metrics import GatewayMetrics
from chater_gpt.gateway.requester import Requester
from chater_gpt.gateway.waiter import ReplyWaiter
from chater_gpt.kafka.producer import KafkaReplyProducer
from chater_gpt.kafka.reply_reader import RawReply, ReplyReader
from chater_gpt.kafka.topics import ensure_topic

log = logging.getLogger(__name__)
# The APIs served next to OpenAI's, built once the Kafka parts exist (wiring/gateway.py).
MoreApis = Callable[[Requester, GatewayState, GatewayMetrics], Sequence[MoreRoutes]]


@dataclass(frozen=True, slots=True)
class GatewayRuntime:
    """Where it listens and how it talks to Kafka."""

    host: str
    port: int
    producer: Mapping[str, Any]  # librdkafka producer properties
    consumer: Mapping[str, Any]  # librdkafka consumer properties (no group is joined)
    admin: Mapping[str, Any]  # librdkafka properties to create the reply topic
    refetch_seconds: float
    shutdown_grace_seconds: float


class Gateway:
    def __init__(
        self,
        config: GatewayConfig,
        runtime: GatewayRuntime,
        keys: ApiKeys,
        more_apis: MoreApis | None = None,
    ) -> None:
        self._more_apis = more_apis
        self._config = config
        self._runtime = runtime
        self._keys = keys
        self._stop = asyncio.Event()
        self._started = asyncio.Event()
        self.port: int | None = None

    def request_stop(self) -> None:
        self._stop.set()

    async def wait_started(self, timeout: float) -> None:
        await asyncio.wait_for(self._started.wait(), timeout)

    async def run(self, *, install_signal_handlers: bool = True) -> int:
        config, runtime = self._config, self._runtime
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(ensure_topic, runtime.admin, config.reply_topic)
        waiter = ReplyWaiter()
        state = GatewayState()
        producer = KafkaReplyProducer(
            dict(runtime.producer), loop, on_fatal=self._producer_failed(state)
        )
        reader = ReplyReader(
            runtime.consumer,
            config.reply_topic,
            lambda batch: _deliver(waiter, batch),
            loop,
            waiting=lambda: len(waiter) > 0,
            refetch_after=runtime.refetch_seconds,
        )
        await asyncio.to_thread(reader.start)
        state.reader_ready = lambda: reader.ready
        metrics = GatewayMetrics(refetches=lambda: reader.refetches)
        requester = Requester(
            config.request_topic, config.reply_topic, waiter, producer, config.timeout_seconds
        )
        more = self._more_apis(requester, state, metrics) if self._more_apis else ()
        app = GatewayApp(config, self._keys, waiter, requester, metrics, state, more).app()
        # handler_cancellation: a client that disconnects cancels its handler's wait.
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=5.0)
        await runner.setup()
        site = web.TCPSite(runner, runtime.host, runtime.port)
        await site.start()
        self.port = _bound_port(runner, runtime.port)
        if self._keys.is_open:
            log.warning("no GATEWAY_API_KEYS_FILE: the gateway is open to every caller")
        log.info(
            "gateway listening on %s:%d, replies on %s, %d API keys",
            runtime.host,
            self.port,
            config.reply_topic,
            len(self._keys),
        )
        if install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
        self._started.set()
        try:
            await self._stop.wait()
            state.draining = True
            await _wait_idle(waiter, runtime.shutdown_grace_seconds)
            failed = waiter.fail_all(GatewayUnavailable("the gateway restarted; retry"))
            log.info("gateway stopping: %d open requests answered 503", failed)
        finally:
            await runner.cleanup()
            for routes in more:
                await routes.aclose()
            await asyncio.to_thread(reader.stop)
            await asyncio.to_thread(producer.close, 5.0)
            if install_signal_handlers:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
        return 0

    def _producer_failed(self, state: GatewayState) -> Any:
        def failed(reason: str) -> None:
            state.producer_error = reason
            self.request_stop()

        return failed


def _deliver(waiter: ReplyWaiter, batch: list[RawReply]) -> None:
    for raw in batch:
        if raw.correlation_id is None:
            continue
        try:
            value = orjson.loads(raw.value or b"{}").get("value")
        except (orjson.JSONDecodeError, AttributeError):
            log.warning("an unreadable reply on the reply topic was dropped")
            continue
        if not isinstance(value, dict):
            continue
        if raw.stream:
            waiter.deliver_chunk(raw.correlation_id, value)
        else:
            waiter.deliver(raw.correlation_id, value)


async def _wait_idle(waiter: ReplyWaiter, grace: float) -> None:
    """Until no request is open, at most `grace` seconds."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(grace):
            await waiter.wait_idle()


def _bound_port(runner: web.AppRunner, configured: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    return configured
