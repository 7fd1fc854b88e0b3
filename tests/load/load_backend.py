"""A scripted provider backend shaped like a real provider, for load runs.

    python tests/load/load_backend.py --latency normal:0.2,0.05 --tokens-per-second 50 \
        --answer-tokens 32 --error-rate 0.01 --burst-429 30:2 --port-file /tmp/port
    python tests/load/load_backend.py --provider anthropic --latency fixed:0

It is one of the test suite's scripted servers (its own thread, no request recording)
in a process of its own, so its CPU never counts against the service: `ScriptedOpenAI`
(`--provider openai`, the default: `POST /v1/chat/completions`), `ScriptedAnthropic`
(`anthropic`: `POST /v1/messages`, and `/v1/messages/count_tokens`) or `ScriptedGemini`
(`gemini`: `POST /{version}/models/{model}:generateContent`, and `:countTokens`), each
answering with its provider's published bodies and error bodies. Latency is
`fixed:S`, `normal:MEAN,SD` (clipped at 0) or `longtail:MEDIAN[,SIGMA]` (log-normal),
plus `answer-tokens / tokens-per-second` of generation time. `--error-rate` answers
that share with HTTP 500; `--burst-429 PERIOD:LENGTH` answers 429 (with Retry-After)
for the first LENGTH seconds of every PERIOD (in the provider's error body). A request
that asks for JSON (OpenAI's `response_format`, Anthropic's `output_config.format`,
Gemini's `responseMimeType`, as the photo route sends) is answered with one JSON
object. An OpenAI request with `stream: true` is answered in OpenAI's streaming format
(`text/event-stream`: `data: {chat.completion.chunk}` frames, a usage chunk when
`stream_options.include_usage`, then `data: [DONE]`, as `ScriptedOpenAI` writes it):
the first chunks after the latency, then one word per chunk every `--stream-interval`
seconds. It serves until
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
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import orjson

from chater_gpt.domain import ResponseFormat
from chater_gpt.json_output import json_instruction
from tests.support import scripted_anthropic, scripted_gemini, scripted_openai
from tests.support.scripted_anthropic import ScriptedAnthropic
from tests.support.scripted_common import Fault
from tests.support.scripted_gemini import ScriptedGemini
from tests.support.scripted_openai import ScriptedOpenAI

Provider = Literal["openai", "anthropic", "gemini"]
PROVIDERS: tuple[Provider, ...] = get_args(Provider)
# The 429 body of the OpenAI backend; the other providers' servers write their own.
OPENAI_RATE_LIMITED = {"error": {"message": "rate limited (scripted)", "type": "requests"}}


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
    # None: the server's own error body for the status (its provider's).
    rate_limited_body: dict[str, Any] | None = field(
        default_factory=lambda: dict(OPENAI_RATE_LIMITED)
    )

    def fault(self, elapsed: float, draw: float) -> Fault | None:
        if self.bursts is not None and self.bursts.active(elapsed):
            wait = max(1, math.ceil(self.bursts.retry_after(elapsed)))
            return Fault(
                status=429, headers={"Retry-After": str(wait)}, body=self.rate_limited_body
            )
        if draw < self.error_rate:
            return Fault(status=500)
        return None


@dataclass(frozen=True)
class Dialect:
    """How a provider's request body says what the user wrote and whether it wants JSON."""

    user_text: Callable[[dict[str, Any]], str]
    wants_json: Callable[[dict[str, Any]], bool]


# The service asks Claude for JSON in the system prompt (`json_output.json_instruction`),
# and through `output_config.format` only for a strict JSON schema.
JSON_ASKED = json_instruction(ResponseFormat("json_object")).split(",")[0].rstrip(".")


def claude_wants_json(body: dict[str, Any]) -> bool:
    system = body.get("system")
    if isinstance(system, list):
        system = " ".join(b.get("text", "") for b in system if isinstance(b, dict))
    return scripted_anthropic.wants_json(body) or (isinstance(system, str) and JSON_ASKED in system)


