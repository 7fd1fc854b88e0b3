"""Configuration documents (the tenant policy, the routes file): YAML or JSON text read
and parsed, every failure one `ConfigError` naming the variable, never a value."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from chater_gpt.errors import ConfigError


def parse_document(text: str, *, yaml: bool, variable: str) -> Any:
    """The YAML or JSON document in `text` (None for an empty YAML file)."""
    try:
        return _load_yaml(text) if yaml else json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{variable}: not valid {'YAML' if yaml else 'JSON'}") from exc


def read_document(path: Path, *, variable: str) -> tuple[str, bool]:
    """The file's text, and whether it is YAML (by its suffix)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read {path.name}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{variable}: {path.name} is not UTF-8 text") from exc
    return text, path.suffix.lower() in (".yaml", ".yml")


def describe_problems(exc: ValidationError, *, limit: int = 3) -> str:
    """Where each problem is and what it is, without the offending values."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'document'}: {e['msg']}"
        for e in exc.errors(include_input=False, include_url=False)[:limit]
    )


def _load_yaml(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from exc


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem of the settings, naming the environment variable, never the
    value."""
    lines = []
    for item in error.errors(include_input=False, include_url=False):
        loc = "_".join(str(part) for part in item["loc"]).upper()
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"{loc}: {message}" if loc else message)
    return "invalid configuration: " + "; ".join(lines)
