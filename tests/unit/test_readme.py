"""The README documents what the code has: every setting, metric, error code and route,
and the layers of the import contract."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from chater_gpt.config import Settings
from chater_gpt.errors import ErrorCode
from chater_gpt.gateway.metrics import GATEWAY_METRIC_DOCS
from chater_gpt.observability.health import ROUTES
from chater_gpt.observability.metrics import METRIC_DOCS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [name.upper() for name in Settings.model_fields if name.upper() not in README]
    assert not missing


def test_every_metric_is_documented() -> None:
    documented = [*METRIC_DOCS, *GATEWAY_METRIC_DOCS]
    assert not [name for name, _ in documented if f"`{name}`" not in README]


def test_every_error_code_is_documented() -> None:
    assert not [code.value for code in ErrorCode if f"`{code.value}`" not in README]


def test_every_health_route_is_documented() -> None:
    assert not [route for route in ROUTES if f"`{route}`" not in README]


def _normalised(layer: str) -> str:
    return " | ".join(part.strip() for part in layer.split("|"))


def contract_layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    assert contract["containers"] == ["chater_gpt"]
    return [_normalised(layer) for layer in contract["layers"]]


def readme_layers() -> list[str]:
    section = README.split("\n### Layers\n", 1)[1]
    block = re.search(r"^```[a-z]*\n(.*?)^```$", section, re.DOTALL | re.MULTILINE)
    assert block is not None, "no fenced block under ### Layers"
    return [_normalised(line) for line in block.group(1).splitlines() if line.strip()]


def test_the_readme_draws_the_layers_of_the_import_contract() -> None:
    assert readme_layers() == contract_layers()
