"""Small helpers every part of the factory uses: deterministic seeds and colours, names, operator calls."""

from __future__ import annotations

import colorsys
import hashlib
import json
import logging
import random
import re
import struct
import zipfile
from pathlib import Path


log = logging.getLogger("asset_factory")

PROTOCOL_PREFIX = "@@ASSET "
RENDER_SIZE = 256
FPS = 24


class FactoryError(RuntimeError):
    """A request that cannot be served (bad parameters, unusable input...)."""


def digest(*parts) -> bytes:
    """A stable hash of JSON-able values (used for every deterministic choice)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode("utf-8")).digest()


def rng_for(*parts) -> random.Random:
    return random.Random(int.from_bytes(digest(*parts)[:8], "big"))


def colour_from(seed: bytes, offset: int = 0, saturation: float = 0.55, value: float = 0.8):
    """A pleasant RGB colour (0..1 floats) from hash bytes."""
    hue = seed[offset % len(seed)] / 255.0
    sat = saturation + (seed[(offset + 1) % len(seed)] / 255.0 - 0.5) * 0.3
    val = value + (seed[(offset + 2) % len(seed)] / 255.0 - 0.5) * 0.2
    return colorsys.hsv_to_rgb(hue, min(max(sat, 0.0), 1.0), min(max(val, 0.0), 1.0))


def safe_name(text: str, default: str = "model", limit: int = 40) -> str:
    name = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:limit].strip("_")
    return name or default


def call_op(op, **kwargs):
    """Calls a bpy operator with only the keyword arguments this Blender version knows.

    Exporter options come and go between 4.2 and 5.0; unknown ones are dropped (and logged)
    instead of failing the whole request.
    """
    known = set(op.get_rna_type().properties.keys())
    unknown = sorted(k for k in kwargs if k not in known)
    if unknown:
        log.debug("%s: ignoring options unknown to this Blender: %s", op.idname_py(), unknown)
    result = op(**{k: v for k, v in kwargs.items() if k in known})
    if "FINISHED" not in result:
        raise FactoryError(f"{op.idname_py()} did not finish: {sorted(result)}")
    return result


def glb_json(path: Path) -> dict:
    """The JSON chunk of a GLB file (to report what a file really contains)."""
    data = Path(path).read_bytes()
    magic, _version, _length = struct.unpack_from("<4sII", data, 0)
    if magic != b"glTF":
        raise FactoryError(f"{path} is not a GLB file")
    chunk_length, chunk_type = struct.unpack_from("<I4s", data, 12)
    if chunk_type != b"JSON":
        raise FactoryError(f"{path}: first GLB chunk is not JSON")
    return json.loads(data[20:20 + chunk_length])


def zip_directory(directory: Path, zip_path: Path) -> Path:
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(directory).as_posix())
    return zip_path
