"""What each provider's SDK costs per call against a plain HTTP client (issue 13).

    python tests/load/sdk_overhead.py                          # every provider, 2,000 calls
    python tests/load/sdk_overhead.py --provider anthropic --calls 5000 --rounds 7
    python tests/load/sdk_overhead.py --json bench-results/sdk-overhead.json

In one process, against a zero-latency server in a child process (tests/load/load_backend.py
with `--provider`, so the server's CPU is never counted), it makes `--calls` calls with
each client and reads this process's CPU (`time.process_time()`, all threads) around them:

- openai: `sdk` is the service's `OpenAIBackend` (the SDK's low-level `post` on its
  aiohttp transport, OPENAI_CLIENT=sdk); `aiohttp` is `OpenAIDirectBackend`
  (OPENAI_CLIENT=aiohttp). Both are the service's own backends: the reference pair.
- anthropic: `sdk` is the service's `AnthropicBackend` (the SDK's low-level `post` on its
  aiohttp transport, ANTHROPIC_CLIENT=sdk); `aiohttp` is `AnthropicDirectBackend`
  (ANTHROPIC_CLIENT=aiohttp).
- gemini: `sdk` is the service's `GeminiBackend` (`client.aio.models.generate_content`
  over the backend's own aiohttp session, GEMINI_CLIENT=sdk); `aiohttp` is
  `GeminiDirectBackend` (GEMINI_CLIENT=aiohttp).

Every client is the service's own backend and does the whole call the service makes:
the body from the `ChatCall`, the request, the status check, the answer read into a
`ChatResult`. Before measuring, each provider's clients are checked against each other:
the server records one call of each and the bodies (up to spelling: field-name case and
base64 alphabet) and results must be equal, and each maps the provider's errors alike
(the same error class and retry-after for 429, 529/503, 500, 400 and 401 answers).

Calls run `--concurrency` at a time (the server answers one at a time: zero latency), in
`--rounds` rounds, the clients' order rotating between rounds, after `--warmup` calls
each; it reports the median CPU ms per call (and the range over the rounds) and calls/s.
The machine's load average is recorded at the start and the end, as bench.py does.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import argparse
import asyncio
import base64
import gc
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from chater_gpt.backends.anthropic import AnthropicBackend
from chater_gpt.backends.anthropic_direct import AnthropicDirectBackend
from chater_gpt.backends.gemini import GeminiBackend
from chater_gpt.backends.gemini_direct import GeminiDirectBackend
from chater_gpt.backends.openai import OpenAIBackend
from chater_gpt.backends.openai_direct import OpenAIDirectBackend
from chater_gpt.config import DEFAULT_SYSTEM_PROMPT
from chater_gpt.domain import ChatCall, ChatResult
from chater_gpt.errors import (
    BackendError,
)
from tests.load._payloads import tiny_jpeg
from tests.load._stack import PROVIDER_MODELS, BackendProcess, BackendShape
from tests.load.load_backend import PROVIDERS, Provider, build_server
from tests.load.load_backend import parse_args as backend_args
from tests.support import scripted_anthropic, scripted_gemini
from tests.support.scripted_common import Fault

KEY = SecretStr("sdk-overhead-not-a-real-key")
TIMEOUT = 30.0
# Past this ratio and difference an SDK "costs far more" than a plain client (issue 13).
FAR_MORE_RATIO = 2.0
FAR_MORE_MS = 0.3


Factory = Callable[[str], Any]  # base URL of the server's root -> a client


CLIENTS: dict[Provider, dict[str, Factory]] = {
    "openai": {
        "sdk": lambda root: OpenAIBackend(api_key=KEY, base_url=f"{root}/v1", timeout=TIMEOUT),
        "aiohttp": lambda root: OpenAIDirectBackend(
            api_key=KEY, base_url=f"{root}/v1", timeout=TIMEOUT
        ),
    },
    "anthropic": {
        "sdk": lambda root: AnthropicBackend(api_key=KEY, base_url=root, timeout=TIMEOUT),
        "aiohttp": lambda root: AnthropicDirectBackend(api_key=KEY, base_url=root, timeout=TIMEOUT),
    },
    "gemini": {
        "sdk": lambda root: GeminiBackend(api_key=KEY, base_url=root, timeout=TIMEOUT),
        "aiohttp": lambda root: GeminiDirectBackend(api_key=KEY, base_url=root, timeout=TIMEOUT),
    },
}
PLAIN = "aiohttp"


# --- the calls -------------------------------------------------------------------------


def make_call(provider: Provider, index: int, history: int, *, photo: str = "") -> ChatCall:
    """A call as B's service makes it: the system prompt, `history` earlier messages (the
    load backend's padded echo answers), the new message; X-Request-ID."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}]
    for turn in range(history // 2):
        question = f"load request {index - history + 2 * turn} of run sdk: say something short."
        messages += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": f"echo: {question}" + " tok" * 18},
        ]
    text = f"load request {index} of run sdk: say something short."
    content: Any = text
    if photo:
        content = [
            {"type": "text", "text": text},
            {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{photo}"}},
        ]
    messages.append({"role": "user", "content": content})
    return ChatCall(
        model=PROVIDER_MODELS[provider],
        messages=messages,
        max_tokens=1000,
        temperature=0.7,
        request_id=f"sdk-overhead-{index}",
    )


async def run_batch(
    client: Any, calls: Sequence[ChatCall], concurrency: int
) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of making every call, `concurrency` at a time."""
    pending = iter(calls)

    async def worker() -> None:
        for call in pending:
            await client.complete(call)

    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.process_time() - cpu, time.perf_counter() - wall


# --- the equivalence check -------------------------------------------------------------


def _faults(provider: Provider) -> list[tuple[str, Fault]]:
    if provider == "anthropic":
        return [
            ("429", scripted_anthropic.rate_limited(7)),
            ("529", scripted_anthropic.overloaded()),
            ("500", Fault(status=500, body=scripted_anthropic.error_body(500))),
            ("400", Fault(status=400, body=scripted_anthropic.error_body(400, "bad"))),
            ("401", Fault(status=401, body=scripted_anthropic.error_body(401, "key"))),
        ]
    if provider == "gemini":
        key_invalid = scripted_gemini.error_body(
            400,
            "API key not valid. Please pass a valid API key.",
            [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                }
            ],
        )
        return [
            ("429", scripted_gemini.rate_limited(retry_delay=7)),
            ("429+header", scripted_gemini.rate_limited(retry_delay=7, retry_after=3)),
            ("503", scripted_gemini.unavailable()),
            ("500", Fault(status=500, body=scripted_gemini.error_body(500))),
            ("400", Fault(status=400, body=scripted_gemini.error_body(400, "bad"))),
            ("400 key", Fault(status=400, body=key_invalid)),
            ("403", Fault(status=403, body=scripted_gemini.error_body(403, "no"))),
        ]
    return [
        ("429", Fault(status=429, headers={"Retry-After": "7"})),
        ("503", Fault(status=503)),
        ("400", Fault(status=400)),
        ("401", Fault(status=401)),
    ]


def _comparable(body: Any) -> Any:
    """A body with its spellings made one: Gemini's field names in either case (the SDK
    writes `mime_type`, the REST docs `mimeType`) and inline bytes in either base64
    alphabet (the SDK's is URL-safe); the API reads both."""
    if isinstance(body, dict):
        same = {}
        for name, value in body.items():
            camel = name.split("_")[0] + "".join(w.title() for w in name.split("_")[1:])
            same[camel] = _comparable(value)
        inline = same.get("inlineData")
        if isinstance(inline, dict) and isinstance(inline.get("data"), str):
            data = inline["data"].replace("-", "+").replace("_", "/")
            inline["data"] = base64.b64decode(data)
        return same
    if isinstance(body, list):
        return [_comparable(item) for item in body]
    return body


def _outcome(result: object) -> tuple[str, float | None]:
    if isinstance(result, BackendError):
        return type(result).__name__, result.retry_after
    return type(result).__name__, None


async def check_equivalence(provider: Provider, history: int) -> list[str]:
    """Each client against an in-process recording server: the same body (with a photo),
    the same ChatResult, the same error for each fault. Returns the differences."""
    problems: list[str] = []
    photo = base64.b64encode(tiny_jpeg()).decode()
    args = backend_args([f"--provider={provider}", "--latency=fixed:0"])
    server = build_server(args)
    server.record = True
    with server:
        root = f"http://127.0.0.1:{server.port}"
        seen: dict[str, tuple[Any, ChatResult, list[tuple[str, float | None]]]] = {}
        for name, factory in CLIENTS[provider].items():
            client = factory(root)
            try:
                server.reset_stats()
                result = await client.complete(make_call(provider, 41, history, photo=photo))
                body = server.requests[-1].body
                errors = []
                for _, fault in _faults(provider):
                    server.fail_next(fault)
                    try:
                        outcome: object = await client.complete(make_call(provider, 42, history))
                    except BackendError as exc:
                        outcome = exc
                    errors.append(_outcome(outcome))
            finally:
                await client.aclose()
            seen[name] = (body, result, errors)
        reference_name = next(iter(seen))
        reference = seen[reference_name]
        for name, (body, result, errors) in seen.items():
            if _comparable(body) != _comparable(reference[0]):
                problems.append(f"{provider} {name}: body differs from {reference_name}'s")
            if result != reference[1]:
                problems.append(f"{provider} {name}: result {result} != {reference[1]}")
            for (label, _), got, want in zip(_faults(provider), errors, reference[2], strict=True):
                if got != want:
                    problems.append(
                        f"{provider} {name}: HTTP {label} -> {got}, {reference_name}: {want}"
                    )
    return problems


# --- measuring -------------------------------------------------------------------------


@dataclass
class Measured:
    provider: str
    client: str
    cpu_ms: list[float]  # per call, one per round
    rates: list[float]  # calls/s, one per round

    def as_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "client": self.client,
            "cpu_ms_per_call": [round(v, 4) for v in self.cpu_ms],
            "cpu_ms_per_call_median": round(statistics.median(self.cpu_ms), 4),
            "calls_per_s": [round(v, 1) for v in self.rates],
            "calls_per_s_median": round(statistics.median(self.rates), 1),
        }


