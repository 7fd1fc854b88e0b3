"""Run the real service in tests: in-process (asyncio task) or as a child process
(`python main.py run`, for SIGKILL/SIGTERM tests), and read its replies."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from chater_gpt.config import Settings

if TYPE_CHECKING:
    from chater_gpt.service import Service

ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def running_service(
    settings: Settings, *, assigned_timeout: float = 30
) -> AsyncIterator[Service]:
    """The service as a task of this event loop; yields once it owns its partitions."""
    from chater_gpt.wiring import build_service

    service = build_service(settings)
    task = asyncio.create_task(service.run(install_signal_handlers=False))
    try:
        await service.wait_assigned(assigned_timeout)
        yield service
    finally:
        service.request_stop()
        await asyncio.wait_for(task, settings.shutdown_grace_seconds + 30)


def settings_env(settings: Mapping[str, Any]) -> dict[str, str]:
    """Environment for a child service: the parent's, minus our variables, plus these."""
    ours = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in ours}
    for name, value in settings.items():
        if value is None:
            continue
        if isinstance(value, list | dict):
            env[name.upper()] = orjson.dumps(value).decode()
        else:
            env[name.upper()] = str(value)
    return env


class ServiceProcess:
    """`python main.py run` (or another command) in a child process, its output kept in a
    log file."""

    def __init__(
        self, settings: Mapping[str, Any], log_path: Path, command: tuple[str, ...] = ("run",)
    ) -> None:
        self._env = settings_env(settings)
        self._command = command
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "main.py", *self._command],
            cwd=ROOT,
            env=self._env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds it took to exit)."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        return code, time.monotonic() - started

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    @property
    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass(frozen=True)
class Reply:
    key: str
    value: dict[str, Any]
    headers: dict[str, bytes]
    partition: int
    offset: int


class ReplyCollector:
    """Reads a topic from the beginning in a thread (no consumer group, so no join delay);
    tests wait on the condition variable for the replies they expect."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False}
        )
        metadata = self._consumer.list_topics(topic, timeout=10)
        partitions = metadata.topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        self.replies: list[Reply] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(500, 0.1):
                if message.error() is not None:
                    continue
                reply = Reply(
                    key=(message.key() or b"").decode(),
                    value=orjson.loads(message.value() or b"{}")["value"],
                    headers=dict(message.headers() or []),
                    partition=message.partition() or 0,
                    offset=message.offset() or 0,
                )
                with self._cond:
                    self.replies.append(reply)
                    self._cond.notify_all()

    def wait_for(self, count: int, timeout: float) -> list[Reply]:
        """Block until at least `count` replies arrived; raise with what was seen otherwise."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.replies) >= count, timeout):
                raise AssertionError(f"{len(self.replies)} replies of {count} within {timeout} s")
            return list(self.replies)

    def wait_for_keys(self, keys: set[str], timeout: float) -> dict[str, list[Reply]]:
        with self._cond:
            if not self._cond.wait_for(lambda: keys <= {r.key for r in self.replies}, timeout):
                missing = keys - {r.key for r in self.replies}
                raise AssertionError(
                    f"{len(missing)} of {len(keys)} keys unanswered: {sorted(missing)[:5]}"
                )
            by_key: dict[str, list[Reply]] = {}
            for reply in self.replies:
                by_key.setdefault(reply.key, []).append(reply)
            return by_key

    async def await_keys(self, keys: set[str], timeout: float) -> dict[str, list[Reply]]:
        return await asyncio.to_thread(self.wait_for_keys, keys, timeout)

    async def await_count(self, count: int, timeout: float) -> list[Reply]:
        return await asyncio.to_thread(self.wait_for, count, timeout)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()


def produce_requests(bootstrap: str, topic: str, messages: list[tuple[str, bytes]]) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5}
    )
    for key, value in messages:
        producer.produce(topic, key=key.encode(), value=value)
    remaining = producer.flush(30)
    assert remaining == 0, f"{remaining} requests not delivered"


def envelope(key: str, **value: Any) -> tuple[str, bytes]:
    return key, orjson.dumps({"key": key, "value": value})


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return {tp.partition: tp.offset for tp in committed}
    finally:
        consumer.close()


def produce_tracked(
    bootstrap: str, topic: str, messages: list[tuple[str, bytes]]
) -> dict[int, int]:
    """Produce and return, per partition, the offset after the last request written."""
    ends: dict[int, int] = {}

    def delivered(err: Any, message: Any) -> None:
        assert err is None, f"request not delivered: {err}"
        partition, offset = message.partition(), message.offset()
        ends[partition] = max(ends.get(partition, 0), offset + 1)

    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5}
    )
    for key, value in messages:
        producer.produce(topic, key=key.encode(), value=value, on_delivery=delivered)
    assert producer.flush(30) == 0
    return ends
