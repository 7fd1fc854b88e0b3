"""Sending a request to the core, for every route of the gateway (the OpenAI API, jobs,
events): onto the request topic with this instance's reply address and a correlation id
(a job's id too), and, for a round trip, waiting for the reply (`waiter.py`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from chater_gpt.errors import GatewayTimeout, GatewayUnavailable
from chater_gpt.gateway.waiter import ReplyWaiter
from chater_gpt.kafka.headers import JOB_ID_HEADER
from chater_gpt.kafka.producer import ReplySink

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Requester:
    request_topic: str
    reply_topic: str
    waiter: ReplyWaiter
    sink: ReplySink
    timeout_seconds: float

    def _headers(self, correlation_id: str, job_id: str | None) -> list[tuple[str, bytes]]:
        headers = [
            ("reply-to", self.reply_topic.encode()),
            ("correlation-id", correlation_id.encode()),
        ]
        if job_id is not None:
            headers.append((JOB_ID_HEADER, job_id.encode()))
        return headers

    async def submit(self, key: str, value: dict[str, Any], job_id: str) -> None:
        """Send a job and wait until the broker has it (then no gateway restart loses it);
        GatewayUnavailable when it could not be sent."""
        delivered: asyncio.Future[object] = asyncio.get_running_loop().create_future()

        def report(err: object) -> None:
            if not delivered.done():
                delivered.set_result(err)

        envelope = orjson.dumps({"key": key, "value": value})
        self.sink.send(self.request_topic, key, envelope, self._headers(job_id, job_id), report)
        async with asyncio.timeout(self.timeout_seconds):
            err = await delivered
        if err is not None:
            log.error("a job could not be sent: %s", err)
            raise GatewayUnavailable("the job could not be queued; retry", retry_after=1)

    def send(self, key: str, value: dict[str, Any], correlation_id: str) -> None:
        """Send a request whose answer is awaited in the waiter (registered before): a
        request that could not be sent fails its wait with GatewayUnavailable."""

        def report(err: object) -> None:
            if err is not None:
                log.error("a gateway request could not be sent: %s", err)
                self.waiter.fail(
                    correlation_id, GatewayUnavailable("the request could not be sent; retry")
                )

        envelope = orjson.dumps({"key": key, "value": value})
        headers = self._headers(correlation_id, None)
        self.sink.send(self.request_topic, key, envelope, headers, report)

    async def round_trip(self, key: str, value: dict[str, Any], correlation_id: str) -> Any:
        """Send a request and wait for its reply value (GatewayTimeout after the timeout)."""
        future = self.waiter.expect(correlation_id)
        try:
            self.send(key, value, correlation_id)
            async with asyncio.timeout(self.timeout_seconds):
                return await future
        except TimeoutError:
            raise GatewayTimeout(
                f"no answer within {self.timeout_seconds:g} s; the request may still be "
                "answered and billed"
            ) from None
        finally:
            self.waiter.forget(correlation_id)  # answered, timed out, or the caller left
