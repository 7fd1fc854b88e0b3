"""The HTTP gateway path against LiteLLM's proxy (issue 14), side by side in one run, on
one machine, against the same scripted OpenAI backend (tests/load/load_backend.py, 200 ms
fixed) and with the same load generator (an open-loop aiohttp client in this process):

  chater-gpt  HTTP → `python main.py gateway` → Kafka (the embedded broker, Tansu)
              → `python main.py run` → the backend, and back through the reply topic
  litellm     HTTP → `litellm --config ... --num_workers N` (LiteLLM's proxy, in its own
              venv, .venv-litellm, created here on first use) → the backend

Measured for each path, each run on a freshly started path (the embedded broker keeps
every message in memory and slows down as a partition grows, see BENCHMARKS.md):
  - added latency p50/p99 at each of --fixed-rates req/s for --seconds (end to end minus
    the backend's 200 ms; the backend called directly by the same generator at the same
    rate is the baseline);
  - the highest rate sustained (--rates, ascending, --step-seconds each): every request
    answered 200, p99 within 1 s of the backend's latency, and the last answer within
    that bound of the last send (no growing queue);
  - RSS: the peak (VmHWM) of every process of the path, summed; CPU per request, by
    process;
  - added time to first token for streaming, p50/p99, at --ttft-rate req/s for
    --ttft-seconds: every request sends `stream: true` (with `include_usage`) and times
    the first `data:` chunk carrying a non-empty `delta.content`; the backend streams
    its first word after its 200 ms and one word every --stream-interval after that,
    and the baseline is the same generator streaming from the backend directly (added
    = the path's quantile minus the backend's own, measured, at the same quantile).

    python tests/load/bench_gateway.py                    # ~10 minutes
    python tests/load/bench_gateway.py --quick            # ~6 minutes
    python tests/load/bench_gateway.py --litellm-workers 1

Only 127.0.0.1. Writes bench-results/bench-gateway.json (the machine, the load average
at start and end, every run) and prints a table against the issue's targets.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import argparse
import asyncio
import contextlib
import functools
import json
import math
import os
import secrets
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp

from chater_gpt.dev.broker import EmbeddedBroker
from chater_gpt.dev.ports import free_port
from tests.load._procstats import ProcessStats
from tests.load._stack import BackendProcess, BackendShape, service_settings
from tests.load._stats import percentile
from tests.load.bench import machine
from tests.support.gateway_stack import write_keys_file
from tests.support.service_runner import ServiceProcess

ROOT = Path(__file__).resolve().parents[2]
BACKEND_LATENCY = 0.2
# The newest LiteLLM whose `proxy` extra resolves on the package registry here (1.110's
# needs a `litellm-proxy` release the registry does not have).
LITELLM_PROXY_VERSION = "1.108.7"
LITELLM_VENV = ROOT / ".venv-litellm"
MODEL = "gpt-4o-mini"
STREAM_INTERVAL = 0.02  # seconds between two streamed words of the backend
SUSTAINED_P99_ADDED = 1.0  # seconds over the backend's latency


# --- the load generator -------------------------------------------------------------


@dataclass
class RunResult:
    """One open-loop run at a fixed rate against one URL."""

    path: str
    rate: float
    seconds: float
    sent: int = 0
    ok: int = 0
    failed: dict[str, int] = field(default_factory=dict)  # status or exception → count
    latencies: list[float] = field(default_factory=list)  # seconds, answered 200 only
    elapsed: float = 0.0  # first send to the last answer
    max_send_lag: float = 0.0  # how late the generator sent against its schedule
    cpu_seconds: float = math.nan  # the path's processes, user+sys, over the run

    @property
    def throughput(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def latency_ms(self, q: float, minus: float = 0.0) -> float:
        ordered = sorted(self.latencies)
        return (percentile(ordered, q) - minus) * 1000 if ordered else math.nan

    @property
    def sustained(self) -> bool:
        # Kept up: every request answered 200, p99 bounded, and the last answer no later
        # than that bound after the last send (a growing queue would push it out).
        bound = BACKEND_LATENCY + SUSTAINED_P99_ADDED
        return (
            not self.failed
            and self.ok == self.sent
            and self.elapsed <= self.seconds + bound
            and self.latency_ms(99, BACKEND_LATENCY) <= SUSTAINED_P99_ADDED * 1000
        )

    def summary(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "rate": self.rate,
            "seconds": self.seconds,
            "sent": self.sent,
            "ok": self.ok,
            "failed": self.failed,
            "throughput_per_s": round(self.throughput, 1),
            "latency_ms": {
                f"p{q}": round(self.latency_ms(q), 2) for q in (50, 90, 99) if self.latencies
            },
            "added_latency_ms": {
                f"p{q}": round(self.latency_ms(q, BACKEND_LATENCY), 2)
                for q in (50, 99)
                if self.latencies
            },
            "max_send_lag_ms": round(self.max_send_lag * 1000, 2),
            "cpu_ms_per_request": (
                round(self.cpu_seconds * 1000 / self.ok, 3) if self.ok else None
            ),
            "sustained": self.sustained,
        }


def chat_body(i: int, stream: bool = False) -> bytes:
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": f"bench request {i}"}],
    }
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return json.dumps(body).encode()


def has_content(line: bytes) -> bool:
    """An SSE `data:` line whose chunk carries a non-empty `delta.content`."""
    if not line.startswith(b"data:"):
        return False
    data = line[5:].strip()
    if not data or data == b"[DONE]":
        return False
    with contextlib.suppress(ValueError):
        chunk = json.loads(data)
        for choice in chunk.get("choices") or []:
            if (choice.get("delta") or {}).get("content"):
                return True
    return False


async def read_stream(response: aiohttp.ClientResponse, started: float) -> float | None:
    """Reads the whole stream; the seconds from `started` to the first word, or None
    when the stream never carried one or did not end with `data: [DONE]`."""
    first: float | None = None
    done = False
    async for line in response.content:
        if first is None and has_content(line):
            first = time.monotonic() - started
        elif line.strip() == b"data: [DONE]":
            done = True
    return first if done else None


async def open_loop(
    url: str,
    key: str,
    rate: float,
    seconds: float,
    path: str,
    timeout: float = 30.0,
    stream: bool = False,
) -> RunResult:
    """Send `rate` requests a second for `seconds`, each on its own schedule whatever
    the answers (open loop: a slow server gets a queue, not fewer requests). With
    `stream`, each asks for a stream, and `latencies` are times to the first word
    (a stream without a word or without `[DONE]` counts as failed, "stream")."""
    result = RunResult(path, rate, seconds)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)
    ) as session:

        async def one(i: int) -> None:
            started = time.monotonic()
            first: float | None = None
            try:
                body = chat_body(i, stream)
                async with session.post(url, data=body, headers=headers) as response:
                    status = response.status
                    if stream and status == 200:
                        first = await read_stream(response, started)
                    else:
                        await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                result.failed[type(exc).__name__] = result.failed.get(type(exc).__name__, 0) + 1
                return
            if status == 200 and stream and first is None:
                result.failed["stream"] = result.failed.get("stream", 0) + 1
            elif status == 200:
                result.ok += 1
                result.latencies.append(first if first is not None else time.monotonic() - started)
            else:
                result.failed[str(status)] = result.failed.get(str(status), 0) + 1

        total = int(rate * seconds)
        tasks: list[asyncio.Task[None]] = []
        start = time.monotonic()
        for i in range(total):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            result.max_send_lag = max(result.max_send_lag, time.monotonic() - due)
            tasks.append(asyncio.create_task(one(i)))
            result.sent += 1
        await asyncio.gather(*tasks)
        result.elapsed = time.monotonic() - start
    return result


async def warm(url: str, key: str, count: int = 20) -> None:
    """A few answered requests before measuring: start-up costs are never counted."""
    deadline = time.monotonic() + 60
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        answered = 0
        while answered < count:
            async with session.post(url, data=chat_body(-1), headers=headers) as response:
                await response.read()
                if response.status == 200:
                    answered += 1
                elif time.monotonic() > deadline:
                    raise RuntimeError(f"{url} answers {response.status}")


# --- processes ----------------------------------------------------------------------


OpenPath = Callable[[], contextlib.AbstractContextManager["Target"]]


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants (LiteLLM's workers are its children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            children = task / "children"
            with contextlib.suppress(OSError):
                todo += [int(child) for child in children.read_text().split()]
    return found


def tree_stats(pids: list[int]) -> tuple[float, float]:
    """(CPU seconds, peak RSS MiB summed) over the processes and their descendants."""
    cpu = rss = 0.0
    for root in pids:
        for pid in process_tree(root):
            with contextlib.suppress(OSError):
                stats = ProcessStats(pid)
                cpu += stats.cpu_seconds()
                rss += stats.peak_rss_mib()
    return cpu, rss


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    """Until `url` answers 200 (a child's readiness: no event to await across processes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{log.name}: exited\n{log.read_text(errors='replace')[-3000:]}")
        with (
            contextlib.suppress(OSError, urllib.error.HTTPError),
            urllib.request.urlopen(url, timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready within {timeout} s")


@dataclass
class Target:
    """One path under test: where to send, with which key, and whose processes count."""

    name: str
    url: str
    key: str
    pids: list[int]
    names: list[str]  # of the pids
    extra_pids: dict[str, int] = field(default_factory=dict)  # reported, not counted


@contextlib.contextmanager
def chater_path(backend_url: str, workdir: Path, client: str) -> Iterator[Target]:
    key = "sk-bench-" + secrets.token_hex(16)
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
        settings = service_settings(
            broker.bootstrap,
            backend_url,
            {
                "openai_client": client,
                "gateway_reply_topic_prefix": "gpt-gateway-reply-",
                "photo_request_topic": "",
                "stream_topic": "gpt-stream",
            },
        )
        broker.create_topics(
            [settings["request_topic"], settings["response_topic"], settings["stream_topic"]]
        )
        keys = write_keys_file(workdir / "keys.json", {key: "bench"})
        port, service_port = free_port(), free_port()
        core = ServiceProcess({**settings, "metrics_port": service_port}, workdir / "core.log")
        gateway = ServiceProcess(
            {
                **settings,
                "gateway_port": port,
                "gateway_host": "127.0.0.1",
                "gateway_instance_id": "bench",
                "gateway_api_keys_file": keys,
                "gateway_timeout_seconds": 30,
            },
            workdir / "gateway.log",
            ("gateway",),
        )
        try:
            core.start()
            gateway.start()
            assert core.proc is not None
            assert gateway.proc is not None
            wait_http(f"http://127.0.0.1:{service_port}/readyz", core.proc, core.log_path)
            wait_http(f"http://127.0.0.1:{port}/readyz", gateway.proc, gateway.log_path)
            yield Target(
                f"chater-gpt (OPENAI_CLIENT={client})",
                f"http://127.0.0.1:{port}/v1/chat/completions",
                key,
                [gateway.proc.pid, core.proc.pid],
                ["gateway", "service"],
                {"broker": broker.pid},
            )
        finally:
            for process in (gateway, core):
                with contextlib.suppress(subprocess.TimeoutExpired):
                    if process.proc is not None and process.proc.poll() is None:
                        process.terminate(15)
                process.stop()


def ensure_litellm_venv() -> Path:
    """.venv-litellm with `litellm[proxy]`: never in the project's venv (its ~116
    packages would pin over the project's)."""
    binary = LITELLM_VENV / "bin" / "litellm"
    if binary.exists():
        return binary
    subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
    subprocess.run(
        [
            str(LITELLM_VENV / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            f"litellm[proxy]=={LITELLM_PROXY_VERSION}",
        ],
        check=True,
    )
    return binary


@contextlib.contextmanager
def litellm_path(backend_url: str, workdir: Path, workers: int) -> Iterator[Target]:
    binary = ensure_litellm_venv()
    key = "sk-" + secrets.token_hex(32)  # LiteLLM refuses a weak master key
    config = workdir / "litellm.yaml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "model_list": [
                    {
                        "model_name": MODEL,
                        "litellm_params": {
                            "model": f"openai/{MODEL}",
                            "api_base": backend_url,
                            "api_key": "sk-bench-backend",
                        },
                    }
                ],
                "litellm_settings": {"telemetry": False, "set_verbose": False},
            }
        )
    )
    port = free_port()
    env = {
        **os.environ,
        "LITELLM_MASTER_KEY": key,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # offline: the cost map it ships
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
    }
    log = workdir / "litellm.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                str(binary),
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--num_workers",
                str(workers),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/health/liveliness", proc, log)
        yield Target(
            f"litellm proxy {LITELLM_PROXY_VERSION} ({workers} worker{'s' * (workers > 1)})",
            f"http://127.0.0.1:{port}/v1/chat/completions",
            key,
            [proc.pid],
            ["litellm"],
        )
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# --- the runs -----------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    fixed_rates: tuple[float, ...] = (100.0, 50.0)
    seconds: float = 30.0
    rates: tuple[float, ...] = (50, 100, 150, 200, 300, 400, 500, 600, 800, 1000)
    step_seconds: float = 5.0
    ttft_rate: float = 20.0
    ttft_seconds: float = 15.0


