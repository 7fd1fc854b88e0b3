"""Validation of request images: base64 or data URLs decoded, MIME type detected from
the bytes, size/pixel limits enforced before anything reaches the LLM.

Pillow reads only the image header here (`Image.open` is lazy), so an "image bomb"
(a tiny file declaring huge dimensions) is rejected by its declared size without
ever being decoded.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from chater_gpt.domain import ImageInput
from chater_gpt.errors import InvalidImage, PayloadTooLarge

# Formats every OpenAI vision model accepts, by Pillow's format name.
_MIME_BY_FORMAT = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "GIF": "image/gif",
    "WEBP": "image/webp",
}


@dataclass(frozen=True, slots=True)
class ImageLimits:
    max_images: int
    max_image_bytes: int
    max_image_pixels: int


@dataclass(frozen=True, slots=True)
class DataUrl:
    """A base64 data URL's parts: its MIME type (lower case) and its base64 text."""

    mime_type: str
    data: str

    def decoded(self) -> bytes:
        """The bytes; InvalidImage when the text is not base64."""
        try:
            return base64.b64decode(self.data, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidImage("an inline image is not valid base64") from None


def split_data_url(url: str) -> DataUrl:
    """`data:<MIME type>;base64,<data>` split, or InvalidImage. The one reader of data
    URLs: every backend that sends images inline takes them apart here."""
    head, comma, data = url.partition(",")
    mime, _, encoding = head.removeprefix("data:").partition(";")
    mime = mime.strip().lower()
    if not (head.startswith("data:") and comma and encoding.lower() == "base64" and mime and data):
        raise InvalidImage("an inline image must be a base64 data URL with its MIME type")
    return DataUrl(mime_type=mime, data=data)


def parse_images(raw_images: list[str], limits: ImageLimits) -> list[ImageInput]:
    """Validate every image of a request, or raise the first problem found."""
    if len(raw_images) > limits.max_images:
        raise PayloadTooLarge(f"too many images: {len(raw_images)} (at most {limits.max_images})")
    return [_parse_one(index, raw, limits) for index, raw in enumerate(raw_images)]


def _parse_one(index: int, raw: str, limits: ImageLimits) -> ImageInput:
    text = raw.strip()
    if text.startswith("https://"):
        if len(text) > 2048:
            raise InvalidImage(f"image {index}: URL longer than 2048 characters")
        return ImageInput(url=text, mime_type=None, width=None, height=None)
    if text.startswith("http://"):
        raise InvalidImage(f"image {index}: only https URLs are accepted")
    payload = text.split(",", 1)[1] if text.startswith("data:") and "," in text else text
    # base64 grows data by 4/3: reject oversize input before decoding it.
    if len(payload) > limits.max_image_bytes * 4 // 3 + 4:
        raise PayloadTooLarge(f"image {index}: larger than {limits.max_image_bytes} bytes")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage(f"image {index}: not valid base64") from None
    if not data:
        raise InvalidImage(f"image {index}: empty")
    if len(data) > limits.max_image_bytes:
        raise PayloadTooLarge(f"image {index}: larger than {limits.max_image_bytes} bytes")
    mime, width, height = inspect_image(index, data)
    if width * height > limits.max_image_pixels:
        raise PayloadTooLarge(
            f"image {index}: {width}x{height} exceeds {limits.max_image_pixels} pixels"
        )
    url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return ImageInput(url=url, mime_type=mime, width=width, height=height)


def inspect_image(index: int, data: bytes) -> tuple[str, int, int]:
    """Return (MIME type, width, height) read from the image header."""
    try:
        with warnings.catch_warnings():
            # Pillow warns (or raises) on huge declared sizes; our own limit decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt = image.format or ""
                width, height = image.size
    except Image.DecompressionBombError:
        raise PayloadTooLarge(f"image {index}: declared dimensions are too large") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise InvalidImage(f"image {index}: not a PNG, JPEG, GIF or WEBP image") from None
    mime = _MIME_BY_FORMAT.get(fmt)
    if mime is None:
        raise InvalidImage(f"image {index}: format {fmt or 'unknown'} is not supported")
    if width <= 0 or height <= 0:
        raise InvalidImage(f"image {index}: invalid dimensions")
    return mime, width, height