DIALECTS: dict[Provider, Dialect] = {
    "openai": Dialect(scripted_openai.user_text, lambda body: bool(body.get("response_format"))),
    "anthropic": Dialect(scripted_anthropic.user_text, claude_wants_json),
    "gemini": Dialect(scripted_gemini.user_text, scripted_gemini.wants_json),
}


def padded_answer(
    answer_tokens: int, provider: Provider = "openai"
) -> Callable[[dict[str, Any]], str]:
    """The echo answer (so replies still match requests), padded to about
    `answer_tokens` completion tokens (the scripted servers count 4 characters each).

    A request that asks for JSON (in its provider's words, as the photo route does)
    gets one JSON object as text instead, padded the same way in a `note` field: the
    service rejects an answer that is not a JSON object."""
    dialect = DIALECTS[provider]

    def answer(body: dict[str, Any]) -> str:
        if dialect.wants_json(body):
            return json_answer(dialect.user_text(body), answer_tokens)
        text = f"echo: {dialect.user_text(body)}"
        missing = answer_tokens - len(text) // 4
        return text + " tok" * missing if missing > 0 else text

    return answer


def json_answer(echo: str, answer_tokens: int) -> str:
    """`{"type": "food_processing", "ok": true, "echo": ..., "note": "tok tok ..."}`."""
    value: dict[str, Any] = {"type": "food_processing", "ok": True, "echo": echo}
    missing = answer_tokens - len(orjson.dumps(value)) // 4 - 3  # 3: the note's own frame
    if missing > 0:
        value["note"] = " ".join(["tok"] * missing)
    return orjson.dumps(value).decode()


LoadServer = ScriptedOpenAI | ScriptedAnthropic | ScriptedGemini
SERVERS: dict[Provider, type[LoadServer]] = {
    "openai": ScriptedOpenAI,
    "anthropic": ScriptedAnthropic,
    "gemini": ScriptedGemini,
}


def build_server(args: argparse.Namespace) -> LoadServer:
    rng = random.Random(args.seed)
    base = parse_latency(args.latency, rng)
    generation = args.answer_tokens / args.tokens_per_second if args.tokens_per_second else 0.0
    plan = FaultPlan(
        error_rate=args.error_rate,
        bursts=Bursts.parse(args.burst_429) if args.burst_429 else None,
        rate_limited_body=OPENAI_RATE_LIMITED if args.provider == "openai" else None,
    )
    server = SERVERS[args.provider](
        latency=lambda: base() + generation,
        answer=padded_answer(args.answer_tokens, args.provider),
        record=False,  # long runs would keep every request in memory
    )
    if isinstance(server, ScriptedOpenAI):
        server.stream_interval = args.stream_interval
    started = time.monotonic()
    if plan.error_rate > 0 or plan.bursts is not None:
        server.fault_fn = lambda: plan.fault(time.monotonic() - started, rng.random())
    return server


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--provider", choices=PROVIDERS, default="openai", help="the API it speaks")
    parser.add_argument(
        "--latency", default="fixed:0.2", help="fixed:S | normal:M,SD | longtail:MEDIAN[,SIGMA]"
    )
    parser.add_argument(
        "--tokens-per-second", type=float, default=0.0, help="generation speed (0: instant)"
    )
    parser.add_argument(
        "--stream-interval",
        type=float,
        default=0.0,
        help="seconds between two words of a streamed answer (openai; 0: all at once)",
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
    if not 0 <= args.stream_interval < math.inf:
        parser.error("--stream-interval must be a finite number of seconds >= 0")
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
        print(f"load backend ({args.provider}) listening on {server.base_url}", flush=True)
        while not stop.wait(0.5):
            pass
        stats = {"calls": server.calls, "max_concurrent": server.max_concurrent}
    if args.stats_file is not None:
        args.stats_file.write_bytes(orjson.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
