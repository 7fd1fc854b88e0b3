"""What the service itself says about the paths it serves and the settings that are secret,
read from its code so the deployment files are checked against the real thing."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from pydantic import SecretStr

from chater_gpt.config import Settings

# The agreed contract, used only while the health server module does not exist.
AGREED_ROUTES = ("/livez", "/readyz", "/healthz", "/metrics")


def served_routes() -> tuple[str, ...]:
    """The paths the health server serves: its ROUTES, else the paths in its source."""
    try:
        from chater_gpt.observability import health
    except ImportError:
        return AGREED_ROUTES
    routes = getattr(health, "ROUTES", None)
    if routes is not None:
        return tuple(routes)
    source = Path(health.__file__).read_text()
    return tuple(sorted(set(re.findall(r"""["'](/[a-z]+)["']""", source))))


def secret_settings() -> frozenset[str]:
    """Environment variables whose setting is a SecretStr (README "Configuration")."""
    return frozenset(
        name.upper()
        for name, field in Settings.model_fields.items()
        if SecretStr in (field.annotation, *typing.get_args(field.annotation))
    )
