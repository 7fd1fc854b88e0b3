"""The README's first command does what it says: `python main.py demo` (what `make demo`
runs) starts the embedded broker and the local LLM, runs the service, and prints every
reply with its usage, on a machine with nothing else running and no keys."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.support.service_runner import ROOT, settings_env

pytestmark = [pytest.mark.llm, pytest.mark.slow]


def test_the_demo_answers_every_request_and_prints_the_usage() -> None:
    done = subprocess.run(
        [sys.executable, "main.py", "demo", "--requests", "2"],
        cwd=ROOT,
        # None of the service's variables: the demo must not depend on the environment.
        env=settings_env({}),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    # Two conversation turns, the legacy request, the JSON answer, the malformed message
    # and the broken photo.
    assert "6/6 replies" in out, out
    assert out.count("usage:  prompt=") == 6, out  # 4 Kafka answers, the HTTP chat and job
    assert "[HTTP POST /v1/chat/completions, stream]" in out, out
    assert "HTTP 200" in out, out
    # The local LLM's answer streamed through Kafka and the gateway, piece by piece.
    streamed = re.search(r"(\d+) chunks streamed through Kafka", out)
    assert streamed is not None, out
    assert int(streamed.group(1)) > 1, out
    # The job went through the job API and the core: its whole history, and its answer.
    assert "job completed, " in out, out
    assert "queued -> processing -> completed" in out, out
    assert re.search(r"\[HTTP POST /event\] .*\n  completion: \S", out), out
    assert out.count("cost: $0.000000") == 4, out  # the local LLM is in no price list
    assert "ERROR invalid_json" in out, out
    assert "ERROR invalid_image" in out, out
    json_answer = next(line for line in out.splitlines() if '"weight_kg"' in line)
    document = json.loads(json_answer.split("answer:", 1)[1])
    assert set(document) == {"name", "weight_kg"}, out
    # librdkafka is quiet: no client is given properties it ignores (CONFWARN), and no
    # client outlives the embedded broker (connection FAILs at shutdown).
    assert "CONFWARN" not in done.stderr, done.stderr[-3000:]
    assert "|FAIL|" not in done.stderr, done.stderr[-3000:]
