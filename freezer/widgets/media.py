"""What an item looks like on a page: an image (as bytes with its type), text, or HTML.

Labeling widgets accept items the way an author has them: numpy arrays, PIL images,
PNG/JPEG/GIF/WebP bytes, paths of image files, text, and HTML the author marks as
trusted with `trusted_html`. Text is always escaped by the page; only `Trusted` HTML
is inserted as markup.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from freezer.png import encode_png

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
_SUFFIXES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}


@dataclass(frozen=True)
class Trusted:
    """HTML the author vouches for: shown as markup, not as text."""

    html: str


def trusted_html(html: str) -> Trusted:
    """Mark `html` as the author's own markup, to be shown as HTML in a labeling widget.
    Never pass text that came from outside (a file of user comments, a scraped page)."""
    return Trusted(str(html))


@dataclass(frozen=True)
class Media:
    """One item as a page shows it: `kind` is "image", "text" or "html"."""

    kind: str
    text: str = ""
    data: bytes = b""
    mime: str = ""


def image_mime(data: bytes) -> str | None:
    """The image type of encoded bytes, from their first bytes, or None."""
    for signature, mime in _SIGNATURES:
        if data.startswith(signature):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def as_media(value: Any) -> Media:
    """How `value` is shown: images encoded once, HTML only when marked trusted."""
    if isinstance(value, Media):
        return value
    if isinstance(value, Trusted):
        return Media("html", text=value.html)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        mime = image_mime(data)
        if mime is None:
            raise ValueError("bytes given as an item are not a PNG, JPEG, GIF or WebP image")
        return Media("image", data=data, mime=mime)
    if isinstance(value, os.PathLike) or (
        isinstance(value, str) and Path(value).suffix.lower() in _SUFFIXES and "\n" not in value
    ):
        path = Path(value)
        if path.suffix.lower() in _SUFFIXES and path.is_file():
            return Media("image", data=path.read_bytes(), mime=_SUFFIXES[path.suffix.lower()])
        if isinstance(value, os.PathLike):
            raise ValueError(f"{path} is not an image file (.png, .jpg, .gif or .webp)")
    if _is_pil_image(value):
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return Media("image", data=buffer.getvalue(), mime="image/png")
    if isinstance(value, np.ndarray) and value.dtype != object and value.ndim in (2, 3):
        return Media("image", data=encode_png(value), mime="image/png")
    return Media("text", text=str(value))


def _is_pil_image(value: Any) -> bool:
    return type(value).__module__.startswith("PIL.") and hasattr(value, "save")
