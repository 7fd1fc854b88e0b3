"""The operator's package lives in operator/chater_operator (its own image, its own
requirements). `operator/` is put on sys.path here rather than importing through the
repository root, where a package named `operator` would shadow the standard library."""

from __future__ import annotations

import sys
from pathlib import Path

OPERATOR_DIR = str(Path(__file__).resolve().parents[3] / "operator")
if OPERATOR_DIR not in sys.path:
    sys.path.insert(0, OPERATOR_DIR)
