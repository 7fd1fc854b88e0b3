"""MODEL_CATALOGUE_FILE: models added to the shipped catalogue, or shipped ones changed.

YAML or JSON (by the file's suffix), read with `config_files`:

    models:
      gpt-4o-mini:                    # a known model (or a snapshot of one): the fields
                                      # given replace its own
        prices: {input: 0.15, output: 0.60, cached_input: 0.075}
      llama-3.1-8b-instruct:          # a new model: provider and context_window required
        provider: openai              # openai | anthropic | gemini | koboldcpp
        context_window: 131072
        max_output: 8192              # optional
        vision: false                 # default true
        json: true                    # default true
        prices: {input: 0, output: 0} # USD per million tokens; cached_input optional
        long_context:                 # optional: a prompt over `above` tokens pays these
          above: 200000
          prices: {input: 0.2, output: 0.4}
        price_changes:                # optional: new prices from a UTC day on
          - effective: 2027-01-01
            prices: {input: 0.1, output: 0.2}
            long_context: {above: 200000, prices: {input: 0.2, output: 0.4}}  # optional

An entry that gives `prices` gives the model's whole price schedule: the shipped
model's own `price_changes` are dropped unless the entry lists its own.

Validated at start-up: a bad entry stops the service with one line naming the entry
(`MODEL_CATALOGUE_FILE: model 'x': ...`), never echoing a value.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chater_gpt.catalogue.model import (
    LongContext,
    ModelCatalogue,
    ModelInfo,
    PriceChange,
    Prices,
    Provider,
)
from chater_gpt.config_files import describe_problems, parse_document, read_document
from chater_gpt.errors import ConfigError

VARIABLE = "MODEL_CATALOGUE_FILE"


class _PricesEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)

    def value(self) -> Prices:
        return Prices(self.input, self.output, self.cached_input)


class _LongContextEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    above: int = Field(ge=1)
    prices: _PricesEntry

    def value(self) -> LongContext:
        return LongContext(self.above, self.prices.value())


class _PriceChangeEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    effective: date
    prices: _PricesEntry
    long_context: _LongContextEntry | None = None

    def value(self) -> PriceChange:
        tier = self.long_context.value() if self.long_context else None
        return PriceChange(self.effective, self.prices.value(), tier)


class _ModelEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Provider | None = None
    context_window: int | None = Field(default=None, ge=1)
    max_output: int | None = Field(default=None, ge=1)
    vision: bool | None = None
    json_: bool | None = Field(default=None, alias="json")
    prices: _PricesEntry | None = None
    long_context: _LongContextEntry | None = None
    price_changes: list[_PriceChangeEntry] | None = Field(default=None, max_length=100)


class _CatalogueDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    models: dict[str, dict[str, Any]] = Field(default_factory=dict)


def parse_catalogue(text: str, *, yaml: bool, base: ModelCatalogue) -> ModelCatalogue:
    """`base` with the document's models applied, or ConfigError naming the bad entry."""
    data = parse_document(text, yaml=yaml, variable=VARIABLE)
    try:
        document = _CatalogueDocument.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise ConfigError(f"{VARIABLE}: {describe_problems(exc)}") from None
    models: dict[str, ModelInfo] = {}
    for name, raw in document.models.items():
        key = name.strip().lower()
        if not key or len(key) > 100:
            raise ConfigError(f"{VARIABLE}: a model name must have 1 to 100 characters")
        if key in models:
            raise ConfigError(f"{VARIABLE}: model {name!r} is defined twice")
        models[key] = _model(name, raw, base.lookup(key))
    return base.with_models(models)


def load_catalogue(path: Path, *, base: ModelCatalogue) -> ModelCatalogue:
    text, yaml = read_document(path, variable=VARIABLE)
    return parse_catalogue(text, yaml=yaml, base=base)


def _model(name: str, raw: dict[str, Any], shipped: ModelInfo | None) -> ModelInfo:
    label = f"{VARIABLE}: model {name!r}"
    try:
        entry = _ModelEntry.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{label}: {describe_problems(exc)}") from None
    changes: dict[str, Any] = {
        "provider": entry.provider,
        "context_window": entry.context_window,
        "max_output": entry.max_output,
        "vision": entry.vision,
        "json": entry.json_,
        "prices": entry.prices.value() if entry.prices else None,
        "long_context": entry.long_context.value() if entry.long_context else None,
        "price_changes": _schedule(label, entry),
    }
    given = {field: value for field, value in changes.items() if value is not None}
    if shipped is not None:
        return dataclasses.replace(shipped, **given)
    missing = [field for field in ("provider", "context_window") if field not in given]
    if missing:
        raise ConfigError(f"{label}: a new model needs {' and '.join(missing)}")
    return ModelInfo(**given)


def _schedule(label: str, entry: _ModelEntry) -> tuple[PriceChange, ...] | None:
    """The entry's price changes by day; `()` when it gives prices alone (they replace
    the shipped schedule); None when it says nothing of prices."""
    if entry.price_changes is None:
        return () if entry.prices is not None else None
    changes = sorted((change.value() for change in entry.price_changes), key=_effective)
    days = [change.effective for change in changes]
    if len(set(days)) != len(days):
        raise ConfigError(f"{label}: two price_changes take effect on one day")
    return tuple(changes)


def _effective(change: PriceChange) -> date:
    return change.effective
