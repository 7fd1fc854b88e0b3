"""Load test for chater-gpt: send requests to the request topic, read the replies from
the response topic, match them by key, and report what came back and how fast.

    python tests/load/load_test.py --concurrent=10 --requests=1000
    python tests/load/load_test.py --rate=100 --requests=3000 --payload=mixed --plot=run.png
    python tests/load/load_test.py --payload=photo-mixed --requests=2000 --backend-latency=fixed:0
    python tests/load/load_test.py --bootstrap=kafka:9093 --security-protocol=SASL_SSL \
        --sasl-mechanism=SCRAM-SHA-512 --sasl-username=u --sasl-password=p --requests=500

Without --bootstrap it starts the embedded stack itself (Tansu broker, the scripted
load backend, `python main.py run`) and tears it down afterwards. Closed loop
(default): --concurrent callers, each waiting for its reply before sending again.
Open loop: --rate requests per second whatever the replies do. Exit code 1 when a
request was lost (no reply within --timeout) or could not be sent.

`--payload=photo` sends photo analyses (a small JPEG) to the photo request topic
(`eater-send-photo`) and reads their replies from the photo response topic
(`photo-analysis-response`); `--payload=photo-mixed` sends every other request
there and the rest as chat text. A photo reply counts as an answer when it carries
`analysis`, as an error otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import argparse
import dataclasses
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from rich.console import Console

from tests.load._payloads import PAYLOADS, Payload, RequestFactory, uses_photos
from tests.load._report import RichProgress, plot, print_result, run_json
from tests.load._stats import LoadResult, Sample
from tests.load._target import KafkaTarget

# Replies are read from this long before the run started, so clock skew between this
# machine and the brokers never hides one (ours are told apart by their keys).
REPLY_LOOKBACK_MS = 30_000
PROGRESS_EVERY = 0.1


@dataclass(frozen=True)
class LoadSpec:
    requests: int = 1000
    concurrent: int = 10
    rate: float | None = None  # requests/s: open loop when set
    users: int = 100
    payload: Payload = "text"
    photo_size: tuple[int, int] = (64, 48)  # the photo payloads' JPEG, width x height
    timeout: float = 60.0
    settle: float = 1.0  # keep reading after the run, to count duplicates
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    @property
    def mode(self) -> str:
        return f"open loop {self.rate:g}/s" if self.rate else f"closed loop x{self.concurrent}"


class ProgressSink(Protocol):
    def update(self, *, sent: int, answered: int, lost: int, in_flight: int) -> None: ...


Watchdog = Callable[[], None]  # raises to abort the run (e.g. the service died)


def reply_consumer(target: KafkaTarget, since_ms: int, group: str, *, photos: bool = False) -> Any:
    """A consumer assigned (no group join) to every partition of the response topic
    (and of the photo response topic with `photos`), from the first reply written
    since `since_ms`. Offsets by time, not "latest": Tansu's latest offsets are wrong,
    and a time that is past the end of a partition simply yields its beginning there."""
    consumer = Consumer(
        target.config(
            {
                "group.id": group,
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 2,  # replies are timed when they arrive
                "enable.partition.eof": False,
            }
        )
    )
    wanted = []
    for topic in target.response_topics(photos):
        metadata = consumer.list_topics(topic, timeout=15).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            consumer.close()
            raise RuntimeError(f"response topic {topic!r} not found")
        wanted += [TopicPartition(topic, p, since_ms) for p in sorted(metadata.partitions)]
    positions = consumer.offsets_for_times(wanted, timeout=15)
    for tp in positions:
        if tp.offset < 0:  # real Kafka: nothing since then, start at the end
            _, tp.offset = consumer.get_watermark_offsets(tp, timeout=15, cached=False)
    consumer.assign(positions)
    return consumer


def _error_code(value: bytes | None) -> str | None:
    if not value or b'"error"' not in value:  # most replies: skip the parse
        return None
    try:
        reply = orjson.loads(value)
        error = reply.get("value", reply).get("error")
        return str(error.get("code", "unknown")) if isinstance(error, dict) else None
    except (orjson.JSONDecodeError, AttributeError):
        return "unreadable_reply"


def _photo_error_code(value: bytes | None) -> str | None:
    """A photo reply is an answer when its value has `analysis` (text); otherwise the
    code of its `error`, or `no_analysis` when it has neither."""
    try:
        reply = orjson.loads(value or b"")
        body = reply.get("value", reply)
        if isinstance(body.get("analysis"), str):
            return None
        error = body.get("error")
        return str(error.get("code", "unknown")) if isinstance(error, dict) else "no_analysis"
    except (orjson.JSONDecodeError, AttributeError):
        return "unreadable_reply"


class LoadClients:
    """The producer and the reply consumer, created once and shared by the warm-up and
    the runs after it, so a measured run never pays for client start-up (the
    idempotent producer's first send waits ~0.5 s for its producer id)."""

    def __init__(self, target: KafkaTarget, *, photos: bool = False) -> None:
        self.target = target
        self.photos = photos  # the reply consumer reads the photo response topic too
        since = int(time.time() * 1000) - REPLY_LOOKBACK_MS
        group = f"load-test-{uuid.uuid4().hex[:10]}"
        self.consumer = reply_consumer(target, since, group, photos=photos)
        self.producer = Producer(
            target.config({"enable.idempotence": True, "linger.ms": 1, "acks": "all"})
        )

    def close(self) -> None:
        self.producer.flush(10)
        self.consumer.close()

    def __enter__(self) -> LoadClients:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LoadRun:
    """One run: a single thread sends, polls delivery reports, reads replies and expires
    requests in one loop, so no lock is needed and reply times are taken on arrival."""

    def __init__(
        self,
        clients: LoadClients,
        spec: LoadSpec,
        *,
        progress: ProgressSink | None = None,
        watchdog: Watchdog | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._target, self._spec, self._clock = clients.target, spec, clock
        self._producer, self._consumer = clients.producer, clients.consumer
        self._progress, self._watchdog = progress, watchdog
        if uses_photos(spec.payload) and not clients.photos:
            raise ValueError(f"payload {spec.payload!r} needs LoadClients(..., photos=True)")
        self._factory = RequestFactory(spec.run_id, spec.payload, spec.users, spec.photo_size)
        self._photo_replies = clients.target.photo_response_topic
        self._prefix = self._factory.key_prefix.encode()
        self.result = LoadResult(requested=spec.requests)
        self._pending: dict[bytes, float] = {}  # key -> send time, in send order
        self._answered: set[bytes] = set()
        self._lost: set[bytes] = set()
        self._next = 0
        self._t0 = 0.0
        self._last_reply = 0.0

    def run(self) -> LoadResult:
        try:
            self._t0 = self._last_reply = self._clock()
            last_progress = 0.0
            while self._next < self._spec.requests or self._pending:
                now = self._clock()
                self._send_due(now)
                self._receive(self._wait_budget(now))
                self._expire(self._clock())
                if now - last_progress >= PROGRESS_EVERY:
                    last_progress = now
                    self._report_progress()
                    if self._watchdog is not None:
                        self._watchdog()
            self.result.elapsed = max(0.0, self._last_reply - self._t0)
            settle_until = self._clock() + self._spec.settle
            while self._clock() < settle_until:
                self._receive(0.05)
            self._report_progress()
        finally:
            self._producer.flush(10)  # every delivery report counted
        return self.result

    # --- sending ---------------------------------------------------------------

    def _due(self, now: float) -> int:
        """How many requests should have been sent by now."""
        spec = self._spec
        if spec.rate:
            return min(spec.requests, int((now - self._t0) * spec.rate) + 1)
        return min(spec.requests, self._next + spec.concurrent - len(self._pending))

    def _send_due(self, now: float) -> None:
        for _ in range(self._next, self._due(now)):
            self._send(self._next)
            self._next += 1
        self._producer.poll(0)

    def _send(self, index: int) -> None:
        key, value = self._factory.build(index)
        photo = self._factory.is_photo(index)
        topic = self._target.photo_request_topic if photo else self._target.request_topic
        while True:
            try:
                self._pending[key] = self._clock()
                self._producer.produce(topic, key=key, value=value, on_delivery=self._delivered)
                return
            except BufferError:  # the local queue is full: let it drain
                self._producer.poll(0.05)

    def _delivered(self, err: KafkaError | None, message: Any) -> None:
        if err is None:
            self.result.sent += 1
            return
        self.result.send_failed += 1
        self._pending.pop(message.key(), None)

    def _wait_budget(self, now: float) -> float:
        """How long the next read may block: until the next open-loop send is due."""
        spec = self._spec
        if spec.rate and self._next < spec.requests:
            return max(0.0, min(0.05, self._t0 + self._next / spec.rate - now))
        return 0.05

    # --- receiving ---------------------------------------------------------------

    def _receive(self, wait: float) -> None:
        # poll() returns on the first message (consume() would wait for a full batch
        # or the whole timeout), then consume(…, 0) takes whatever else is queued.
        first = self._consumer.poll(wait)
        if first is None:
            return
        now = self._clock()
        for message in [first, *self._consumer.consume(1000, 0)]:
            if message.error() is None:
                photo = message.topic() == self._photo_replies
                self._on_reply(message.key(), message.value(), now, photo=photo)

    def _on_reply(
        self, key: bytes | None, value: bytes | None, now: float, *, photo: bool = False
    ) -> None:
        if not key or not key.startswith(self._prefix):
            return  # another run's reply
        sent_at = self._pending.pop(key, None)
        if sent_at is not None:
            self._answered.add(key)
            self.result.answered += 1
            code = _photo_error_code(value) if photo else _error_code(value)
            if code is not None:
                self.result.record_error(code)
            self.result.samples.append(Sample(sent_at - self._t0, now - sent_at, code))
            self._last_reply = now
        elif key in self._answered:
            self.result.duplicates += 1
        elif key in self._lost:
            self._lost.discard(key)
            self._answered.add(key)
            self.result.late += 1

    def _expire(self, now: float) -> None:
        deadline = now - self._spec.timeout
        expired = []
        for key, sent_at in self._pending.items():  # in send order: stop at the first young one
            if sent_at > deadline:
                break
            expired.append(key)
        for key in expired:
            del self._pending[key]
            self._lost.add(key)
        self.result.lost += len(expired)

    def _report_progress(self) -> None:
        if self._progress is not None:
            self._progress.update(
                sent=self._next,
                answered=self.result.answered,
                lost=self.result.lost,
                in_flight=len(self._pending),
            )


def run_load(
    clients: LoadClients,
    spec: LoadSpec,
    *,
    progress: ProgressSink | None = None,
    watchdog: Watchdog | None = None,
) -> LoadResult:
    return LoadRun(clients, spec, progress=progress, watchdog=watchdog).run()


def warm_up(clients: LoadClients, timeout: float, watchdog: Watchdog | None = None) -> float:
    """One request, waited for: the service has joined its group and answers, and the
    clients are connected. Returns the seconds it took; TimeoutError when unanswered."""
    started = time.monotonic()
    spec = LoadSpec(requests=1, concurrent=1, users=1, timeout=timeout, settle=0.0)
    result = run_load(clients, spec, watchdog=watchdog)
    if result.answered != 1:
        raise TimeoutError(f"no reply to the warm-up request within {timeout:g} s")
    return time.monotonic() - started


# --- command line -----------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    load = parser.add_argument_group("load")
    load.add_argument("--requests", type=int, default=1000)
    load.add_argument("--concurrent", type=int, default=10, help="closed-loop callers")
    load.add_argument("--rate", type=float, default=None, help="open loop: requests per second")
    load.add_argument("--users", type=int, default=100, help="distinct conversations (user_email)")
    load.add_argument("--payload", choices=PAYLOADS, default="text")
    load.add_argument(
        "--photo-size",
        default="64x48",
        metavar="WxH",
        help="the photo payloads' JPEG size in pixels (default 64x48, ~1 KB)",
    )
    load.add_argument(
        "--timeout", type=float, default=60.0, help="seconds before a request is lost"
    )
    load.add_argument("--settle", type=float, default=1.0, help="seconds to watch for duplicates")
    load.add_argument("--warmup-timeout", type=float, default=60.0)
    load.add_argument("--no-warmup", action="store_true", help="skip the warm-up request")
    out = parser.add_argument_group("output")
    out.add_argument("--json", type=Path, help="write the results as JSON here")
    out.add_argument("--plot", type=Path, help="write a PNG plot here")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    kafka = parser.add_argument_group("an existing deployment")
    kafka.add_argument("--bootstrap", help="Kafka bootstrap servers (else: the embedded stack)")
    kafka.add_argument("--request-topic", default="gpt-send")
    kafka.add_argument("--response-topic", default="gpt-response")
    kafka.add_argument("--photo-request-topic", default="eater-send-photo")
    kafka.add_argument("--photo-response-topic", default="photo-analysis-response")
    kafka.add_argument(
        "--security-protocol", choices=["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
    )
    kafka.add_argument("--sasl-mechanism")
    kafka.add_argument("--sasl-username")
    kafka.add_argument("--sasl-password")
    kafka.add_argument("--ssl-ca-location")
    kafka.add_argument(
        "--kafka-config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other librdkafka property (repeatable)",
    )
    embedded = parser.add_argument_group("the embedded stack (without --bootstrap)")
    embedded.add_argument("--backend-latency", default="fixed:0.2", help="see load_backend.py")
    embedded.add_argument("--backend-error-rate", type=float, default=0.0)
    embedded.add_argument("--backend-burst-429", default=None, metavar="PERIOD:LENGTH")
    embedded.add_argument("--backend-tokens-per-second", type=float, default=0.0)
    embedded.add_argument("--max-in-flight", type=int, default=256)
    embedded.add_argument("--partitions", type=int, default=3)
    embedded.add_argument(
        "--service-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other service setting, e.g. max_retries=0 (repeatable)",
    )
    embedded.add_argument("--workdir", type=Path, help="keep the stack's logs here")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrent < 1 or args.users < 1:
        parser.error("--requests, --concurrent and --users must be at least 1")
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be positive")
    for pair in [*args.kafka_config, *args.service_setting]:
        if "=" not in pair:
            parser.error(f"expected NAME=VALUE, not {pair!r}")
    try:
        args.photo_size = parse_size(args.photo_size)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def parse_size(text: str) -> tuple[int, int]:
    """`640x480` → (640, 480)."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"expected WIDTHxHEIGHT, not {text!r}") from None
    if not (0 < width <= 8192 and 0 < height <= 8192):
        raise ValueError(f"photo size {text!r}: each side must be within 1..8192")
    return width, height


def target_from_args(args: argparse.Namespace) -> KafkaTarget:
    config = dict(pair.split("=", 1) for pair in args.kafka_config)
    named = {
        "security.protocol": args.security_protocol,
        "sasl.mechanism": args.sasl_mechanism,
        "sasl.username": args.sasl_username,
        "sasl.password": args.sasl_password,
        "ssl.ca.location": args.ssl_ca_location,
    }
    config.update({k: v for k, v in named.items() if v is not None})
    return KafkaTarget(
        args.bootstrap,
        args.request_topic,
        args.response_topic,
        config,
        photo_request_topic=args.photo_request_topic,
        photo_response_topic=args.photo_response_topic,
    )


def spec_from_args(args: argparse.Namespace) -> LoadSpec:
    return LoadSpec(
        requests=args.requests,
        concurrent=args.concurrent,
        rate=args.rate,
        users=args.users,
        payload=args.payload,
        photo_size=args.photo_size,
        timeout=args.timeout,
        settle=args.settle,
    )


def measure(
    target: KafkaTarget,
    spec: LoadSpec,
    args: argparse.Namespace,
    console: Console,
    watchdog: Watchdog | None = None,
) -> LoadResult:
    with LoadClients(target, photos=uses_photos(spec.payload)) as clients:
        if not args.no_warmup:
            took = warm_up(clients, args.warmup_timeout, watchdog)
            console.print(f"warm-up answered in {took:.1f} s", style="dim")
        if args.quiet:
            return run_load(clients, spec, watchdog=watchdog)
        with RichProgress(spec.requests) as progress:
            return run_load(clients, spec, progress=progress, watchdog=watchdog)


def main(argv: list[str] | None = None) -> int:
    from tests.load._stack import BackendShape, EmbeddedStack

    args = parse_args(argv)
    console = Console(stderr=True)
    spec = spec_from_args(args)
    extra: dict[str, Any] = {}
    if args.bootstrap:
        target = target_from_args(args)
        result = measure(target, spec, args, console)
        extra["target"] = {"bootstrap": target.bootstrap, "request_topic": target.request_topic}
        if uses_photos(spec.payload):
            extra["target"]["photo_request_topic"] = target.photo_request_topic
    else:
        shape = BackendShape(
            latency=args.backend_latency,
            tokens_per_second=args.backend_tokens_per_second,
            error_rate=args.backend_error_rate,
            burst_429=args.backend_burst_429,
        )
        overrides: dict[str, Any] = {"max_in_flight": args.max_in_flight}
        overrides.update(pair.split("=", 1) for pair in args.service_setting)
        console.print(
            "starting the embedded stack (broker, load backend, service) ...", style="dim"
        )
        with EmbeddedStack(
            backend=shape, settings=overrides, partitions=args.partitions, workdir=args.workdir
        ) as stack:
            result = measure(stack.target, spec, args, console, stack.check_alive)
        extra["embedded"] = {
            "backend": dataclasses.asdict(shape),
            "service_settings": overrides,
            "backend_stats": stack.backend_stats,
            "logs": str(stack.workdir),
        }
    title = f"chater-gpt load test ({spec.mode}, {spec.payload}, {spec.users} users)"
    print_result(Console(), result, title)
    spec_json = {**dataclasses.asdict(spec), "mode": spec.mode}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(run_json(spec_json, result, extra), indent=2) + "\n")
    if args.plot:
        plot(result, args.plot, title)
    if not result.clean:
        console.print(f"[bold red]{result.lost} lost, {result.send_failed} not sent[/]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
