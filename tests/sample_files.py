"""Small sample input files (PNG, JPEG and WebP headers, GLB), written with the standard library
only: both test tiers use them, the fast one without Blender."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def write_png(path, width=64, height=64, rgb=(200, 120, 40)):
    """A real, decodable RGB PNG (stdlib only)."""
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def write_jpeg_header(path: Path, width: int, height: int, *, app_bytes: int = 300) -> Path:
    """JPEG markers up to a baseline frame header (enough for a header parser)."""
    app = b"\xff\xe1" + struct.pack(">H", app_bytes + 2) + b"\x00" * app_bytes  # an EXIF-like block
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    path.write_bytes(b"\xff\xd8" + app + sof + b"\xff\xd9")
    return path


def write_webp_header(path: Path, width: int, height: int, kind: str) -> Path:
    if kind == "VP8 ":
        data = b"\x00\x00\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", width, height)
    elif kind == "VP8L":
        bits = (width - 1) | ((height - 1) << 14)
        data = b"\x2f" + struct.pack("<I", bits)
    else:  # VP8X
        data = b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + kind.encode() + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def write_glb(path: Path, size: int = 64) -> Path:
    path.write_bytes(b"glTF" + struct.pack("<II", 2, size) + b"\x00" * (size - 12))
    return path
