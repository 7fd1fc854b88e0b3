"""The README's first command does what it says: `python main.py demo` (what `make demo`
runs) starts the embedded broker and the local LLM, runs the service, and prints every
reply with its usage, on a machine with nothing else running and no keys."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.service_runner import ROOT

pytestmark = [pytest.mark.llm, pytest.mark.slow]


def test_the_demo_answers_every_request_and_prints_the_usage() -> None:
    # None of the service's variables: the demo must not depend on the environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "KAFKA_"))}
    done = subprocess.run(
        [sys.executable, "main.py", "demo", "--requests", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    # Two conversation turns, the legacy request and the malformed message.
    assert "4/4 replies" in out, out
    assert out.count("usage:  prompt=") == 3, out
    assert "ERROR invalid_json" in out, out
