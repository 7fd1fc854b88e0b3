"""The allocator settings the service applies at start-up (see chater_gpt/allocator.py);
their effect on memory is measured by fault scenario 6."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_the_settings_are_accepted_by_glibc() -> None:
    # In a child: the settings are process-wide and the test runner's own must not change.
    code = "from chater_gpt.allocator import tune_malloc; assert tune_malloc()"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
