"""spec.modelCatalogue -> the service's MODEL_CATALOGUE_FILE (pure; no I/O).

Inline models are checked for their outline only (fields, types, prices, price changes)
and turned from the CR's camelCase into the service's snake_case file format; whether a
new model has `provider` and `contextWindow` only the service can tell, at start-up.
A `configMapRef` names a key of the user's ConfigMap, mounted as the file; the
reconciler reads its content's hash (`ConfigMapKeyRef.content_hash`) so an edit rolls
the pods.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from chater_operator.errors import InvalidSpecError
from chater_operator.reader import Reader as _Reader

PROVIDERS = ("openai", "anthropic", "gemini", "koboldcpp")
CATALOGUE_MODEL_MAX = 100  # ... and on a model name in its catalogue file
# A ConfigMap key mounted as a file of the same name (no leading dot: the kubelet's own
# files in the volume start with "..").
_CONFIG_MAP_KEY = re.compile(r"^[-_a-zA-Z0-9][-._a-zA-Z0-9]{0,252}$")
# spec.modelCatalogue.models.<model>: the CR's camelCase -> the service's file (snake_case).
_CATALOGUE_FIELDS = {
    "provider": "provider",
    "contextWindow": "context_window",
    "maxOutput": "max_output",
    "vision": "vision",
    "json": "json",
    "prices": "prices",
    "longContext": "long_context",
    "priceChanges": "price_changes",
}
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PRICE_CHANGES_MAX = 100
_PRICE_FIELDS = {"input": "input", "output": "output", "cachedInput": "cached_input"}
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


@dataclass(frozen=True)
class ConfigMapKeyRef:
    name: str
    key: str
    # A hash of the key's content, read from the live ConfigMap by the reconciler (None
    # until read): in the pod template, so that an edit of the file rolls the pods.
    content_hash: str | None = None


@dataclass(frozen=True)
class ModelCatalogue:
    """spec.modelCatalogue: models given inline (already in the service's file format), or
    a key of a ConfigMap holding the service's file; exactly one of them."""

    models: Mapping[str, Any] | None = None
    config_map: ConfigMapKeyRef | None = None


def parse_model_catalogue(raw: Mapping[str, Any]) -> ModelCatalogue | None:
    if not raw:
        return None
    path = "spec.modelCatalogue"
    reader = _Reader(raw, path)
    if ("models" in raw) == ("configMapRef" in raw):
        raise InvalidSpecError(f"{path} must have one of models (inline) and configMapRef")
    if "configMapRef" in raw:
        ref = _Reader(raw["configMapRef"], f"{path}.configMapRef")
        name = ref.required_string("name")
        if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
            raise ref.fail("name", "a ConfigMap name (lowercase letters, digits, '-' and '.')")
        key = ref.required_string("key")
        if not _CONFIG_MAP_KEY.match(key):
            raise ref.fail("key", "a ConfigMap key: letters, digits, '-', '_' and '.', not first")
        return ModelCatalogue(config_map=ConfigMapKeyRef(name, key))
    models: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for name, entry in reader.mapping("models").items():
        label = f"{path}.models[{name!r}]"
        # The service's own rules: names of 1 to 100 characters, compared case-insensitively.
        key = name.strip().lower()
        if not 1 <= len(key) <= CATALOGUE_MODEL_MAX:
            raise InvalidSpecError(f"{label}: a model name must have 1 to 100 characters")
        if key in seen:
            raise InvalidSpecError(f"{path}.models: {seen[key]!r} and {name!r} are one model")
        seen[key] = name
        models[name] = _catalogue_entry(entry, label)
    if not models:
        raise reader.fail("models", "an object with at least one model")
    return ModelCatalogue(models=models)


def _catalogue_entry(raw: Any, label: str) -> dict[str, Any]:
    """One model of the inline catalogue, in the service's file format. Only its outline is
    checked here; the service validates the rest at start-up (a new model needs provider
    and contextWindow, which only the shipped table can tell)."""
    reader = _Reader(raw, label)
    for key in raw:
        if key not in _CATALOGUE_FIELDS:
            raise InvalidSpecError(
                f"{label}.{key} is not a catalogue field: one of " + ", ".join(_CATALOGUE_FIELDS)
            )
    optional: dict[str, Any] = {
        "provider": reader.optional_choice("provider", PROVIDERS),
        "contextWindow": reader.optional_integer("contextWindow", minimum=1),
        "maxOutput": reader.optional_integer("maxOutput", minimum=1),
        "vision": reader.boolean("vision", True) if "vision" in raw else None,
        "json": reader.boolean("json", True) if "json" in raw else None,
        "prices": _prices(raw["prices"], f"{label}.prices") if "prices" in raw else None,
    }
    if "longContext" in raw:
        optional["longContext"] = _long_context(raw["longContext"], f"{label}.longContext")
    if "priceChanges" in raw:
        optional["priceChanges"] = _price_changes(raw["priceChanges"], f"{label}.priceChanges")
    return {_CATALOGUE_FIELDS[key]: value for key, value in optional.items() if value is not None}


def _long_context(raw: Any, path: str) -> dict[str, Any]:
    tier = _Reader(raw, path)
    above = tier.optional_integer("above", minimum=1)
    if above is None:
        raise tier.fail("above", "an integer of at least 1")
    prices_raw = raw.get("prices")
    if prices_raw is None:
        raise tier.fail("prices", "an object")
    return {"above": above, "prices": _prices(prices_raw, f"{path}.prices")}


def _price_changes(raw: Any, path: str) -> list[dict[str, Any]]:
    """New prices from a UTC day on, in the service's file format (`price_changes`)."""
    if not isinstance(raw, list) or not 1 <= len(raw) <= PRICE_CHANGES_MAX:
        raise InvalidSpecError(f"{path} must be a list of 1 to {PRICE_CHANGES_MAX} changes")
    changes: list[dict[str, Any]] = []
    for index, item in enumerate(raw):
        where = f"{path}[{index}]"
        reader = _Reader(item, where)
        unknown = sorted(set(item) - {"effective", "prices", "longContext"})
        if unknown:
            raise InvalidSpecError(f"{where}.{unknown[0]} is not a field of a price change")
        effective = reader.required_string("effective")
        if not _DAY.match(effective) or not _is_day(effective):
            raise reader.fail("effective", "a day, YYYY-MM-DD (UTC)")
        if "prices" not in item:
            raise reader.fail("prices", "an object")
        change: dict[str, Any] = {
            "effective": effective,
            "prices": _prices(item["prices"], f"{where}.prices"),
        }
        if "longContext" in item:
            change["long_context"] = _long_context(item["longContext"], f"{where}.longContext")
        changes.append(change)
    days = [change["effective"] for change in changes]
    if len(set(days)) != len(days):
        raise InvalidSpecError(f"{path}: two changes take effect on one day")
    return changes


def _is_day(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _prices(raw: Any, path: str) -> dict[str, float]:
    reader = _Reader(raw, path)
    for key in raw:
        if key not in _PRICE_FIELDS:
            raise InvalidSpecError(
                f"{path}.{key} is not a price: one of " + ", ".join(_PRICE_FIELDS)
            )
    prices: dict[str, float] = {}
    for key, field_name in _PRICE_FIELDS.items():
        value = reader.optional_number(key, minimum=0)
        if value is None and key != "cachedInput":
            raise reader.fail(key, "a number of at least 0 (USD per million tokens)")
        if value is not None:
            prices[field_name] = value
    return prices
