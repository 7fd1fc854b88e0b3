"""The benchmarks of issue 7, on one machine in one go (broker, backend, load generator
and the service all local; each of them a process of its own):

  A  throughput vs the sequential design: 200 ms backend, 2,000 requests over 500
     conversations; chater-gpt at MAX_IN_FLIGHT 256 (the default) and 512
  B  CPU per message: zero-latency backend, 20,000 requests (service user+sys CPU)
  C  added latency: open loop at 100 msg/s, 200 ms backend (end to end minus 200 ms)
  D  memory: the service's peak RSS (VmHWM) with 1,000 requests in flight
  E  context cost: tests/load/bench_context.py (10 turns, ~8k tokens)

    python tests/load/bench.py                 # everything (~10 minutes)
    python tests/load/bench.py --quick         # a small version of each (~2 minutes)
    python tests/load/bench.py --only A,C
    python tests/load/bench.py --only A,B --payload photo-mixed   # half photo analyses
    python tests/load/bench.py --only B --payload photo           # the photo path alone
    python tests/load/bench.py --only B --provider openai,anthropic,gemini

`--provider` sets whose API B's backend speaks and which SDK the service calls it
with: `openai` (the default), `anthropic` or `gemini` (LLM_BACKEND with a Claude or a
Gemini model, its token-count endpoint off unless `--provider-token-counts`), or
several, comma-separated, run one after the other; B measures each provider with both
of its clients (OPENAI_CLIENT, ANTHROPIC_CLIENT, GEMINI_CLIENT: `sdk` and `aiohttp`;
`--b-clients`). A, C and D always use OpenAI.

`--payload` sets the traffic of A's chater-gpt runs and of B: `text` (the default),
`photo-mixed` (every other request a photo analysis on `eater-send-photo`, answered
on `photo-analysis-response`) or `photo` (photo analyses only). A's sequential
reference serves the chat topic only, so it always gets text.

Prints a table against the targets and writes bench-results/bench.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import argparse
import importlib
import json
import math
import os
import platform
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from rich.console import Console
from rich.table import Table

from chater_gpt.dev.ports import free_port
from tests.load._payloads import Payload, uses_photos
from tests.load._procstats import ProcessStats
from tests.load._report import RichProgress
from tests.load._stack import BackendShape, Consumer, EmbeddedStack
from tests.load._stats import LoadResult, summarize
from tests.load.load_backend import PROVIDERS, Provider
from tests.load.load_test import LoadClients, LoadSpec, parse_size, run_load, warm_up

ROOT = Path(__file__).resolve().parents[2]
BACKEND_LATENCY = 0.2


@dataclass(frozen=True)
class Scale:
    a_requests: int = 2000
    a_users: int = 500
    a_sequential_requests: int = 2000
    b_requests: int = 20_000
    c_rate: float = 100.0
    c_seconds: float = 30.0
    d_in_flight: int = 1000
    d_rounds: int = 3
    e_iterations: int = 1000
    openai_client: str = "sdk"  # OPENAI_CLIENT of the service in A, C and D
    payload: Payload = "text"  # A's chater-gpt runs and B: text, photo-mixed or photo
    photo_size: tuple[int, int] = (64, 48)  # the photo payloads' JPEG
    b_clients: tuple[str, ...] = ("sdk", "aiohttp")  # the *_CLIENT values B measures
    # Whose API B's backend speaks, and so which SDK the service uses (A, C, D: OpenAI).
    b_providers: tuple[Provider, ...] = ("openai",)
    # B with Anthropic or Gemini: their token-count endpoints on (PROVIDER_TOKEN_COUNTS).
    provider_token_counts: bool = False


FULL = Scale()
QUICK = Scale(
    a_requests=600,
    a_sequential_requests=60,
    b_requests=3000,
    c_seconds=8.0,
    d_rounds=1,
    e_iterations=200,
)


@dataclass(frozen=True)
class Check:
    """One reported number and, when the issue sets one, its target."""

    bench: str
    metric: str
    value: float
    unit: str
    target: str = ""
    passed: bool | None = None


@dataclass
class Measured:
    result: LoadResult
    cpu_seconds: float
    peak_rss_mib: float
    backend: dict[str, int] = field(default_factory=dict)
    # The load backend's own CPU over the run (it shares the machine's cores).
    backend_cpu_seconds: float = math.nan
    # Sums and counts of the service's own histograms over the measured run.
    service_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def cpu_ms_per_message(self) -> float:
        answered = self.result.answered
        return self.cpu_seconds * 1000 / answered if answered else math.nan

    def as_json(self) -> dict[str, Any]:
        return {
            "result": self.result.summary(),
            "service_cpu_s": round(self.cpu_seconds, 3),
            "service_cpu_ms_per_message": round(self.cpu_ms_per_message, 4),
            "service_peak_rss_mib": round(self.peak_rss_mib, 1),
            "backend": self.backend,
            "backend_cpu_s": round(self.backend_cpu_seconds, 3),
            **({"service_metrics": self.service_metrics} if self.service_metrics else {}),
        }


# The service's own timings (sum and count of each histogram) split C's added latency.
SCRAPED = (
    "chater_gpt_processing_seconds",
    "chater_gpt_backend_latency_seconds",
    "chater_gpt_end_to_end_latency_seconds",
)


def scrape(port: int) -> dict[str, float]:
    """`<histogram>_sum` and `_count` of SCRAPED, summed over their labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name.endswith(("_sum", "_count")) and name.rsplit("_", 1)[0] in SCRAPED:
            totals[name] = totals.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


