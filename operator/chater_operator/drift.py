"""Does a live child differ from what was rendered for it? (pure)

Each rendered manifest carries a hash of itself. A child needs applying when it
is missing, when its hash differs (the spec changed, including fields that were
removed), or when a rendered field was edited in the cluster. Fields the API
server adds (defaults, status, managedFields) are not differences, so an
untouched child is never patched again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

HASH_ANNOTATION = "chater.example.com/rendered-hash"


class Drift(StrEnum):
    NONE = "none"
    MISSING = "missing"
    CHANGED = "changed"  # the spec renders differently than what was applied last
    EDITED = "edited"  # someone changed a field the operator renders


def rendered_hash(manifest: Mapping[str, Any]) -> str:
    """A stable hash of a manifest, ignoring the hash annotation itself."""
    meta = dict(manifest.get("metadata", {}))
    annotations = {k: v for k, v in meta.get("annotations", {}).items() if k != HASH_ANNOTATION}
    meta["annotations"] = annotations
    body = {**manifest, "metadata": meta}
    encoded = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:20]


def stamp(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest with its own hash in an annotation."""
    meta = manifest.setdefault("metadata", {})
    meta.setdefault("annotations", {})[HASH_ANNOTATION] = rendered_hash(manifest)
    return manifest


def compare(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> Drift:
    if live is None:
        return Drift.MISSING
    live_hash = live.get("metadata", {}).get("annotations", {}).get(HASH_ANNOTATION)
    if live_hash != desired["metadata"]["annotations"][HASH_ANNOTATION]:
        return Drift.CHANGED
    return Drift.NONE if is_subset(desired, live) else Drift.EDITED


def is_subset(desired: Any, live: Any) -> bool:
    """Every rendered value is present and equal in the live object.

    Lists must have the same length (an extra container or env var is drift);
    their items compare as subsets, since the server defaults fields inside them.
    """
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(
            key in live and is_subset(value, live[key]) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(desired) == len(live)
            and all(is_subset(d, v) for d, v in zip(desired, live, strict=True))
        )
    return bool(desired == live)
