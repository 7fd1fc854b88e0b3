"""The pipeline commits only what the broker acknowledged, in contiguous order, and
bounds the work it takes; no broker needed (messages and deliveries are scripted)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import orjson
from confluent_kafka import KafkaError

from chater_gpt.contracts import ChatRequest, Job, RequestDefaults
from chater_gpt.decoder import RequestDecoder
from chater_gpt.domain import PauseReason
from chater_gpt.images import ImageLimits
from chater_gpt.kafka.pipeline import PauseGate, Pipeline, PipelineConfig, RouteEndpoint
from chater_gpt.kafka.producer import DeliveryCallback, Headers
from chater_gpt.routes import Route

TOPIC = "gpt-send"
TP = (TOPIC, 0)
CHAT = Route("chat", TOPIC, "gpt-response")


@dataclass
class FakeMessage:
    _offset: int
    _key: bytes | None
    _value: bytes | None
    _partition: int = 0
    _headers: list[tuple[str, bytes]] = field(default_factory=list)

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000)


class ManualSink:
    """Records sends; the test decides when (and whether) the broker acknowledges."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, Headers, DeliveryCallback]] = []
        self.topics: list[str] = []
        self.changed = asyncio.Event()

    def send(
        self, topic: str, key: str, value: bytes, headers: Headers, on_delivery: DeliveryCallback
    ) -> None:
        self.sent.append((key, value, headers, on_delivery))
        self.topics.append(topic)
        self.changed.set()

    def ack(self, index: int, err: KafkaError | None = None) -> None:
        self.sent[index][3](err)


class EchoProcessor:
    def __init__(self) -> None:
        self.gates: dict[str, asyncio.Event] = {}
        self.started: list[str] = []

    async def process(self, job: Job) -> bytes:
        request = job.request
        assert request.key is not None
        self.started.append(request.key)
        gate = self.gates.get(request.key)
        if gate is not None:
            await gate.wait()
        message = request.message if isinstance(request, ChatRequest) else "error"
        return orjson.dumps({"key": request.key, "value": {"response": message}})


DEFAULTS = RequestDefaults(
    model="m",
    vision_model="m",
    allowed_models=frozenset({"m"}),
    max_tokens=10,
    max_tokens_cap=10,
    temperature=0,
    max_payload_bytes=10_000,
    max_message_chars=1000,
    images=ImageLimits(1, 1000, 1000),
)


def make_pipeline(
    max_in_flight: int = 10, max_queued: int = 0, reply_to_prefix: str = ""
) -> tuple[Pipeline, ManualSink, EchoProcessor]:
    sink, processor = ManualSink(), EchoProcessor()
    pipeline = Pipeline(
        routes=[RouteEndpoint("chat", RequestDecoder(DEFAULTS, CHAT), "gpt-response")],
        processor=processor,
        sink=sink,
        config=PipelineConfig(
            max_in_flight=max_in_flight,
            revoke_grace_seconds=1.0,
            max_queued=max_queued,
            reply_to_prefix=reply_to_prefix,
        ),
        gate=PauseGate(),
    )
    return pipeline, sink, processor


def chat(offset: int, key: str, message: str = "hi", partition: int = 0) -> FakeMessage:
    return FakeMessage(offset, key.encode(), orjson.dumps({"message": message}), partition)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_offsets_commit_only_after_acknowledged_replies_in_order() -> None:
    pipeline, sink, _ = make_pipeline()
    await pipeline.assigned([TP])
    await pipeline.accept([chat(0, "a"), chat(1, "b"), chat(2, "c")])
    await settle()
    assert len(sink.sent) == 3
    assert pipeline.take_commits() == []  # nothing acknowledged yet
    sink.ack(2)
    sink.ack(1)
    assert pipeline.take_commits() == []  # offset 0 still unacknowledged
    sink.ack(0)
    assert pipeline.take_commits() == [(TP, 3)]


