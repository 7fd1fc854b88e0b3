"""Typed access to one level of a CR spec, and the Secret key reference (pure).

Shared by spec.py and gateway_spec.py; every error names the full field path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chater_operator.errors import InvalidSpecError


@dataclass(frozen=True)
class SecretKeyRef:
    name: str
    key: str


class Reader:
    """Typed access to one level of the spec; errors name the full field path."""

    def __init__(self, raw: Any, path: str) -> None:
        if not isinstance(raw, Mapping):
            raise InvalidSpecError(f"{path} must be an object")
        self._raw: Mapping[str, Any] = raw
        self._path = path

    def fail(self, key: str, what: str) -> InvalidSpecError:
        return InvalidSpecError(f"{self._path}.{key} must be {what}")

    def string(self, key: str) -> str | None:
        value = self._raw.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.fail(key, "a string")
        return value

    def required_string(self, key: str) -> str:
        value = self.string(key)
        if value is None:
            raise self.fail(key, "a non-empty string")
        return value

    def choice(self, key: str, allowed: tuple[str, ...], default: str) -> str:
        return self.optional_choice(key, allowed) or default

    def optional_choice(self, key: str, allowed: tuple[str, ...]) -> str | None:
        value = self.string(key)
        if value is not None and value not in allowed:
            raise self.fail(key, "one of " + ", ".join(allowed))
        return value

    def optional_integer(
        self, key: str, *, minimum: int = 0, maximum: int | None = None
    ) -> int | None:
        value = self._raw.get(key)
        if value is None:
            return None
        # bool is an int in Python, never in the schema.
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(key, "an integer")
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"at least {minimum}" + (f" and at most {maximum}" if maximum else "")
            raise self.fail(key, bounds)
        return value

    def optional_number(self, key: str, *, minimum: float) -> float | None:
        value = self._raw.get(key)
        if value is None:
            return None
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.fail(key, "a number")
        if not math.isfinite(value) or value < minimum:
            raise self.fail(key, f"a number of at least {minimum:g}")
        return value

    def optional_positive_number(self, key: str) -> float | None:
        value = self._raw.get(key)
        if value is None:
            return None
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.fail(key, "a number")
        if not math.isfinite(value) or value <= 0:
            raise self.fail(key, "a number above 0")
        return value

    def integer(
        self, key: str, default: int, *, minimum: int = 0, maximum: int | None = None
    ) -> int:
        value = self.optional_integer(key, minimum=minimum, maximum=maximum)
        return default if value is None else value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._raw.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, "true or false")
        return value

    def mapping(self, key: str) -> Mapping[str, Any]:
        value = self._raw.get(key) or {}
        if not isinstance(value, Mapping):
            raise self.fail(key, "an object")
        return value

    def list(self, key: str) -> list[Any]:
        value = self._raw.get(key) or []
        if not isinstance(value, list):
            raise self.fail(key, "a list")
        return value

    def secret_key_ref(self, key: str, default: SecretKeyRef | None) -> SecretKeyRef | None:
        raw = self.mapping(key)
        if not raw:
            return default
        reader = Reader(raw, f"{self._path}.{key}")
        return SecretKeyRef(reader.required_string("name"), reader.required_string("key"))
