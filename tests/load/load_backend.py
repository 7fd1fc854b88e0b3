"""A scripted OpenAI-compatible backend shaped like a real provider, for load runs.

    python tests/load/load_backend.py --latency normal:0.2,0.05 --tokens-per-second 50 \
        --answer-tokens 32 --error-rate 0.01 --burst-429 30:2 --port-file /tmp/port

It is the test suite's `ScriptedOpenAI` (its own thread, no request recording) in a
process of its own, so its CPU never counts against the service. Latency is
`fixed:S`, `normal:MEAN,SD` (clipped at 0) or `longtail:MEDIAN[,SIGMA]` (log-normal),
plus `answer-tokens / tokens-per-second` of generation time. `--error-rate` answers
that share with HTTP 500; `--burst-429 PERIOD:LENGTH` answers 429 (with Retry-After)
for the first LENGTH seconds of every PERIOD. A request with `response_format` (JSON
mode, as the photo route sends) is answered with one JSON object. It serves until
SIGTERM/SIGINT, then writes its call count and peak concurrency to `--stats-file`.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import argparse
import math
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from tests.support.scripted_openai import Fault, ScriptedOpenAI, echo_answer, user_text


def parse_latency(spec: str, rng: random.Random) -> Callable[[], float]:
    """`fixed:0.2`, `normal:0.2,0.05` or `longtail:0.2[,0.8]` → a sampler of seconds."""
    kind, _, raw = spec.partition(":")
    try:
        numbers = [float(part) for part in raw.split(",")] if raw else []
    except ValueError:
        raise ValueError(f"latency {spec!r}: parameters must be numbers") from None
    if any(n < 0 or not math.isfinite(n) for n in numbers):
        raise ValueError(f"latency {spec!r}: parameters must be finite and >= 0")
    if kind == "fixed" and len(numbers) == 1:
        value = numbers[0]
        return lambda: value
    if kind == "normal" and len(numbers) == 2:
        mean, sd = numbers
        return lambda: max(0.0, rng.gauss(mean, sd))
    if kind == "longtail" and len(numbers) in (1, 2):
        median, sigma = numbers[0], (numbers[1] if len(numbers) == 2 else 0.8)
        if median <= 0:
            raise ValueError(f"latency {spec!r}: the median must be > 0")
        mu = math.log(median)
        return lambda: rng.lognormvariate(mu, sigma)
    raise ValueError(
        f"latency {spec!r}: expected fixed:S, normal:MEAN,SD or longtail:MEDIAN[,SIGMA]"
    )


@dataclass(frozen=True)
class Bursts:
    """429 for the first `length` seconds of every `period` seconds."""

    period: float
    length: float

    @classmethod
    def parse(cls, spec: str) -> Bursts:
        try:
            period, length = (float(part) for part in spec.split(":"))
        except ValueError:
            raise ValueError(f"burst {spec!r}: expected PERIOD:LENGTH in seconds") from None
        if not 0 < length <= period:
            raise ValueError(f"burst {spec!r}: need 0 < LENGTH <= PERIOD")
        return cls(period, length)

    def active(self, elapsed: float) -> bool:
        return elapsed % self.period < self.length

    def retry_after(self, elapsed: float) -> float:
        """Seconds until the burst in progress ends."""
        return max(0.0, self.length - elapsed % self.period)


@dataclass(frozen=True)
class FaultPlan:
    """Which requests fail: a 429 burst in progress first, else a random share of 500s."""

    error_rate: float = 0.0
    bursts: Bursts | None = None

    def fault(self, elapsed: float, draw: float) -> Fault | None:
        if self.bursts is not None and self.bursts.active(elapsed):
            wait = max(1, math.ceil(self.bursts.retry_after(elapsed)))
            return Fault(
                status=429,
                headers={"Retry-After": str(wait)},
                body={"error": {"message": "rate limited (scripted)", "type": "requests"}},
            )
        if draw < self.error_rate:
            return Fault(status=500)
        return None


def padded_answer(answer_tokens: int) -> Callable[[dict[str, Any]], str]:
    """The echo answer (so replies still match requests), padded to about
    `answer_tokens` completion tokens (the scripted server counts 4 characters each).

    A request that asks for JSON (`response_format` in the body, as the photo route
    does) gets one JSON object as text instead, padded the same way in a `note`
    field: the service rejects an answer that is not a JSON object."""

    def answer(body: dict[str, Any]) -> str:
        if body.get("response_format"):
            return json_answer(body, answer_tokens)
        text = echo_answer(body)
        missing = answer_tokens - len(text) // 4
        return text + " tok" * missing if missing > 0 else text

    return answer


def json_answer(body: dict[str, Any], answer_tokens: int) -> str:
    """`{"type": "food_processing", "ok": true, "echo": ..., "note": "tok tok ..."}`."""
    value: dict[str, Any] = {"type": "food_processing", "ok": True, "echo": user_text(body)}
    missing = answer_tokens - len(orjson.dumps(value)) // 4 - 3  # 3: the note's own frame
    if missing > 0:
        value["note"] = " ".join(["tok"] * missing)
    return orjson.dumps(value).decode()


def build_server(args: argparse.Namespace) -> ScriptedOpenAI:
    rng = random.Random(args.seed)
    base = parse_latency(args.latency, rng)
    generation = args.answer_tokens / args.tokens_per_second if args.tokens_per_second else 0.0
    plan = FaultPlan(
        error_rate=args.error_rate,
        bursts=Bursts.parse(args.burst_429) if args.burst_429 else None,
    )
    server = ScriptedOpenAI(
        latency=lambda: base() + generation,
        answer=padded_answer(args.answer_tokens),
        record=False,  # long runs would keep every request in memory
    )
    started = time.monotonic()
    if plan.error_rate > 0 or plan.bursts is not None:
        server.fault_fn = lambda: plan.fault(time.monotonic() - started, rng.random())
    return server


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--latency", default="fixed:0.2", help="fixed:S | normal:M,SD | longtail:MEDIAN[,SIGMA]"
    )
    parser.add_argument(
        "--tokens-per-second", type=float, default=0.0, help="generation speed (0: instant)"
    )
    parser.add_argument(
        "--answer-tokens", type=int, default=32, help="completion tokens per answer"
    )
    parser.add_argument(
        "--error-rate", type=float, default=0.0, help="share of requests answered 500"
    )
    parser.add_argument("--burst-429", default=None, metavar="PERIOD:LENGTH", help="429 bursts")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--port-file", type=Path, help="write the bound port here when ready")
    parser.add_argument("--stats-file", type=Path, help="write call counts here on exit")
    args = parser.parse_args(argv)
    if not 0 <= args.error_rate <= 1:
        parser.error("--error-rate must be within 0..1")
    try:
        parse_latency(args.latency, random.Random())
        if args.burst_429:
            Bursts.parse(args.burst_429)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with build_server(args) as server:
        if args.port_file is not None:
            # Write then rename, so a reader never sees a half-written port.
            partial = args.port_file.with_suffix(".partial")
            partial.write_text(str(server.port))
            partial.replace(args.port_file)
        print(f"load backend listening on {server.base_url}", flush=True)
        while not stop.wait(0.5):
            pass
        stats = {"calls": server.calls, "max_concurrent": server.max_concurrent}
    if args.stats_file is not None:
        args.stats_file.write_bytes(orjson.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
