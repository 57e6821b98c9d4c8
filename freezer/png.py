"""PNG encoding of small numpy images, so labeling widgets need no imaging library."""

from __future__ import annotations

import struct
import zlib

import numpy as np


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a 2-D (grey) or 3-D RGB/RGBA array. Integers in 0-255 are taken as
    they are and floats in 0-1 as fractions of 255; any other range is stretched to
    0-255 (a constant image of such values is black)."""
    array = np.asarray(image)
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        low, high = float(array.min()), float(array.max())
        if np.issubdtype(array.dtype, np.integer) and 0 <= low and high <= 255:
            array = array.astype(np.uint8)
        elif np.issubdtype(array.dtype, np.floating) and 0 <= low and high <= 1:
            array = np.round(array * 255).astype(np.uint8)
        else:
            scale = 255.0 / (high - low) if high > low else 0.0
            array = ((array - low) * scale).astype(np.uint8)
    if array.ndim == 2:
        color = 0
    elif array.ndim == 3 and array.shape[2] in (3, 4):
        color = 2 if array.shape[2] == 3 else 6
    else:
        raise ValueError(f"cannot encode an array of shape {array.shape} as an image")
    height, width = array.shape[:2]
    rows = array.reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )
