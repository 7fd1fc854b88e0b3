"""The requests a load run sends, in the documented and the legacy Chater formats."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal, get_args

import orjson

Payload = Literal["text", "vision", "mixed", "legacy"]
PAYLOADS: tuple[str, ...] = get_args(Payload)


def tiny_png() -> bytes:
    """A real 32x16 PNG (Pillow is a runtime dependency of the service)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 16), (30, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class RequestFactory:
    """Request `index` of run `run_id`: a unique request key (replies are matched by
    it), the conversation `user-<index % users>` of this run, and the payload kind.
    `mixed` cycles text, text, text, vision, legacy so every kind appears early."""

    run_id: str
    payload: Payload = "text"
    users: int = 100

    @property
    def key_prefix(self) -> str:
        return f"lt-{self.run_id}-"

    def key(self, index: int) -> str:
        return f"{self.key_prefix}{index}"

    def user(self, index: int) -> str:
        return f"user-{index % max(1, self.users)}-{self.run_id}@load.test"

    def kind(self, index: int) -> Payload:
        if self.payload != "mixed":
            return self.payload
        kinds: tuple[Payload, ...] = ("text", "text", "text", "vision", "legacy")
        return kinds[index % len(kinds)]

    @cached_property
    def _image(self) -> str:
        return base64.b64encode(tiny_png()).decode("ascii")

    def value(self, index: int) -> dict[str, Any]:
        kind = self.kind(index)
        text = f"load request {index} of run {self.run_id}: say something short."
        if kind == "legacy":
            return {"question": text, "context": "We were chatting about load tests."}
        value: dict[str, Any] = {"message": text, "user_email": self.user(index)}
        if kind == "vision":
            value["message"] = f"What colour is this image? (request {index})"
            value["images"] = [self._image]
        return value

    def build(self, index: int) -> tuple[bytes, bytes]:
        """(Kafka key, value bytes) of request `index`."""
        key = self.key(index)
        return key.encode(), orjson.dumps({"key": key, "value": self.value(index)})