@dataclass
class Measured:
    result: RunResult
    cpu_ms_by_process: dict[str, float]
    peak_rss_mib: float  # summed over the path's processes
    processes: int
    not_counted_rss_mib: dict[str, float]  # e.g. the broker: reported, not counted


def one_run(open_path: OpenPath, rate: float, seconds: float) -> Measured:
    """One run on a freshly started path: the embedded broker keeps every message in
    memory and gets slower as a partition grows (BENCHMARKS.md), so no run inherits
    another's data; LiteLLM is restarted the same way, for symmetry."""
    with open_path() as path:
        asyncio.run(warm(path.url, path.key))
        before = [tree_stats([pid])[0] for pid in path.pids]
        result = asyncio.run(open_loop(path.url, path.key, rate, seconds, path.name))
        after = [tree_stats([pid])[0] for pid in path.pids]
        result.cpu_seconds = sum(after) - sum(before)
        _, peak_rss = tree_stats(path.pids)
        measured = Measured(
            result,
            {  # where the CPU goes: each process of the path (with its children)
                name: round((a - b) * 1000 / max(result.ok, 1), 3)
                for name, a, b in zip(path.names, after, before, strict=True)
            },
            round(peak_rss, 1),
            len([p for root in path.pids for p in process_tree(root)]),
            {
                name: round(ProcessStats(pid).peak_rss_mib(), 1)
                for name, pid in path.extra_pids.items()
            },
        )
    print(f"  {path.name} @ {rate:g}/s: {json.dumps(as_json(measured))}", flush=True)
    return measured