def measure(
    *,
    consumer: Consumer,
    backend: BackendShape,
    settings: Mapping[str, Any],
    spec: LoadSpec,
    workdir: Path,
    console: Console,
    metrics_port: int | None = None,
    provider_token_counts: bool = False,
) -> Measured:
    """A fresh stack; warm up; then the measured run, with the consumer's CPU taken
    around it (so start-up and the warm-up are not counted), and the backend's. With
    `metrics_port` (set in `settings` too), the service's histograms are read around it
    as well."""
    with (
        EmbeddedStack(
            backend=backend,
            consumer=consumer,
            settings=settings,
            workdir=workdir,
            provider_token_counts=provider_token_counts,
        ) as stack,
        LoadClients(stack.target, photos=uses_photos(spec.payload)) as clients,
    ):
        warm_up(clients, 90, stack.check_alive)
        stats = ProcessStats(stack.consumer_pid)
        backend_stats = ProcessStats(stack.backend_pid)
        cpu_before = stats.cpu_seconds()
        backend_before = backend_stats.cpu_seconds()
        before = scrape(metrics_port) if metrics_port else {}
        with RichProgress(spec.requests, console) as progress:
            result = run_load(clients, spec, progress=progress, watchdog=stack.check_alive)
        cpu = stats.cpu_seconds() - cpu_before
        backend_cpu = backend_stats.cpu_seconds() - backend_before
        peak = stats.peak_rss_mib()
        after = scrape(metrics_port) if metrics_port else {}
    deltas = {name: after[name] - before.get(name, 0.0) for name in after}
    measured = Measured(
        result,
        cpu,
        peak,
        backend=stack.backend_stats,
        service_metrics=deltas,
        backend_cpu_seconds=backend_cpu,
    )
    if not result.clean or result.duplicates:
        console.print(
            f"[bold red]{consumer}: {result.lost} lost, {result.duplicates} duplicates "
            f"(logs in {workdir})[/]"
        )
    return measured


Bench = Callable[[Scale, Path, Console], tuple[list[Check], dict[str, Any]]]


