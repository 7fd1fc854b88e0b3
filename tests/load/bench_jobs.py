"""Benchmark of the job API: jobs/s accepted and completed through two gateways and the
core, with a 200 ms backend (`load_backend.py --latency fixed:0.2`), on the embedded
broker and the local Redis.

    .venv/bin/python tests/load/bench_jobs.py --jobs 3000 --concurrency 64

Accepted: jobs answered `success` per second of submitting (each answer waits for the
broker's acknowledgement). Completed: jobs finished per second, from the first
submission to the last job's `completion_time`. The jobs are read through the gateways
(every one must be `completed`) only after the core's metrics say all were answered, so
collecting them takes no CPU from the run; CPU and load are read before that. Prints one
JSON object: the rates, the submission latency percentiles, each process's CPU seconds
and peak RSS, and the load averages at start and end (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import re
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from chater_gpt.dev.broker import EmbeddedBroker
from chater_gpt.dev.ports import free_port
from tests.load._procstats import ProcessStats
from tests.load._stack import BackendProcess, BackendShape, service_settings
from tests.support.service_runner import ServiceProcess

APP_CODE = "bench-" + uuid.uuid4().hex


def wait_ready(port: int, process: ServiceProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.proc is not None
        if process.proc.poll() is not None:
            raise RuntimeError(f"exited:\n{process.log_text[-2000:]}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r,
        ):
            if r.status == 200:
                return
        time.sleep(0.1)  # a child's readiness endpoint is the only event there is
    raise RuntimeError(f"not ready:\n{process.log_text[-2000:]}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def submit_all(urls: list[str], jobs: int, concurrency: int) -> tuple[list[str], list[float]]:
    ids: list[str] = []
    latencies: list[float] = []
    semaphore = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int) -> None:
            body = {"app_code": APP_CODE, "request_type": "ask", "request": {"text": f"job {i}"}}
            async with semaphore:
                started = time.monotonic()
                async with session.post(urls[i % len(urls)] + "/ai_request", json=body) as r:
                    answer = await r.json()
                latencies.append(time.monotonic() - started)
            if r.status != 200:
                raise RuntimeError(f"submission refused: {r.status} {answer}")
            ids.append(answer["request_id"])

        await asyncio.gather(*(one(i) for i in range(jobs)))
    return ids, latencies


def replies(core_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{core_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    found = re.search(r"^chater_gpt_replies_total(?:{[^}]*})? ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def wait_answered(core_port: int, jobs: int, timeout: float) -> None:
    """Until the core has answered every job: one metrics read per 0.1 s, so collecting
    the jobs does not take CPU from the run it measures."""
    deadline = time.monotonic() + timeout
    while replies(core_port) < jobs:
        if time.monotonic() > deadline:
            raise RuntimeError("the core did not answer every job in time")
        time.sleep(0.1)


async def collect(urls: list[str], ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    """Read every job until each is final (the core answered them all already)."""
    final: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16)) as session:

        async def look(n: int, job: str) -> None:
            async with session.get(f"{urls[n % len(urls)]}/get_request/{job}") as r:
                body = await r.json()
            if body.get("status") in ("completed", "error", "expired"):
                final[job] = body

        while len(final) < len(ids):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(ids) - len(final)} jobs unfinished")
            await asyncio.gather(*(look(n, j) for n, j in enumerate(ids) if j not in final))
            await asyncio.sleep(0.5)
    return final


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    policy = workdir / "tenants.json"
    policy.write_text(
        json.dumps(
            {
                "tenants": {
                    "bench": {
                        "app_code_sha256": hashlib.sha256(APP_CODE.encode()).hexdigest(),
                        "request_types": {"ask": {"prompt_template": "Answer: {text}"}},
                    }
                }
            }
        )
    )
    processes: list[ServiceProcess] = []
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
        backend = BackendProcess(BackendShape(latency=args.latency), workdir).start()
        try:
            settings = service_settings(
                broker.bootstrap,
                backend.base_url,
                {
                    "redis_url": args.redis_url,
                    "redis_key_prefix": f"bench-jobs-{uuid.uuid4().hex[:8]}:",
                    "tenant_policy_file": policy,
                    "gateway_reply_topic_prefix": "bench-reply-",
                    "gateway_job_queue_capacity": max(10_000, args.jobs),
                    "openai_client": args.openai_client,
                },
            )
            broker.create_topics([settings["request_topic"], settings["response_topic"]])
            core_port = free_port()
            core = ServiceProcess({**settings, "metrics_port": core_port}, workdir / "core.log")
            processes.append(core.start())
            wait_ready(core_port, core)
            urls = []
            for name in ("a", "b"):
                port = free_port()
                gateway_settings = {
                    **settings,
                    "metrics_port": free_port(),
                    "gateway_port": port,
                    "gateway_host": "127.0.0.1",
                    "gateway_instance_id": f"bench-{name}",
                }
                gateway = ServiceProcess(gateway_settings, workdir / f"gw-{name}.log", ("gateway",))
                processes.append(gateway.start())
                wait_ready(port, gateway)
                urls.append(f"http://127.0.0.1:{port}")
            load_start = os.getloadavg()
            cpu_start = [ProcessStats(p.proc.pid).cpu_seconds() for p in processes if p.proc]
            started = time.time()
            ids, latencies = asyncio.run(submit_all(urls, args.jobs, args.concurrency))
            submitted = time.time()
            wait_answered(core_port, args.jobs, args.timeout)
            cpu_end = [ProcessStats(p.proc.pid).cpu_seconds() for p in processes if p.proc]
            rss = [ProcessStats(p.proc.pid).peak_rss_mib() for p in processes if p.proc]
            load_end = os.getloadavg()
            final = asyncio.run(collect(urls, ids, args.timeout))
        finally:
            for process in processes:
                process.stop()
            backend_stats = backend.stop()
    finished = [
        datetime.fromisoformat(body["completion_time"].replace("Z", "+00:00")).timestamp()
        for body in final.values()
        if body["status"] == "completed"
    ]
    completed_span = max(finished) - started
    return {
        "jobs": args.jobs,
        "concurrency": args.concurrency,
        "backend_latency": args.latency,
        "openai_client": args.openai_client,
        "accepted_per_second": round(args.jobs / (submitted - started), 1),
        "completed": len(finished),
        "errors": sum(1 for body in final.values() if body["status"] != "completed"),
        "completed_per_second": round(len(finished) / completed_span, 1),
        "submit_latency_ms": {
            "p50": round(1000 * statistics.median(latencies), 1),
            "p99": round(1000 * percentile(latencies, 0.99), 1),
        },
        "cpu_seconds": dict(
            zip(
                ("core", "gateway_a", "gateway_b"),
                map(lambda a, b: round(b - a, 1), cpu_start, cpu_end),
                strict=True,
            )
        ),
        "peak_rss_mib": dict(zip(("core", "gateway_a", "gateway_b"), map(round, rss), strict=True)),
        "backend_calls": backend_stats.get("calls"),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in load_end],
        "cpus": os.cpu_count(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64, help="submissions in flight")
    parser.add_argument("--latency", default="fixed:0.2", help="the backend's latency")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--openai-client", choices=("sdk", "aiohttp"), default="sdk")
    args = parser.parse_args()
    print(json.dumps(run(args), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