async def test_failed_delivery_is_retried_and_never_committed_until_acked() -> None:
    pipeline, sink, _ = make_pipeline()
    await pipeline.assigned([TP])
    await pipeline.accept([chat(0, "a")])
    await settle()
    sink.ack(0, KafkaError(KafkaError._MSG_TIMED_OUT))
    assert pipeline.take_commits() == []
    sink.changed.clear()
    await asyncio.wait_for(sink.changed.wait(), 10)  # the retry is scheduled, not dropped
    assert sink.sent[1][1] == sink.sent[0][1]
    sink.ack(1)
    assert pipeline.take_commits() == [(TP, 1)]


async def test_capacity_counts_unacknowledged_work_and_the_gate() -> None:
    pipeline, sink, _ = make_pipeline(max_in_flight=2)
    await pipeline.assigned([TP])
    assert pipeline.capacity() == 2
    await pipeline.accept([chat(0, "a"), chat(1, "b")])
    assert pipeline.capacity() == 0
    assert "capacity" in pipeline.pause_reasons
    await settle()
    sink.ack(0)
    assert pipeline.capacity() == 1
    gate = PauseGate()
    paused, _, _ = make_pipeline()
    paused._gate = gate
    gate.pause(PauseReason.BREAKER)
    assert paused.capacity() == 0
    gate.resume(PauseReason.BREAKER)
    assert paused.capacity() == 10


async def test_one_conversation_is_answered_in_order_others_in_parallel() -> None:
    pipeline, sink, processor = make_pipeline()
    await pipeline.assigned([TP])
    processor.gates["a"] = asyncio.Event()
    await pipeline.accept([chat(0, "a", "first"), chat(1, "a", "second"), chat(2, "b", "other")])
    await settle()
    assert processor.started == ["a", "b"]  # the second "a" waits for the first
    processor.gates["a"].set()
    await settle()
    replies = [orjson.loads(value)["value"]["response"] for _, value, _, _ in sink.sent]
    assert replies == ["other", "first", "second"]


async def test_keyless_garbage_is_finished_without_a_reply() -> None:
    pipeline, sink, _ = make_pipeline()
    await pipeline.assigned([TP])
    await pipeline.accept([FakeMessage(0, None, b"\xff garbage")])
    await settle()
    assert sink.sent == []
    assert pipeline.take_commits() == [(TP, 1)]


async def test_trace_headers_are_propagated_and_used_as_correlation_id() -> None:
    pipeline, sink, _processor = make_pipeline()
    await pipeline.assigned([TP])
    message = chat(0, "a")
    message._headers = [("traceparent", b"00-abc-def-01"), ("unrelated", b"x")]
    await pipeline.accept([message])
    await settle()
    assert list(sink.sent[0][2]) == [("traceparent", b"00-abc-def-01")]


async def test_revocation_waits_for_started_work_then_offers_its_commit() -> None:
    pipeline, sink, processor = make_pipeline()
    await pipeline.assigned([TP])
    processor.gates["a"] = asyncio.Event()
    await pipeline.accept([chat(0, "a"), chat(1, "a")])
    await settle()

    async def finish_first() -> None:
        processor.gates["a"].set()
        await settle()
        sink.ack(0)

    finisher = asyncio.create_task(finish_first())
    positions = await pipeline.revoked([TP])
    await finisher
    assert positions == [(TP, 1)]
    # The queued second message was abandoned: its new owner will replay it.
    await settle()
    assert len(sink.sent) == 1
    assert pipeline.tracker.unfinished == 0


async def test_work_queued_before_a_loss_is_dropped_when_the_partition_returns() -> None:
    # The group session timed out (partitions lost) and the same partition came back:
    # the consumer replays from the last commit, so the old queue must not run as well.
    pipeline, sink, processor = make_pipeline()
    await pipeline.assigned([TP])
    processor.gates["a"] = asyncio.Event()
    await pipeline.accept([chat(0, "a", "first"), chat(1, "a", "second")])
    await settle()
    await pipeline.lost([TP])
    await pipeline.assigned([TP])
    await pipeline.accept([chat(0, "b", "replayed")])
    processor.gates["a"].set()
    await settle()
    # The started "first" still answers (its outcome is recorded), but "second" never
    # starts, and the old reply's acknowledgement does not finish the replay's offset 0.
    assert processor.started == ["a", "b"]
    assert sorted(key for key, *_ in sink.sent) == ["a", "b"]
    old, replay = sorted(range(2), key=lambda index: sink.sent[index][0])
    sink.ack(old)
    assert pipeline.take_commits() == []
    assert pipeline.tracker.unfinished == 1
    sink.ack(replay)
    assert pipeline.take_commits() == [(TP, 1)]
    assert pipeline.tracker.unfinished == 0


