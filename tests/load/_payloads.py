"""The requests a load run sends, in the documented and the legacy Chater formats, and
photo analyses for the photo route (`eater-send-photo`)."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal, get_args

import orjson

Payload = Literal["text", "vision", "mixed", "legacy", "photo", "photo-mixed"]
PAYLOADS: tuple[str, ...] = get_args(Payload)
# Payloads that send photo analyses on the photo request topic (replies on the photo
# response topic): `photo` only photos, `photo-mixed` every other request.
PHOTO_PAYLOADS: frozenset[str] = frozenset({"photo", "photo-mixed"})
Kind = Literal["text", "vision", "legacy", "photo"]


def tiny_png() -> bytes:
    """A real 32x16 PNG (Pillow is a runtime dependency of the service)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 16), (30, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def tiny_jpeg(width: int = 64, height: int = 48) -> bytes:
    """A real, small JPEG (a colour gradient, so it is not all one block)."""
    from PIL import Image

    image = Image.new("RGB", (width, height))
    image.putdata(
        [(x * 255 // width, y * 255 // height, 90) for y in range(height) for x in range(width)]
    )
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def uses_photos(payload: str) -> bool:
    return payload in PHOTO_PAYLOADS


@dataclass(frozen=True)
class RequestFactory:
    """Request `index` of run `run_id`: a unique request key (replies are matched by
    it), the conversation `user-<index % users>` of this run, and the payload kind.
    `mixed` cycles text, text, text, vision, legacy so every kind appears early;
    `photo-mixed` alternates text and photo (half the requests photo analyses)."""

    run_id: str
    payload: Payload = "text"
    users: int = 100
    photo_size: tuple[int, int] = (64, 48)  # width, height of the photo analyses' JPEG

    @property
    def key_prefix(self) -> str:
        return f"lt-{self.run_id}-"

    def key(self, index: int) -> str:
        return f"{self.key_prefix}{index}"

    def user(self, index: int) -> str:
        return f"user-{index % max(1, self.users)}-{self.run_id}@load.test"

    def kind(self, index: int) -> Kind:
        if self.payload == "mixed":
            kinds: tuple[Kind, ...] = ("text", "text", "text", "vision", "legacy")
            return kinds[index % len(kinds)]
        if self.payload == "photo-mixed":
            return "photo" if index % 2 else "text"
        return self.payload

    def is_photo(self, index: int) -> bool:
        """Request `index` goes to the photo request topic."""
        return self.kind(index) == "photo"

    @cached_property
    def _image(self) -> str:
        return base64.b64encode(tiny_png()).decode("ascii")

    @cached_property
    def _photo(self) -> str:
        return base64.b64encode(tiny_jpeg(*self.photo_size)).decode("ascii")

    def value(self, index: int) -> dict[str, Any]:
        kind = self.kind(index)
        text = f"load request {index} of run {self.run_id}: say something short."
        if kind == "legacy":
            return {"question": text, "context": "We were chatting about load tests."}
        if kind == "photo":
            return {
                "prompt": f"What food is on this photo? Answer in JSON. (request {index})",
                "photo": self._photo,
                "user_email": self.user(index),
                "image_id": f"img-{self.run_id}-{index}",
            }
        value: dict[str, Any] = {"message": text, "user_email": self.user(index)}
        if kind == "vision":
            value["message"] = f"What colour is this image? (request {index})"
            value["images"] = [self._image]
        return value

    def build(self, index: int) -> tuple[bytes, bytes]:
        """(Kafka key, value bytes) of request `index`."""
        key = self.key(index)
        return key.encode(), orjson.dumps({"key": key, "value": self.value(index)})