def as_json(measured: Measured) -> dict[str, Any]:
    return {
        **measured.result.summary(),
        "cpu_ms_per_request_by_process": measured.cpu_ms_by_process,
        "peak_rss_mib": measured.peak_rss_mib,
        "processes": measured.processes,
        "not_counted_rss_mib": measured.not_counted_rss_mib,
    }


def measure(open_path: OpenPath, plan: Plan) -> dict[str, Any]:
    fixed = [one_run(open_path, rate, plan.seconds) for rate in plan.fixed_rates]
    steps: list[Measured] = []
    for rate in plan.rates:
        steps.append(one_run(open_path, rate, plan.step_seconds))
        if not steps[-1].result.sustained:
            break
    sustained = [m.result.rate for m in steps if m.result.sustained]
    ttft = ttft_run(open_path, plan)
    return {
        "path": fixed[0].result.path,
        "fixed_rate": {f"{m.result.rate:g}": as_json(m) for m in fixed},
        "steps": [as_json(m) for m in steps],
        "max_sustained_rate": max(sustained) if sustained else 0.0,
        "peak_rss_mib": max(m.peak_rss_mib for m in [*fixed, *steps]),
        "processes": fixed[0].processes,
        "ttft": ttft,
    }


def ttft_summary(result: RunResult) -> dict[str, Any]:
    return {
        "rate": result.rate,
        "seconds": result.seconds,
        "sent": result.sent,
        "ok": result.ok,
        "failed": result.failed,
        "first_token_ms": {
            f"p{q}": round(result.latency_ms(q), 2) for q in (50, 90, 99) if result.latencies
        },
        "max_send_lag_ms": round(result.max_send_lag * 1000, 2),
    }


