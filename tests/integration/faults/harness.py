"""What the fault scenarios share: the service as a child process with its health port,
waiting for answers by request id, HTTP probes, memory readings, and the scans for
leaked secrets and for error replies that say too much."""

from __future__ import annotations

import contextlib
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from chater_gpt.dev.ports import free_port
from tests.support.service_runner import Reply, ReplyCollector, ServiceProcess

# What an error reply must never carry (README, "Error replies").
FORBIDDEN_IN_ERRORS = ("Traceback", "scripted failure", "127.0.0.1", 'File "')


class ChildService:
    """`python main.py run` with its own health/metrics port."""

    def __init__(self, config: Mapping[str, Any], log_path: Path) -> None:
        self.port = free_port()
        self.process = ServiceProcess({**config, "metrics_port": self.port}, log_path)

    def start(self) -> ChildService:
        self.process.start()
        return self

    @property
    def pid(self) -> int:
        assert self.process.proc is not None
        return self.process.proc.pid

    @property
    def alive(self) -> bool:
        return self.process.proc is not None and self.process.proc.poll() is None

    def kill(self) -> None:
        self.process.kill()

    def terminate(self, timeout: float = 40) -> int:
        code, _ = self.process.terminate(timeout)
        return code

    def stop(self) -> None:
        self.process.stop()

    @property
    def log_text(self) -> str:
        return self.process.log_text

    def diagnosis(self, lines: int = 40) -> str:
        """Whether it runs, and the last warnings of its log (service and librdkafka)."""
        notable = [
            line
            for line in self.log_text.splitlines()
            if "WARNING" in line or "ERROR" in line or line.startswith(("%3|", "%4|", "%5|"))
        ]
        proc = self.process.proc
        state = "running" if self.alive else f"exited ({proc.returncode if proc else None})"
        return f"--- {self.process.log_path.name}: {state}\n" + "\n".join(notable[-lines:])

    def get(self, path: str, timeout: float = 3.0) -> tuple[int, str]:
        """(status, body) of a health endpoint; (0, reason) when nothing answers."""
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except (urllib.error.URLError, OSError) as exc:
            return 0, type(exc).__name__

    def wait_http(
        self,
        path: str,
        predicate: Callable[[int, str], bool],
        timeout: float,
        interval: float = 0.2,
    ) -> tuple[int, str]:
        """Poll an endpoint until predicate(status, body) holds (a child process has no
        event to await); AssertionError with the last answer otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            status, body = self.get(path)
            if predicate(status, body):
                return status, body
            if time.monotonic() > deadline:
                raise AssertionError(f"{path}: last answer {status} {body[:300]}")
            time.sleep(interval)

    def metric(self, name: str) -> float:
        """Sum of every sample of one metric (0 when absent)."""
        _, text = self.get("/metrics")
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and line[len(name)] in " {":
                total += float(line.rsplit(" ", 1)[1])
        return total

    def memory_kb(self, field: str = "VmRSS") -> int:
        """VmRSS (or VmHWM, the peak) of the child from /proc/<pid>/status."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"{field} not in /proc/{self.pid}/status")


def wait_answered(
    collector: ReplyCollector,
    reply_id: Callable[[Reply], str | None],
    expected: set[str],
    timeout: float,
    watch: Sequence[ChildService] = (),
) -> list[Reply]:
    """Block (on the collector's arrivals) until every expected id has a reply.

    `watch`: services that must stay up meanwhile; one that exits fails the wait at
    once, and any failure quotes the tail of each one's log (what CI shows us).
    """
    deadline = time.monotonic() + timeout
    while True:
        replies = list(collector.replies)
        answered = {reply_id(r) for r in replies}
        missing = expected - answered
        if not missing:
            return replies
        dead = [child for child in watch if not child.alive]
        remaining = deadline - time.monotonic()
        if dead or remaining <= 0:
            what = "a service exited" if dead else f"after {timeout} s"
            raise AssertionError(
                f"{len(missing)} of {len(expected)} requests unanswered ({what}): "
                f"{sorted(missing)[:5]}\n" + "\n".join(child.diagnosis() for child in watch)
            )
        # Wake on the next reply, or every few seconds to look at the services.
        with contextlib.suppress(AssertionError):
            collector.wait_for(len(replies) + 1, min(remaining, 2.0))


