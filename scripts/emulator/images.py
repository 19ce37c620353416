"""Images and file formats, with the standard library only.

- `write_preview_png`: a real PNG (zlib + struct) whose colours come deterministically from a
  text, used for generated images, multiview views and fallback previews.
- `sniff_format`: png/jpeg/webp/glb/fbx/obj/stl/zip from magic bytes (file name as a fallback).
- `image_size`: width and height read from PNG, JPEG and WebP headers, without decoding.
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
import tempfile
import zlib
from pathlib import Path

IMAGE_FORMATS = ("png", "jpeg", "webp")
MODEL_FORMATS = ("glb", "fbx", "obj", "stl")


def colour_of(text: str, salt: str = "") -> tuple[int, int, int]:
    digest = hashlib.sha256(f"{salt}\0{text}".encode("utf-8")).digest()
    return digest[0], digest[1], digest[2]


def png_bytes(width: int, height: int, rows) -> bytes:
    """Encodes RGB rows (each `width * 3` bytes) as a PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    raw = b"".join(b"\x00" + row for row in rows)  # filter type 0 on every row
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6))
            + chunk(b"IEND", b""))


def preview_png(text: str, size: int = 512, variant: int = 0) -> bytes:
    """A background in the text's colour with a disc in a second colour; `variant` (0..3, the
    multiview view) moves the disc, so the four views of one prompt differ."""
    background = bytes(colour_of(text, "bg"))
    disc = bytes(colour_of(text, "fg"))
    centre_x = size * (2 + variant) // 6
    centre_y = size // 2
    radius = size // 4
    rows = []
    for y in range(size):
        dy = y - centre_y
        if abs(dy) >= radius:
            rows.append(background * size)
            continue
        half = int((radius * radius - dy * dy) ** 0.5)
        x0, x1 = max(0, centre_x - half), min(size, centre_x + half)
        rows.append(background * x0 + disc * (x1 - x0) + background * (size - x1))
    return png_bytes(size, size, rows)


def write_atomic(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
    return path


def write_preview_png(directory: Path, text: str, size: int = 512, variant: int = 0) -> Path:
    """Writes (once) the preview PNG of `text` under `directory` and returns its path."""
    name = hashlib.sha256(f"{size}:{variant}:{text}".encode("utf-8")).hexdigest()[:24]
    path = Path(directory) / f"{name}.png"
    if not path.is_file():
        write_atomic(path, preview_png(text, size, variant))
    return path


def write_depth_png(directory: Path, text: str, size: int = 256) -> Path:
    """Writes (once) a grayscale-looking depth map PNG for `text`: a radial gradient, near
    (white) in the middle, far (black) at the corners, brightness varied by `text`."""
    name = hashlib.sha256(f"depth:{size}:{text}".encode("utf-8")).hexdigest()[:24]
    path = Path(directory) / f"{name}.png"
    if not path.is_file():
        gain = 0.6 + 0.4 * (colour_of(text, "depth")[0] / 255)
        centre = (size - 1) / 2
        rows = []
        for y in range(size):
            row = bytearray()
            for x in range(size):
                distance = ((x - centre) ** 2 + (y - centre) ** 2) ** 0.5 / (centre * 1.42)
                value = int(255 * gain * max(0.0, 1.0 - distance))
                row += bytes((value, value, value))
            rows.append(bytes(row))
        write_atomic(path, png_bytes(size, size, rows))
    return path


def write_splat_ply(directory: Path, text: str, count: int = 512) -> Path:
    """Writes (once) a Gaussian splat for `text` in the common 3DGS PLY layout (position,
    DC colour, opacity, scale, rotation per splat): points on a sphere of radius 0.5."""
    name = hashlib.sha256(f"splat:{count}:{text}".encode("utf-8")).hexdigest()[:24]
    path = Path(directory) / f"{name}.ply"
    if not path.is_file():
        fields = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1",
                  "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")
        header = ("ply\nformat binary_little_endian 1.0\n"
                  f"element vertex {count}\n"
                  + "".join(f"property float {f}\n" for f in fields) + "end_header\n")
        red, green, blue = (c / 255 - 0.5 for c in colour_of(text, "splat"))
        golden = 2.399963229728653  # golden angle: evenly spread points
        body = bytearray()
        for i in range(count):
            z = 1 - 2 * (i + 0.5) / count
            radius = (1 - z * z) ** 0.5
            x, y = radius * math.cos(golden * i), radius * math.sin(golden * i)
            body += struct.pack("<14f", 0.5 * x, 0.5 * y, 0.5 * z, red, green, blue, 2.0,
                                -4.0, -4.0, -4.0, 1.0, 0.0, 0.0, 0.0)
        write_atomic(path, header.encode("ascii") + bytes(body))
    return path


def sniff_format(head: bytes, filename: str = "") -> str | None:
    """The format of a file from its first bytes (at least 64), else from its extension."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"glTF"):
        return "glb"
    if head.startswith(b"Kaydara FBX Binary") or head.lstrip().startswith(b"; FBX"):
        return "fbx"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"solid"):
        return "stl"
    suffix = Path(filename).suffix.lower().lstrip(".")
    return {"jpg": "jpeg"}.get(suffix, suffix) or None


def image_size(path: Path, fmt: str) -> tuple[int, int] | None:
    """(width, height) from the headers of a PNG, JPEG or WebP file, or None if unreadable."""
    try:
        with open(path, "rb") as handle:
            if fmt == "png":
                head = handle.read(24)
                if head[12:16] != b"IHDR":
                    return None
                return struct.unpack(">II", head[16:24])
            if fmt == "webp":
                return _webp_size(handle.read(30))
            if fmt == "jpeg":
                return _jpeg_size(handle)
    except (OSError, struct.error):
        return None
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    kind = head[12:16]
    if kind == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if kind == b"VP8L" and head[20:21] == b"\x2f":
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8X":
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    return None


# Start-of-frame markers carry the size; C4 (Huffman table), C8 (reserved), CC (arithmetic
# conditioning) share the range but are not frames.
_JPEG_FRAMES = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(handle) -> tuple[int, int] | None:
    if handle.read(2) != b"\xff\xd8":
        return None
    while True:
        byte = handle.read(1)
        while byte and byte != b"\xff":  # skip to the next marker
            byte = handle.read(1)
        while byte == b"\xff":  # fill bytes
            byte = handle.read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker in (0x01, *range(0xD0, 0xD9)):  # markers without a length
            continue
        length = struct.unpack(">H", handle.read(2))[0]
        if marker in _JPEG_FRAMES:
            height, width = struct.unpack(">xHH", handle.read(5))
            return width, height
        handle.seek(length - 2, os.SEEK_CUR)
