"""The HTTP gateway's end-to-end parts, shared by the tests/integration/test_gateway*.py
modules: the gateway as a child process (`python main.py gateway`), the service with one
gateway in front of it, waiting for a child's readiness, reading its metrics, and an API
keys file."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chater_gpt.dev.ports import free_port
from tests.support.service_runner import ServiceProcess

READY_TIMEOUT = 60.0


def wait_ready(port: int, process: ServiceProcess, timeout: float = READY_TIMEOUT) -> None:
    """Until the child answers /readyz with 200: a child process has no event to await,
    its readiness endpoint is the event. Fails with its log when it exits or stays down."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.proc is not None
        if process.proc.poll() is not None:
            raise AssertionError(f"process exited:\n{process.log_text[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"not ready within {timeout} s:\n{process.log_text[-3000:]}")


def get_json(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return json.loads(r.read())


def metric(port: int, name: str, **labels: str) -> float:
    """A sample of a process's `/metrics`: the first of `name` whose labels include
    `labels`; 0 when there is none."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    for line in text.splitlines():
        found = re.match(rf"^{name}(?:{{([^}}]*)}})? ([0-9.e+]+)$", line)
        if found is None:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', found.group(1) or ""))
        if labels.items() <= have.items():
            return float(found.group(2))
    return 0.0


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll another process's state (a counter, a probe): there is no event to await."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


def write_keys_file(path: Path, keys: Mapping[str, str | None]) -> Path:
    """A GATEWAY_API_KEYS_FILE: the SHA-256 of each key → its tenant (None: revoked)."""
    digests = {hashlib.sha256(key.encode()).hexdigest(): tenant for key, tenant in keys.items()}
    path.write_text(json.dumps({"keys": digests}))
    return path


def gateway_settings(
    common: Mapping[str, Any], *, port: int, instance_id: str, **overrides: Any
) -> dict[str, Any]:
    """A gateway child's settings: the service's (broker, topics, reply prefix), its own
    port and instance id on 127.0.0.1, and no shutdown grace (tests stop it at once)."""
    return {
        **common,
        "gateway_port": port,
        "gateway_host": "127.0.0.1",
        "gateway_instance_id": instance_id,
        "gateway_timeout_seconds": 20,
        "gateway_shutdown_grace_seconds": 0,
        **overrides,
    }


@dataclass
class GatewayProc:
    name: str
    port: int
    settings: dict[str, Any]
    log_path: Path
    process: ServiceProcess | None = None

    def start(self) -> GatewayProc:
        self.launch()
        return self.wait_ready()

    def launch(self) -> GatewayProc:
        """Start the process without waiting (other parts may start meanwhile)."""
        self.process = ServiceProcess(self.settings, self.log_path, ("gateway",)).start()
        return self

    def wait_ready(self) -> GatewayProc:
        assert self.process is not None, "launch() first"
        wait_ready(self.port, self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"


@contextlib.contextmanager
def served_gateway(
    common: Mapping[str, Any], logs: Path, *, name: str, instance_id: str, **overrides: Any
) -> Iterator[GatewayProc]:
    """The service (`python main.py run`, `common` without its metrics port) and one
    gateway in front of it, started together (the gateway needs the broker, not the
    core) and both ready; both stopped after."""
    service_port = free_port()
    core = ServiceProcess({**common, "metrics_port": service_port}, logs / "service.log")
    gateway: GatewayProc | None = None
    try:
        core.start()
        port = free_port()
        settings = gateway_settings(common, port=port, instance_id=instance_id, **overrides)
        gateway = GatewayProc(name, port, settings, logs / "gateway.log").launch()
        wait_ready(service_port, core)
        gateway.wait_ready()
        yield gateway
    finally:
        if gateway is not None:
            gateway.stop()
        core.stop()
