"""The streams of answers on Kafka (`gpt-stream`): each text delta of a streamed request,
published as it arrives, then the stream's end (`contracts.StreamChunk`).

Where: the stream topic (`STREAM_TOPIC`; empty: none), so any consumer may follow every
stream, and the request's reply address when it has one (a gateway's reply topic), so a
gateway reads its own requests' chunks, next to their replies, without reading every
stream. Keyed by the request's key: a stream stays in one partition, in order, and its
chunks are produced before its reply (one producer, produced in that order).

Chunks are not awaited (the reply is, and a lost chunk is a gap a reader sees by
`index`): a delta costs the answer no round trip. A request replayed after a crash
streams again from index 0 under a new `attempt`, so a reader can tell the two apart.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from dataclasses import dataclass, field

import orjson
from confluent_kafka import KafkaError

from chater_gpt.contracts import STREAM_HEADER, ChatRequest, Job
from chater_gpt.domain import ChatResult
from chater_gpt.errors import ChaterError
from chater_gpt.kafka.producer import ReplySink
from chater_gpt.replies import error_body, usage_of

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Stream:
    streams: KafkaStreams
    key: str
    targets: tuple[str, ...]
    headers: tuple[tuple[str, bytes], ...]
    attempt: str
    sent: int = 0
    text: list[str] = field(default_factory=list)

    async def delta(self, text: str) -> None:
        if text:
            self.publish({"delta": text})

    def publish(self, chunk: dict[str, object]) -> None:
        value = {"index": self.sent, "attempt": self.attempt, **chunk}
        self.sent += 1
        self.streams.send(self, orjson.dumps({"key": self.key, "value": value}))


class KafkaStreams:
    def __init__(self, topic: str | None) -> None:
        self._topic = topic or None
        self._sink: ReplySink | None = None
        self._open: dict[str, _Stream] = {}
        # Unique per process and processing: a replay elsewhere is another attempt.
        self._attempts = (f"{secrets.token_hex(4)}-{n}" for n in itertools.count(1))

    def attach(self, sink: ReplySink) -> None:
        """The producer, once the service has started it (it belongs to the loop)."""
        self._sink = sink

    def open(self, request: ChatRequest, job: Job) -> _Stream:
        stream = self._new(request, job)
        self._open[job.dedupe_id] = stream
        return stream

    def end(
        self, request: ChatRequest, job: Job, result: ChatResult | None, error: ChaterError | None
    ) -> None:
        stream = self._open.pop(job.dedupe_id, None) or self._new(request, job)
        if result is not None:
            if stream.sent == 0 and result.text:
                stream.publish({"delta": result.text})
            usage = usage_of(result)
            stream.publish({"done": True, "finish_reason": result.finish_reason, "usage": usage})
        elif error is not None:
            stream.publish({"done": True, "error": error_body(error)})

    def discard(self, job: Job) -> None:
        self._open.pop(job.dedupe_id, None)

    def _new(self, request: ChatRequest, job: Job) -> _Stream:
        targets = tuple(t for t in (self._topic, job.reply_to) if t)
        headers = (*job.headers, (STREAM_HEADER, b"1"))
        return _Stream(self, request.key, targets, headers, next(self._attempts))

    def send(self, stream: _Stream, value: bytes) -> None:
        if self._sink is None:
            return
        for topic in stream.targets:
            self._sink.send(topic, stream.key, value, stream.headers, _log_failure)


def _log_failure(error: KafkaError | None) -> None:
    if error is not None:
        log.warning("a stream chunk was not delivered: %s", error)
