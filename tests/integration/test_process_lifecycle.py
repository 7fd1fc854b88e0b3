"""The service as a real process (`python main.py run`): SIGKILL loses nothing (what was
not committed is replayed), SIGTERM drains, commits and exits 0 within the grace period,
and bad configuration stops it at once with a clear message."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import (
    FAKE_API_KEY,
    Broker,
    SettingsFactory,
    Topics,
    service_config,
)
from tests.support.scripted_openai import ScriptedOpenAI
from tests.support.service_runner import (
    ROOT,
    ReplyCollector,
    ServiceProcess,
    committed_offsets,
    envelope,
    produce_tracked,
    settings_env,
)


def requests(count: int, keys: int) -> list[tuple[str, bytes]]:
    return [envelope(f"k{i % keys}-r{i}", message=f"request {i}") for i in range(count)]


def test_sigkill_with_hundreds_in_flight_loses_nothing(
    broker: Broker,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
    tmp_path: Path,
) -> None:
    scripted.latency = 0.3
    config = service_config(broker, topics, scripted, max_in_flight=300)
    messages = requests(600, keys=600)
    ends = produce_tracked(broker.bootstrap, topics.request, messages)

    first = ServiceProcess(config, tmp_path / "first.log").start()
    try:
        replies.wait_for(100, timeout=60)
        scripted.wait_until(lambda server: server.concurrent >= 100, timeout=30)
        first.kill()  # with hundreds of requests in flight
    finally:
        first.stop()
    answered_before_crash = len({r.key for r in replies.replies})
    assert answered_before_crash < len(messages)

    second = ServiceProcess(config, tmp_path / "second.log").start()
    try:
        by_key = replies.wait_for_keys({key for key, _ in messages}, timeout=90)
        code, _ = second.terminate(timeout=30)
        assert code == 0, second.log_text[-2000:]
    finally:
        second.stop()

    errors = [reply.value for r in by_key.values() for reply in r if "response" not in reply.value]
    assert not errors, errors[:3]
    # Every partition committed exactly up to its end: no skipped and no pending offset.
    assert committed_offsets(broker.bootstrap, topics.group, topics.request) == {
        partition: ends.get(partition, -1001) for partition in range(3)
    }


def test_sigterm_under_load_drains_commits_and_exits_zero(
    broker: Broker,
    topics: Topics,
    scripted: ScriptedOpenAI,
    replies: ReplyCollector,
    tmp_path: Path,
) -> None:
    scripted.latency = 0.3
    grace = 10
    config = service_config(
        broker, topics, scripted, max_in_flight=200, shutdown_grace_seconds=grace
    )
    messages = requests(2000, keys=500)
    ends = produce_tracked(broker.bootstrap, topics.request, messages)

    service = ServiceProcess(config, tmp_path / "service.log").start()
    try:
        replies.wait_for(200, timeout=60)
        scripted.wait_until(lambda server: server.concurrent >= 100, timeout=30)
        code, took = service.terminate(timeout=grace + 20)  # with ~200 requests in flight
    finally:
        service.stop()
    assert code == 0, service.log_text[-2000:]
    assert took < grace + 5
    answered = {r.key for r in replies.replies}
    assert len(answered) < len(messages)
    committed = committed_offsets(broker.bootstrap, topics.group, topics.request)
    # What was committed was answered: the drain finished the work it had started.
    assert sum(max(0, offset) for offset in committed.values()) <= len(answered)

    restarted = ServiceProcess(config, tmp_path / "restarted.log").start()
    try:
        replies.wait_for_keys({key for key, _ in messages}, timeout=90)
        assert restarted.terminate(timeout=30)[0] == 0
    finally:
        restarted.stop()
    # Drained work was not redone: one LLM call per request.
    assert scripted.calls == len(messages)
    assert committed_offsets(broker.bootstrap, topics.group, topics.request) == {
        partition: ends.get(partition, -1001) for partition in range(3)
    }


def test_invalid_configuration_exits_nonzero_naming_the_variable() -> None:
    env = settings_env(
        {"bootstrap_server": "127.0.0.1:1", "max_in_flight": "zero", "openai_api_key": FAKE_API_KEY}
    )
    done = subprocess.run(
        [sys.executable, "main.py", "run"], cwd=ROOT, env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 2
    err = done.stderr.decode()
    assert "MAX_IN_FLIGHT" in err
    assert FAKE_API_KEY not in err + done.stdout.decode()
    assert len(err.strip().splitlines()) == 1

    missing = settings_env({"openai_api_key": FAKE_API_KEY})
    done = subprocess.run(
        [sys.executable, "main.py", "run"], cwd=ROOT, env=missing, capture_output=True, timeout=60
    )
    assert done.returncode == 2
    assert "BOOTSTRAP_SERVER" in done.stderr.decode()


async def test_a_part_that_can_no_longer_work_stops_the_service_with_exit_code_1(
    make_settings: SettingsFactory,
) -> None:
    # What a fatal reply-producer error does: stop (draining what it can), exit 1, and
    # let the restart replay whatever was not acknowledged.
    from chater_gpt.wiring import build_service

    settings = make_settings(shutdown_grace_seconds=2)
    service = build_service(settings)
    run = asyncio.create_task(service.run(install_signal_handlers=False))
    await service.wait_assigned(30)
    service.fail("reply producer: fatal error (test)")
    assert await asyncio.wait_for(run, 30) == 1