def bench_a(scale: Scale, out: Path, console: Console) -> tuple[list[Check], dict[str, Any]]:
    backend = BackendShape(latency=f"fixed:{BACKEND_LATENCY}")
    spec = LoadSpec(
        requests=scale.a_requests, concurrent=512, users=scale.a_users, timeout=120, settle=1
    )
    console.print(f"A: sequential reference, {scale.a_sequential_requests} requests ...")
    # The reference serves the chat topic only: it always gets text.
    # At ~5 msg/s the backlog drains slowly: the timeout covers the whole run.
    sequential = measure(
        consumer="sequential",
        backend=backend,
        settings={},
        spec=replace(
            spec,
            requests=scale.a_sequential_requests,
            timeout=scale.a_sequential_requests * 0.5 + 60,
        ),
        workdir=out / "a-sequential",
        console=console,
    )
    runs = {}
    chater_spec = replace(spec, payload=scale.payload, photo_size=scale.photo_size)
    for in_flight in (256, 512):
        console.print(
            f"A: chater-gpt, MAX_IN_FLIGHT={in_flight}, {scale.a_requests} requests "
            f"({scale.payload}) ..."
        )
        runs[in_flight] = measure(
            consumer="chater-gpt",
            backend=backend,
            settings={"max_in_flight": in_flight, "openai_client": scale.openai_client},
            spec=chater_spec,
            workdir=out / f"a-chater-{in_flight}",
            console=console,
        )
    seq_rate = sequential.result.throughput
    ratio = {n: (m.result.throughput / seq_rate if seq_rate else math.nan) for n, m in runs.items()}
    r256, r512 = runs[256].result.throughput, runs[512].result.throughput
    checks = [
        Check("A", "sequential reference", seq_rate, "msg/s"),
        Check("A", "chater-gpt, 256 in flight", r256, "msg/s", ">= 200 (issue 2)", r256 >= 200),
        Check("A", "ratio vs sequential (256)", ratio[256], "x", ">= 100x", ratio[256] >= 100),
        Check("A", "chater-gpt, 512 in flight", r512, "msg/s", ">= 800", r512 >= 800),
        Check("A", "ratio vs sequential (512)", ratio[512], "x", ">= 100x", ratio[512] >= 100),
    ]
    data = {
        "sequential": sequential.as_json(),
        "chater_256": runs[256].as_json(),
        "chater_512": runs[512].as_json(),
        "ratio_256": ratio[256],
        "ratio_512": ratio[512],
    }
    return checks + _clean_checks("A", [sequential, *runs.values()]), data


def b_runs(scale: Scale) -> list[tuple[Provider, str]]:
    """(provider, client) of each B run: each provider with each client of `b_clients`
    (OPENAI_CLIENT, ANTHROPIC_CLIENT, GEMINI_CLIENT)."""
    return [(provider, client) for provider in scale.b_providers for client in scale.b_clients]


def b_label(provider: Provider, client: str) -> str:
    """How B names a run: the OPENAI_CLIENT value alone for OpenAI (as before there were
    other providers), else `anthropic-sdk`, `gemini-sdk`."""
    return client if provider == "openai" else f"{provider}-{client}"


def bench_b(scale: Scale, out: Path, console: Console) -> tuple[list[Check], dict[str, Any]]:
    """CPU per message with each provider's clients (its SDK and plain aiohttp) against
    its scripted API (OpenAI's: the load backend's)."""
    checks: list[Check] = []
    runs: dict[str, Any] = {}
    payload = "" if scale.payload == "text" else f", {scale.payload}"
    counts = scale.provider_token_counts
    for provider, client in b_runs(scale):
        label = b_label(provider, client)
        if provider != "openai":
            label += ", token counts" if counts else ""
        console.print(
            f"B: zero-latency backend, {scale.b_requests} requests, {label} client{payload} ..."
        )
        settings: dict[str, Any] = {"max_in_flight": 256}
        settings[f"{provider}_client"] = client
        run = measure(
            consumer="chater-gpt",
            backend=BackendShape(latency="fixed:0", provider=provider),
            settings=settings,
            spec=LoadSpec(
                requests=scale.b_requests,
                concurrent=256,
                users=1000,
                timeout=120,
                payload=scale.payload,
                photo_size=scale.photo_size,
            ),
            workdir=out / f"b-cpu-{label.replace(', ', '-').replace(' ', '-')}",
            console=console,
            provider_token_counts=counts and provider != "openai",
        )
        per_message = run.cpu_ms_per_message
        checks += [
            Check(
                "B",
                f"service CPU per message ({label}{payload})",
                per_message,
                "ms",
                "<= 1.0",
                per_message <= 1.0,
            ),
            Check(
                "B",
                f"throughput, zero-latency backend ({label}{payload})",
                run.result.throughput,
                "msg/s",
            ),
        ]
        # An error reply costs less than an answer: CPU per message needs answers.
        errors = run.result.errors
        checks.append(Check("B", f"error replies ({label})", errors, "", "0", errors == 0))
        checks += _clean_checks("B", [run])
        runs[label] = {"provider": provider, "client": client, **run.as_json()}
    return checks, runs


