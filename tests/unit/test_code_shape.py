"""The shape the code keeps (issue 12): short modules and small constructors, so each
part stays readable alone. A module that outgrows this is split, not exempted."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "chater_gpt"
MAX_MODULE_LINES = 400
MAX_CONSTRUCTOR_PARAMETERS = 8


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(PACKAGE)): lines
        for path in modules()
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, long


def constructor_sizes(path: Path) -> dict[str, int]:
    sizes = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    args = item.args
                    count = len(args.posonlyargs) + len(args.args) - 1 + len(args.kwonlyargs)
                    sizes[f"{path.relative_to(PACKAGE)}:{node.name}"] = count
    return sizes


def test_no_constructor_takes_more_than_8_parameters() -> None:
    large = {
        name: count
        for path in modules()
        for name, count in constructor_sizes(path).items()
        if count > MAX_CONSTRUCTOR_PARAMETERS
    }
    assert not large, large


def test_the_check_sees_constructors() -> None:
    sizes = constructor_sizes(PACKAGE / "kafka" / "pipeline.py")
    assert sizes["kafka/pipeline.py:Pipeline"] == 8


def test_every_module_but_the_entry_points_and_the_wiring_is_kept_from_settings() -> None:
    # The "settings" import contract lists its sources one by one; a new top-level module
    # must be added there (or be an entry point), never slip past it.
    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    contract = next(c for c in config["tool"]["importlinter"]["contracts"] if c["id"] == "settings")
    sources = {name.removeprefix("chater_gpt.") for name in contract["source_modules"]}
    top_level = {
        path.stem if path.is_file() else path.name
        for path in PACKAGE.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__")
        or (path.is_dir() and (path / "__init__.py").exists())
    }
    readers = {"cli", "wiring", "usage_cli", "dev", "config", "config_gateway", "__main__"}
    assert sources == top_level - readers
