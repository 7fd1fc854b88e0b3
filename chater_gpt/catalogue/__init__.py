"""The model catalogue: one table, model → provider, context window, vision and JSON
support, and list prices (input, output, cached input, per million tokens).

It routes requests to providers (`backends.router.ModelRouter`), gives the context
builder each model's window, and prices every call (`ModelCatalogue.cost_usd`). The
shipped table (`shipped.py`, with its sources) is extended or overridden by
MODEL_CATALOGUE_FILE (`file.py`), read and validated at start-up.
"""

from __future__ import annotations

from pathlib import Path

from chater_gpt.catalogue.file import VARIABLE, parse_catalogue
from chater_gpt.catalogue.file import load_catalogue as _load_file
from chater_gpt.catalogue.model import (
    LongContext,
    ModelCatalogue,
    ModelInfo,
    PriceChange,
    Prices,
    Provider,
    base_name,
)
from chater_gpt.catalogue.shipped import SHIPPED_MODELS

DEFAULT_CATALOGUE = ModelCatalogue(SHIPPED_MODELS)

__all__ = [
    "DEFAULT_CATALOGUE",
    "VARIABLE",
    "LongContext",
    "ModelCatalogue",
    "ModelInfo",
    "PriceChange",
    "Prices",
    "Provider",
    "base_name",
    "load_catalogue",
    "parse_catalogue",
]


def load_catalogue(path: Path | None) -> ModelCatalogue:
    """The shipped catalogue with MODEL_CATALOGUE_FILE applied (when given); raises
    ConfigError naming the bad entry."""
    if path is None:
        return DEFAULT_CATALOGUE
    return _load_file(path, base=DEFAULT_CATALOGUE)