def ttft_run(open_path: OpenPath, plan: Plan) -> dict[str, Any]:
    """Time to first token, streaming, on a freshly started path (as `one_run`)."""
    with open_path() as path:
        asyncio.run(warm(path.url, path.key))
        asyncio.run(open_loop(path.url, path.key, 5, 1, path.name, stream=True))  # warm
        result = asyncio.run(
            open_loop(path.url, path.key, plan.ttft_rate, plan.ttft_seconds, path.name, True)
        )
    summary = ttft_summary(result)
    print(f"  {path.name} streaming @ {plan.ttft_rate:g}/s: {json.dumps(summary)}", flush=True)
    return summary


def added_ttft(run: dict[str, Any], base: dict[str, Any]) -> dict[str, float]:
    """The path's first-token quantiles minus the backend's own at the same quantile."""
    mine, own = run.get("first_token_ms", {}), base.get("first_token_ms", {})
    return {q: round(mine[q] - own[q], 2) for q in ("p50", "p99") if q in mine and q in own}


def baseline(backend_url: str, plan: Plan) -> dict[str, Any]:
    """The backend called directly by the same generator: what 'added' is added to."""
    url = f"{backend_url}/chat/completions"
    asyncio.run(warm(url, "none"))
    return {
        f"{rate:g}": asyncio.run(open_loop(url, "none", rate, plan.seconds, "backend")).summary()
        for rate in plan.fixed_rates
    }


def baseline_ttft(backend_url: str, plan: Plan) -> dict[str, Any]:
    """The backend's own time to first token, streamed directly to the same generator."""
    url = f"{backend_url}/chat/completions"
    result = asyncio.run(open_loop(url, "none", plan.ttft_rate, plan.ttft_seconds, "", True))
    return ttft_summary(result)


