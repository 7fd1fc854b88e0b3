"""A short form of the load test (tests/load/load_test.py), so the harness itself is
checked in CI: a few hundred requests through the real service, nothing lost, no
duplicates, error replies counted by code; and a run with nobody answering must
report every request lost."""

from __future__ import annotations

import itertools
import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Broker, Topics, service_config
from tests.load._stack import TANSU_FETCH_WAIT_MS
from tests.load._target import KafkaTarget
from tests.load.load_test import LoadClients, LoadSpec, main, run_load, warm_up
from tests.support.scripted_openai import Fault, ScriptedOpenAI
from tests.support.service_runner import ServiceProcess

pytestmark = [pytest.mark.loadsmoke, pytest.mark.timeout(120)]


class EveryNth:
    """A fault on every n-th backend call, counted, so the test knows how many error
    replies to expect."""

    def __init__(self, n: int) -> None:
        self._calls = itertools.count(1)
        self._n = n
        self._lock = threading.Lock()
        self.injected = 0

    def __call__(self) -> Fault | None:
        with self._lock:
            if next(self._calls) % self._n:
                return None
            self.injected += 1
            return Fault(status=500)


@pytest.fixture
def service(
    broker: Broker, topics: Topics, scripted: ScriptedOpenAI, tmp_path: Path
) -> Iterator[ServiceProcess]:
    config = service_config(
        broker,
        topics,
        scripted,
        max_retries=0,
        breaker_fail_max=10_000,  # the injected 500s must reach the replies, not the breaker
        kafka_consumer_config={"fetch.wait.max.ms": TANSU_FETCH_WAIT_MS},
        log_level="WARNING",
    )
    process = ServiceProcess(config, tmp_path / "service.log").start()
    yield process
    process.stop()


def test_hundreds_of_requests_all_answered_once_with_errors_counted_by_code(
    broker: Broker, topics: Topics, scripted: ScriptedOpenAI, service: ServiceProcess
) -> None:
    scripted.latency = 0.02
    faults = EveryNth(25)
    scripted.fault_fn = faults
    target = KafkaTarget(broker.bootstrap, topics.request, topics.response)
    with LoadClients(target) as clients:
        warm_up(clients, timeout=60)
        closed = run_load(
            clients, LoadSpec(requests=300, concurrent=32, users=40, payload="mixed", timeout=30)
        )
        opened = run_load(clients, LoadSpec(requests=60, rate=60, users=60, timeout=30))

    for result in (closed, opened):
        assert result.clean, result.summary()
        assert result.duplicates == 0
        assert result.answered == result.requested
        assert len(result.samples) == result.requested
    assert closed.latency.p50 >= 0.02  # nothing answers faster than the backend
    # Every injected failure came back as exactly one error reply with its code.
    assert faults.injected > 0
    codes = Counter(closed.errors_by_code) + Counter(opened.errors_by_code)
    assert codes == {"backend_error": faults.injected}


def test_requests_nobody_answers_are_reported_lost(broker: Broker, topics: Topics) -> None:
    target = KafkaTarget(broker.bootstrap, topics.request, topics.response)
    with LoadClients(target) as clients:
        result = run_load(clients, LoadSpec(requests=5, concurrent=5, timeout=1.0, settle=0))
    assert result.sent == 5
    assert result.lost == 5
    assert result.answered == 0
    assert not result.clean


def test_the_script_runs_the_embedded_stack_and_writes_json_and_a_plot(tmp_path: Path) -> None:
    report, picture = tmp_path / "run.json", tmp_path / "run.png"
    code = main(
        [
            "--requests=150",
            "--concurrent=20",
            "--users=30",
            "--backend-latency=fixed:0.01",
            "--quiet",
            f"--json={report}",
            f"--plot={picture}",
            f"--workdir={tmp_path / 'stack'}",
        ]
    )
    assert code == 0
    result = json.loads(report.read_text())["result"]
    assert (result["answered"], result["lost"], result["duplicates"]) == (150, 0, 0)
    assert picture.read_bytes()[:4] == b"\x89PNG"