async def measure_provider(
    provider: Provider, args: argparse.Namespace, root: str, console: Console
) -> list[Measured]:
    factories = CLIENTS[provider]
    clients = {name: factory(root) for name, factory in factories.items()}
    calls = [make_call(provider, i, args.history) for i in range(args.calls)]
    results = {name: Measured(provider, name, [], []) for name in clients}
    try:
        for name, client in clients.items():
            await run_batch(client, calls[: args.warmup], args.concurrency)
            console.print(f"{provider} {name}: warmed up", style="dim")
        names = list(clients)
        for round_ in range(args.rounds):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                cpu, wall = await run_batch(clients[name], calls, args.concurrency)
                results[name].cpu_ms.append(cpu * 1000 / len(calls))
                results[name].rates.append(len(calls) / wall)
            console.print(
                f"{provider} round {round_ + 1}: "
                + ", ".join(f"{n} {results[n].cpu_ms[-1]:.3f} ms" for n in names),
                style="dim",
            )
    finally:
        for client in clients.values():
            await client.aclose()
    return list(results.values())


def verdict(sdk: Measured, plain: Measured) -> tuple[float, float, bool]:
    """(ratio, difference in ms, whether the SDK costs far more)."""
    s, p = statistics.median(sdk.cpu_ms), statistics.median(plain.cpu_ms)
    ratio = s / p if p else float("nan")
    return ratio, s - p, ratio > FAR_MORE_RATIO and s - p > FAR_MORE_MS