def bench_c(scale: Scale, out: Path, console: Console) -> tuple[list[Check], dict[str, Any]]:
    requests = int(scale.c_rate * scale.c_seconds)
    console.print(f"C: open loop {scale.c_rate:g}/s for {scale.c_seconds:g} s, 200 ms backend ...")
    port = free_port()
    run = measure(
        consumer="chater-gpt",
        backend=BackendShape(latency=f"fixed:{BACKEND_LATENCY}"),
        settings={
            "max_in_flight": 256,
            "openai_client": scale.openai_client,
            "metrics_port": port,
        },
        spec=LoadSpec(requests=requests, rate=scale.c_rate, users=1000, timeout=60),
        workdir=out / "c-latency",
        console=console,
        metrics_port=port,
    )
    added = summarize(
        s.latency - BACKEND_LATENCY for s in run.result.samples if s.error_code is None
    )
    p50, p99 = added.p50 * 1000, added.p99 * 1000
    split = latency_split(run)
    checks = [
        Check("C", "added latency p50", p50, "ms", "<= 5", p50 <= 5),
        Check("C", "added latency p99", p99, "ms", "<= 30", p99 <= 30),
        *(Check("C", name, value, "ms") for name, value in split.items()),
    ]
    data = {**run.as_json(), "added_latency_ms": added.as_ms(), "mean_split_ms": split}
    return checks + _clean_checks("C", [run]), data


def latency_split(run: Measured) -> dict[str, float]:
    """Where the added latency goes, as means (the histograms have no fine quantiles):
    the generator's end to end, the service's time from consumed to reply acknowledged
    (its own work plus the reply's produce), and the backend call inside it."""
    metrics = run.service_metrics

    def mean_ms(name: str) -> float:
        count = metrics.get(f"{name}_count", 0.0)
        return metrics.get(f"{name}_sum", 0.0) / count * 1000 if count else math.nan

    answered = [s.latency for s in run.result.samples if s.error_code is None]
    end_to_end = sum(answered) / len(answered) * 1000 if answered else math.nan
    in_service = mean_ms("chater_gpt_processing_seconds")
    backend = mean_ms("chater_gpt_backend_latency_seconds")
    return {
        "mean end to end (generator)": end_to_end,
        "mean in service: consumed to reply acked": in_service,
        "mean backend call (inside the service)": backend,
        "mean service overhead (in service - backend)": in_service - backend,
        "mean outside the service (broker, generator)": end_to_end - in_service,
    }


def bench_d(scale: Scale, out: Path, console: Console) -> tuple[list[Check], dict[str, Any]]:
    n = scale.d_in_flight
    console.print(f"D: {n} requests in flight (2 s backend) ...")
    # A slow backend keeps all of them in flight at once; the backend's own peak
    # concurrency shows they really were.
    run = measure(
        consumer="chater-gpt",
        backend=BackendShape(latency="fixed:2.0"),
        settings={"max_in_flight": n, "openai_client": scale.openai_client},
        spec=LoadSpec(requests=n * scale.d_rounds, concurrent=n, users=n, timeout=120),
        workdir=out / "d-memory",
        console=console,
    )
    peak_backend = run.backend.get("max_concurrent", 0)
    checks = [
        Check("D", "service peak RSS", run.peak_rss_mib, "MiB", "<= 200", run.peak_rss_mib <= 200),
        Check("D", "backend calls in flight (peak)", peak_backend, "calls"),
    ]
    return checks + _clean_checks("D", [run]), run.as_json()


def bench_e(scale: Scale, _out: Path, console: Console) -> tuple[list[Check], dict[str, Any]]:
    console.print("E: context building, 10 turns / ~8k tokens ...")
    try:
        module = importlib.import_module("tests.load.bench_context")
    except ImportError as exc:
        console.print(f"[yellow]E skipped: {exc}[/]")
        return [], {"skipped": str(exc)}
    results: dict[str, tuple[float, float]] = module.bench_context(iterations=scale.e_iterations)
    checks = []
    for case, (p50, p99) in results.items():
        target = case == "steady"  # a new exchange per request: what a request costs
        checks.append(
            Check(
                "E",
                f"context build p50 ({case})",
                p50,
                "ms",
                "<= 1" if target else "",
                p50 <= 1 if target else None,
            )
        )
        checks.append(Check("E", f"context build p99 ({case})", p99, "ms"))
    return checks, {case: {"p50_ms": v[0], "p99_ms": v[1]} for case, v in results.items()}


