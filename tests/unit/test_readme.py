"""The README documents what the code has: every setting, metric, error code and route."""

from __future__ import annotations

from pathlib import Path

from chater_gpt.config import Settings
from chater_gpt.errors import ErrorCode
from chater_gpt.observability.health import ROUTES
from chater_gpt.observability.metrics import METRIC_DOCS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [name.upper() for name in Settings.model_fields if name.upper() not in README]
    assert not missing


def test_every_metric_is_documented() -> None:
    assert not [name for name, _ in METRIC_DOCS if f"`{name}`" not in README]


def test_every_error_code_is_documented() -> None:
    assert not [code.value for code in ErrorCode if f"`{code.value}`" not in README]


def test_every_health_route_is_documented() -> None:
    assert not [route for route in ROUTES if f"`{route}`" not in README]