async def test_a_failed_delivery_is_not_resent_once_the_partition_is_gone() -> None:
    pipeline, sink, _ = make_pipeline()
    await pipeline.assigned([TP])
    await pipeline.accept([chat(0, "a")])
    await settle()
    await pipeline.lost([TP])
    sink.ack(0, KafkaError(KafkaError._MSG_TIMED_OUT))
    await asyncio.sleep(1.2)  # past the first retry's back-off (1 s): nothing is resent
    assert len(sink.sent) == 1


async def test_queued_messages_wait_for_a_slot_and_the_queue_defers_the_pause() -> None:
    # 2 slots + 2 queued: four are taken (no pause, whose resume costs ~1 s), but
    # only two are processed at once; a slot frees when its reply is handed over.
    pipeline, sink, processor = make_pipeline(max_in_flight=2, max_queued=2)
    await pipeline.assigned([TP])
    for key in "abcd":
        processor.gates[key] = asyncio.Event()
    await pipeline.accept([chat(i, key) for i, key in enumerate("abcd")])
    await settle()
    assert processor.started == ["a", "b"]
    assert pipeline.capacity() == 0
    assert "capacity" in pipeline.pause_reasons
    processor.gates["a"].set()
    await settle()
    assert processor.started == ["a", "b", "c"]  # before the broker acknowledged "a"
    assert pipeline.capacity() == 0  # "a" is unfinished until its reply is acked
    sink.ack(0)
    assert pipeline.capacity() == 1
    assert not pipeline.pause_reasons


def with_headers(message: FakeMessage, *headers: tuple[str, bytes]) -> FakeMessage:
    message._headers = list(headers)
    return message


async def test_a_reply_address_under_the_gateway_prefix_receives_the_reply() -> None:
    pipeline, sink, _ = make_pipeline(reply_to_prefix="gw-reply-")
    await pipeline.assigned([TP])
    await pipeline.accept(
        [
            with_headers(chat(0, "a"), ("reply-to", b"gw-reply-one"), ("correlation-id", b"c1")),
            with_headers(chat(1, "b"), ("reply-to", b"gpt-send")),  # outside the prefix
            with_headers(chat(2, "c"), ("reply-to", b"gw-reply-")),  # the bare prefix
            chat(3, "d"),
        ]
    )
    await settle()
    assert sink.topics == ["gw-reply-one", "gpt-response", "gpt-response", "gpt-response"]
    # The correlation id travels back on the reply; the address does not.
    assert list(sink.sent[0][2]) == [("correlation-id", b"c1")]
    assert list(sink.sent[1][2]) == []


async def test_without_a_prefix_no_reply_address_is_honoured() -> None:
    pipeline, sink, _ = make_pipeline()
    await pipeline.assigned([TP])
    await pipeline.accept([with_headers(chat(0, "a"), ("reply-to", b"gpt-gateway-reply-x"))])
    await settle()
    assert sink.topics == ["gpt-response"]


async def test_a_failed_delivery_to_a_gateway_address_is_given_up_and_committed() -> None:
    # The gateway is gone (its topic too): retrying for ever would hold the partition's
    # commits back; the outcome is recorded, so a retried request is answered from it.
    pipeline, sink, _ = make_pipeline(reply_to_prefix="gw-")
    await pipeline.assigned([TP])
    await pipeline.accept([with_headers(chat(0, "a"), ("reply-to", b"gw-gone"))])
    await settle()
    sink.ack(0, KafkaError(KafkaError._UNKNOWN_TOPIC))
    assert pipeline.take_commits() == [(TP, 1)]
    assert pipeline.tracker.unfinished == 0