def _clean_checks(bench: str, runs: list[Measured]) -> list[Check]:
    lost = sum(m.result.lost + m.result.send_failed for m in runs)
    duplicates = sum(m.result.duplicates for m in runs)
    return [
        Check(bench, "lost requests", lost, "", "0", lost == 0),
        Check(bench, "duplicate replies", duplicates, "", "0", duplicates == 0),
    ]


BENCHES: dict[str, Bench] = {"A": bench_a, "B": bench_b, "C": bench_c, "D": bench_d, "E": bench_e}


def machine() -> dict[str, Any]:
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_kib = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        memory_kib = int(meminfo.read_text().split()[1])  # MemTotal comes first
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def print_checks(console: Console, checks: list[Check]) -> None:
    table = Table(title="chater-gpt benchmarks", title_justify="left")
    for column in ("", "metric", "value", "target", ""):
        table.add_column(column, justify="right" if column == "value" else "left")
    for c in checks:
        verdict = {True: "[green]pass[/]", False: "[bold red]MISS[/]", None: ""}[c.passed]
        value = "-" if math.isnan(c.value) else f"{c.value:,.3f}".rstrip("0").rstrip(".")
        table.add_row(c.bench, c.metric, f"{value} {c.unit}".strip(), c.target, verdict)
    console.print(table)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a small version of each benchmark")
    parser.add_argument("--only", default="A,B,C,D,E", help="comma-separated, e.g. A,C")
    parser.add_argument("--seq-requests", type=int, help="requests for A's sequential run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    parser.add_argument(
        "--openai-client",
        choices=["sdk", "aiohttp"],
        default="sdk",
        help="OPENAI_CLIENT of the service in A, C and D (B measures both)",
    )
    parser.add_argument(
        "--payload",
        choices=["text", "photo-mixed", "photo"],
        default="text",
        help="traffic of A's chater-gpt runs and of B: text, half photo analyses, or photos",
    )
    parser.add_argument(
        "--photo-size", default="64x48", metavar="WxH", help="the photo payloads' JPEG"
    )
    parser.add_argument(
        "--b-clients",
        default="sdk,aiohttp",
        help="the OPENAI_CLIENT values B measures, comma-separated (default both)",
    )
    parser.add_argument(
        "--provider",
        default="openai",
        help="whose API B's backend speaks and whose SDK the service uses: openai, "
        "anthropic, gemini, or several comma-separated (A, C and D use OpenAI)",
    )
    parser.add_argument(
        "--provider-token-counts",
        action="store_true",
        help="B with Anthropic or Gemini: PROVIDER_TOKEN_COUNTS on (default off: the "
        "completion path alone)",
    )
    args = parser.parse_args(argv)
    args.only = [name.strip().upper() for name in args.only.split(",") if name.strip()]
    unknown = set(args.only) - BENCHES.keys()
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    args.b_clients = tuple(c.strip() for c in args.b_clients.split(",") if c.strip())
    if not args.b_clients or set(args.b_clients) - {"sdk", "aiohttp"}:
        parser.error("--b-clients: sdk and/or aiohttp")
    providers = [name.strip().lower() for name in args.provider.split(",") if name.strip()]
    if not providers or set(providers) - set(PROVIDERS):
        parser.error(f"--provider: one or more of {', '.join(PROVIDERS)}")
    args.provider = tuple(dict.fromkeys(providers))
    try:
        args.photo_size = parse_size(args.photo_size)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(stderr=True)
    scale = QUICK if args.quick else FULL
    if args.seq_requests:
        scale = replace(scale, a_sequential_requests=args.seq_requests)
    scale = replace(
        scale,
        openai_client=args.openai_client,
        payload=args.payload,
        photo_size=args.photo_size,
        b_clients=args.b_clients,
        b_providers=args.provider,
        provider_token_counts=args.provider_token_counts,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(["python", "tests/load/bench.py", *(argv or sys.argv[1:])]),
        "scale": asdict(scale),
        "quick": args.quick,
        "machine": machine(),
        "benchmarks": {},
    }
    checks: list[Check] = []
    for name in args.only:
        started = time.monotonic()
        found, data = BENCHES[name](scale, args.out, console)
        checks += found
        report["benchmarks"][name] = {**data, "seconds": round(time.monotonic() - started, 1)}
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report["checks"] = [asdict(c) for c in checks]
    print_checks(Console(), checks)
    path = args.out / "bench.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    console.print(f"results: {path}")
    return 0 if all(c.passed is not False for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