def print_table(report: dict[str, Any]) -> None:
    runs = report["paths"]
    rows: list[tuple[str, ...]] = [("", *(run["path"] for run in runs))]
    for rate, base in report["backend_direct"].items():
        p50, p99 = base["latency_ms"]["p50"], base["latency_ms"]["p99"]
        rows.append((f"backend alone p50/p99 ms @ {rate}/s", *[f"{p50} / {p99}"] * len(runs)))
        for q in ("p50", "p99"):
            rows.append(
                (
                    f"added {q} ms @ {rate}/s",
                    *(str(run["fixed_rate"][rate]["added_latency_ms"].get(q)) for run in runs),
                )
            )
        rows.append(
            (
                f"CPU ms/request @ {rate}/s",
                *(str(run["fixed_rate"][rate]["cpu_ms_per_request"]) for run in runs),
            )
        )
    base = report["backend_direct_ttft"]
    rate = f"{base['rate']:g}"
    first = base.get("first_token_ms", {})
    rows.append(
        (
            f"backend alone first token p50/p99 ms @ {rate}/s",
            *[f"{first.get('p50')} / {first.get('p99')}"] * len(runs),
        )
    )
    for q in ("p50", "p99"):
        rows.append(
            (
                f"added first token {q} ms @ {rate}/s",
                *(str(added_ttft(run["ttft"], base).get(q)) for run in runs),
            )
        )
    for label, key in (
        ("max sustained req/s", "max_sustained_rate"),
        ("peak RSS MiB (summed)", "peak_rss_mib"),
        ("processes", "processes"),
    ):
        rows.append((label, *(str(run[key]) for run in runs)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="shorter runs (~6 minutes)")
    parser.add_argument(
        "--fixed-rates", default="100,50", help="the added-latency runs' rates, req/s"
    )
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rates", default="50,100,150,200,300,400,500,600,800,1000")
    parser.add_argument("--step-seconds", type=float, default=5.0)
    parser.add_argument("--ttft-rate", type=float, default=20.0, help="streaming req/s")
    parser.add_argument("--ttft-seconds", type=float, default=15.0)
    parser.add_argument(
        "--stream-interval",
        type=float,
        default=STREAM_INTERVAL,
        help="the backend's seconds between two streamed words",
    )
    parser.add_argument("--litellm-workers", default="2", help="comma-separated, e.g. 1,2")
    parser.add_argument(
        "--openai-client", default="sdk", choices=["sdk", "aiohttp"], help="the core's client"
    )
    parser.add_argument("--only", default="chater,litellm")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = Plan(
        fixed_rates=tuple(float(r) for r in args.fixed_rates.split(",")),
        seconds=8.0 if args.quick else args.seconds,
        rates=tuple(float(r) for r in args.rates.split(",")),
        step_seconds=4.0 if args.quick else args.step_seconds,
        ttft_rate=args.ttft_rate,
        ttft_seconds=5.0 if args.quick else args.ttft_seconds,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-", dir=args.out))
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(["python", "tests/load/bench_gateway.py", *(argv or sys.argv[1:])]),
        "plan": asdict(plan),
        "machine": machine(),
        "backend": (
            f"tests/load/load_backend.py --latency fixed:{BACKEND_LATENCY}"
            f" --stream-interval {args.stream_interval}"
        ),
        "paths": [],
        "logs": str(workdir),
    }
    shape = BackendShape(latency=f"fixed:{BACKEND_LATENCY}", stream_interval=args.stream_interval)
    backend = BackendProcess(shape, workdir).start()
    try:
        report["backend_direct"] = baseline(backend.base_url, plan)
        print(f"backend alone: {json.dumps(report['backend_direct'])}", flush=True)
        report["backend_direct_ttft"] = baseline_ttft(backend.base_url, plan)
        print(f"backend alone, streaming: {json.dumps(report['backend_direct_ttft'])}", flush=True)
        only = {name.strip() for name in args.only.split(",")}
        if "chater" in only:
            report["paths"].append(
                measure(
                    functools.partial(chater_path, backend.base_url, workdir, args.openai_client),
                    plan,
                )
            )
        if "litellm" in only:
            for workers in (int(w) for w in args.litellm_workers.split(",")):
                report["paths"].append(
                    measure(
                        functools.partial(litellm_path, backend.base_url, workdir, workers), plan
                    )
                )
        for run in report["paths"]:
            run["ttft"]["added_first_token_ms"] = added_ttft(
                run["ttft"], report["backend_direct_ttft"]
            )
    finally:
        report["backend_stats"] = backend.stop()
        report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        path = args.out / "bench-gateway.json"
        path.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"results: {path}")
    print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
