"""A private redis-server for fault tests: its own port, optional password, stoppable.

Outage tests stop and restart Redis; they must never touch the shared server on 6379
that other tests use. The configuration (with the password) goes through a file, so
the password is not on the process list. `stop(save=True)` writes an RDB snapshot
first, so a restart on the same port comes back with the data, as a real Redis with
persistence would.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis

from chater_gpt.dev.ports import free_port


def redis_server_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        raise RuntimeError("redis-server is not installed (apt-get install -y redis-server)")
    return path


class PrivateRedis:
    """One redis-server process on 127.0.0.1; a context manager that always stops it."""

    def __init__(self, workdir: Path, *, password: str | None = None) -> None:
        self.port = free_port()
        self.password = password
        self._workdir = workdir
        self._proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, password=self.password, socket_timeout=5
        )

    def start(self, timeout: float = 10.0) -> PrivateRedis:
        """Start (or restart, on the same port and data directory) and wait for PING."""
        assert not self.running, "already running"
        config = self._workdir / "redis.conf"
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            'save ""',
            "appendonly no",
            f"dir {self._workdir}",
            "dbfilename dump.rdb",
            f"logfile {self._workdir / 'redis.log'}",
        ]
        if self.password:
            lines.append(f"requirepass {self.password}")
        config.write_text("\n".join(lines) + "\n")
        self._proc = subprocess.Popen(
            [redis_server_binary(), str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        self._wait_for_ping(timeout)
        return self

    def _wait_for_ping(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client = self.client()
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"private redis on {self.port} did not start") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self, *, save: bool = True) -> None:
        """Shut down (after an RDB snapshot when `save`); returns once the port is free."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        if save:
            client = self.client()
            try:
                client.shutdown(save=True)
            except redis.RedisError:
                proc.terminate()
            finally:
                client.close()
        else:
            proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def __enter__(self) -> PrivateRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop(save=False)
