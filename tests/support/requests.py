"""The decoder configuration the unit tests share: small limits, two allowed models."""

from __future__ import annotations

import dataclasses
from typing import Any

from chater_gpt.contracts import RequestDefaults
from chater_gpt.images import ImageLimits

BASE_DEFAULTS = RequestDefaults(
    model="gpt-4o-mini",
    vision_model="gpt-4o",
    allowed_models=frozenset({"gpt-4o-mini", "gpt-4o"}),
    max_tokens=500,
    max_tokens_cap=4096,
    temperature=0.7,
    max_payload_bytes=64 * 1024,
    max_message_chars=2000,
    images=ImageLimits(max_images=2, max_image_bytes=200_000, max_image_pixels=4_000_000),
)


def request_defaults(*, max_image_bytes: int | None = None, **changes: Any) -> RequestDefaults:
    """BASE_DEFAULTS with some fields changed (and, optionally, the image byte limit)."""
    defaults = dataclasses.replace(BASE_DEFAULTS, **changes)
    if max_image_bytes is not None:
        images = dataclasses.replace(defaults.images, max_image_bytes=max_image_bytes)
        defaults = dataclasses.replace(defaults, images=images)
    return defaults