def wait_total(collectors: Sequence[ReplyCollector], count: int, timeout: float) -> int:
    """Block until the collectors together hold at least `count` replies (several reply
    topics); returns the total seen, AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        total = sum(len(collector.replies) for collector in collectors)
        if total >= count:
            return total
        if time.monotonic() > deadline:
            raise AssertionError(f"{total} replies of {count} within {timeout} s")
        # Wake on the first collector's next reply, or soon to look at the others.
        first = collectors[0]
        with contextlib.suppress(AssertionError):
            first.wait_for(len(first.replies) + 1, 0.005)


def echoed(reply: Reply) -> str | None:
    """The request text a normal reply answers (the scripted server echoes it)."""
    text = reply.value.get("response")
    if isinstance(text, str) and text.startswith("echo: "):
        return text[len("echo: ") :]
    return None


def error_code(reply: Reply) -> str | None:
    error = reply.value.get("error")
    return error.get("code") if isinstance(error, dict) else None


def produce_raw(
    bootstrap: str,
    topic: str,
    messages: Iterable[tuple[bytes | None, bytes | None]],
    *,
    max_bytes: int = 32 * 1024 * 1024,
) -> dict[int, int]:
    """Produce (key, value) pairs as given, large ones included; returns per partition
    the offset after the last message written."""
    ends: dict[int, int] = {}

    def delivered(err: Any, message: Any) -> None:
        assert err is None, f"message not delivered: {err}"
        partition, offset = message.partition(), message.offset()
        ends[partition] = max(ends.get(partition, 0), offset + 1)

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.max.bytes": max_bytes,
        }
    )
    for key, value in messages:
        producer.produce(topic, key=key, value=value, on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(60) == 0, "messages not delivered"
    return ends


def leaks(sources: Mapping[str, str], secrets: Iterable[str]) -> list[str]:
    """Which source names contain which secret (empty when nothing leaked)."""
    return [
        f"{secret[:6]}… in {name}"
        for name, text in sources.items()
        for secret in secrets
        if secret and secret in text
    ]


def reply_texts(replies: Iterable[Reply]) -> str:
    """Every reply's value and headers, as one text to scan."""
    parts = []
    for reply in replies:
        parts.append(orjson.dumps(reply.value).decode())
        parts.extend(f"{k}={v!r}" for k, v in reply.headers.items())
    return "\n".join(parts)


def error_reply_problems(replies: Iterable[Reply]) -> list[str]:
    """Error replies that carry a stack trace, an upstream body or an internal address."""
    problems: list[str] = []
    for reply in replies:
        error = reply.value.get("error")
        if not isinstance(error, dict):
            continue
        text = orjson.dumps(error).decode()
        problems.extend(
            f"{reply.key}: {bad!r} in {text[:200]}" for bad in FORBIDDEN_IN_ERRORS if bad in text
        )
    return problems


def scan_service(
    children: Iterable[ChildService], replies: Iterable[Reply], secrets: Iterable[str]
) -> list[str]:
    """Secrets in logs, replies, headers, metrics or health bodies; bad error replies."""
    replies = list(replies)
    sources = {"replies": reply_texts(replies)}
    for index, child in enumerate(children):
        sources[f"log {index}"] = child.log_text
        if child.alive:
            sources[f"metrics {index}"] = child.get("/metrics")[1]
            sources[f"healthz {index}"] = child.get("/healthz")[1]
            sources[f"readyz {index}"] = child.get("/readyz")[1]
    return leaks(sources, list(secrets)) + error_reply_problems(replies)