def print_table(console: Console, measured: list[Measured]) -> None:
    table = Table(title="SDK vs plain aiohttp: client CPU per call", title_justify="left")
    for column in ("provider", "client", "CPU ms/call (median)", "range", "calls/s", "vs aiohttp"):
        table.add_column(column)
    plain = {m.provider: m for m in measured if m.client == PLAIN}
    for m in measured:
        ratio = ""
        if m.client != PLAIN and m.provider in plain:
            r, diff, far = verdict(m, plain[m.provider])
            ratio = f"{r:.2f}x, +{diff:.3f} ms" + (" [bold red]far more[/]" if far else "")
        table.add_row(
            m.provider,
            m.client,
            f"{statistics.median(m.cpu_ms):.3f}",
            f"{min(m.cpu_ms):.3f}-{max(m.cpu_ms):.3f}",
            f"{statistics.median(m.rates):,.0f}",
            ratio,
        )
    console.print(table)


async def run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(["python", "tests/load/sdk_overhead.py", *args.argv]),
        "calls": args.calls,
        "rounds": args.rounds,
        "concurrency": args.concurrency,
        "history": args.history,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    problems: list[str] = []
    for provider in args.provider:
        problems += await check_equivalence(provider, args.history)
    if problems:
        for problem in problems:
            console.print(f"[bold red]{problem}[/]")
        raise SystemExit("the clients do not send the same bodies or map errors alike")
    console.print("bodies, results and errors: identical across each provider's clients")
    measured: list[Measured] = []
    for provider in args.provider:
        with tempfile.TemporaryDirectory(prefix="sdk-overhead-") as workdir:
            backend = BackendProcess(
                BackendShape(latency="fixed:0", provider=provider), Path(workdir)
            )
            backend.start()
            try:
                root = backend.base_url.removesuffix("/v1")
                measured += await measure_provider(provider, args, root, console)
            finally:
                backend.stop()
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["results"] = [m.as_json() for m in measured]
    plain = {m.provider: m for m in measured if m.client == PLAIN}
    report["verdicts"] = {
        f"{m.provider} {m.client}": dict(
            zip(("ratio", "difference_ms", "far_more"), verdict(m, plain[m.provider]), strict=True)
        )
        for m in measured
        if m.client != PLAIN
    }
    print_table(Console(), measured)
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--provider", default=",".join(PROVIDERS), help="comma-separated")
    parser.add_argument("--calls", type=int, default=2000, help="calls per client and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured calls per client")
    parser.add_argument("--concurrency", type=int, default=16, help="calls in flight")
    parser.add_argument("--history", type=int, default=10, help="earlier messages per call")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    providers = [p.strip().lower() for p in args.provider.split(",") if p.strip()]
    if not providers or set(providers) - set(PROVIDERS):
        parser.error(f"--provider: one or more of {', '.join(PROVIDERS)}")
    args.provider = tuple(dict.fromkeys(providers))
    if min(args.calls, args.rounds, args.concurrency) < 1 or args.warmup < 0 or args.history < 0:
        parser.error("--calls, --rounds and --concurrency must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(stderr=True)
    report = asyncio.run(run(args, console))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
