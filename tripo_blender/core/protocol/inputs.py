"""The inputs of a request and the checks on local files.

An input value (``input``, the ``inputs`` of multiview, ``texture_prompt.image`` ...) may be
a task id, a file token (``file_...``), an http(s) URL, or an absolute path of a local file.
:func:`classify_input` says which; local files are checked here (type and size) and uploaded by
the provider at create time.

Plain Python, no ``bpy`` (see ``core/__init__``).
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Iterable

from .errors import ValidationError
from .vocabulary import (
    IMAGE_MAX_SIDE,
    IMAGE_MIN_SIDE,
    MAX_UPLOAD_BYTES,
    MODEL_FILE_FORMATS,
)

if TYPE_CHECKING:  # a request lists its own inputs; this module needs its type only
    from .request_models import TaskRequest


class InputKind(str, Enum):
    TASK_ID = "task_id"
    FILE_TOKEN = "file_token"
    URL = "url"
    LOCAL_FILE = "local_file"


_TASK_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{3,127}$")
_FILE_TOKEN_RE = re.compile(r"^file_[A-Za-z0-9_\-]+$")


def classify_input(value: Any, *, field: str = "input") -> InputKind:
    """Say what an input value is: task id, ``file_`` token, http(s) URL or local file path.

    Only the form is checked here (a local path must be absolute); existence and content of
    local files are checked by :func:`check_local_files`.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{field} is empty: give a task id, an image URL or a file path.",
                              field=field)
    text = value.strip()
    lowered = text.lower()
    if lowered.startswith(("http://", "https://")):
        return InputKind.URL
    if "://" in text and not os.path.isabs(text):
        scheme = text.split("://", 1)[0]
        raise ValidationError(
            f"{field}: '{scheme}://' links are not supported; use an http(s) URL or a local file.",
            field=field,
        )
    if text.startswith("//"):
        raise ValidationError(
            f"{field}: '{text}' is a Blender-relative path; make it absolute first.", field=field
        )
    if _FILE_TOKEN_RE.match(text):
        return InputKind.FILE_TOKEN
    if os.path.isabs(text) or (os.name == "nt" and re.match(r"^[A-Za-z]:[\\/]", text)):
        return InputKind.LOCAL_FILE
    if _TASK_ID_RE.match(text):
        return InputKind.TASK_ID
    raise ValidationError(
        f"{field}: '{text}' is not a task id, a file token, an http(s) URL or an absolute file "
        "path (relative paths are not accepted).",
        field=field,
    )


@dataclass(frozen=True)
class InputRef:
    """One input value of a request: where it sits, its value, and what it must be."""

    path: tuple  # e.g. ("input",), ("inputs", 0), ("texture_prompt", "image")
    value: str
    kind: str  # "image" or "model"

    @property
    def name(self) -> str:
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        return out

    @property
    def input_kind(self) -> InputKind:
        return classify_input(self.value, field=self.name)


# --------------------------------------------------------------------------- local files


def _read_exact(f, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise EOFError
    return data


def _jpeg_size(f) -> tuple[int, int]:
    f.seek(2)
    sof = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
    while True:
        byte = _read_exact(f, 1)
        if byte != b"\xff":
            continue  # tolerate garbage between segments
        marker = _read_exact(f, 1)[0]
        while marker == 0xFF:  # fill bytes
            marker = _read_exact(f, 1)[0]
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            continue
        if marker in (0xD9, 0xDA):
            raise EOFError  # end of image or start of scan before any frame header
        (length,) = struct.unpack(">H", _read_exact(f, 2))
        if length < 2:
            raise EOFError
        if marker in sof:
            _precision, height, width = struct.unpack(">BHH", _read_exact(f, 5))
            return width, height
        f.seek(length - 2, os.SEEK_CUR)


def _webp_size(f) -> tuple[int, int]:
    f.seek(12)
    fourcc = _read_exact(f, 4)
    _read_exact(f, 4)  # chunk size
    if fourcc == b"VP8 ":
        data = _read_exact(f, 10)
        if data[3:6] != b"\x9d\x01\x2a":
            raise EOFError
        width, height = struct.unpack("<HH", data[6:10])
        return width & 0x3FFF, height & 0x3FFF
    if fourcc == b"VP8L":
        data = _read_exact(f, 5)
        if data[0] != 0x2F:
            raise EOFError
        (bits,) = struct.unpack("<I", data[1:5])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if fourcc == b"VP8X":
        data = _read_exact(f, 10)
        width = int.from_bytes(data[4:7], "little") + 1
        height = int.from_bytes(data[7:10], "little") + 1
        return width, height
    raise EOFError


_OTHER_IMAGE_MAGIC = (
    (b"GIF87a", "GIF"), (b"GIF89a", "GIF"), (b"BM", "BMP"), (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"), (b"\x00\x00\x01\x00", "ICO"), (b"8BPS", "PSD"),
    (b"\x76\x2f\x31\x01", "EXR"),
)


def _check_regular_file(path: Any, field: str) -> str:
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise ValidationError(f"{field}: no file given.", field=field)
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValidationError(f"{field}: the file '{path}' does not exist.", field=field)
    if not os.path.isfile(path):
        raise ValidationError(f"{field}: '{path}' is not a file.", field=field)
    size = os.path.getsize(path)
    if size == 0:
        raise ValidationError(f"{field}: the file '{path}' is empty.", field=field)
    if size > MAX_UPLOAD_BYTES:
        raise ValidationError(
            f"{field}: '{os.path.basename(path)}' is {size / 1048576:.0f} MB; Tripo accepts "
            f"files up to {MAX_UPLOAD_BYTES // 1048576} MB.",
            field=field,
        )
    return path


def validate_image_file(path: Any, *, field: str = "image") -> tuple[str, int, int]:
    """Check a local image for Tripo: PNG, JPEG or WebP (by content, not by extension), each
    side 20..6000 px, at most 150 MB. Returns ``(format, width, height)``, format one of
    ``png``, ``jpeg``, ``webp``. Raises :class:`ValidationError` with a readable message."""
    path = _check_regular_file(path, field)
    name = os.path.basename(path)
    try:
        with open(path, "rb") as f:
            head = f.read(32)
            try:
                if head.startswith(b"\x89PNG\r\n\x1a\n"):
                    if head[12:16] != b"IHDR":
                        raise EOFError
                    fmt = "png"
                    width, height = struct.unpack(">II", head[16:24])
                elif head.startswith(b"\xff\xd8"):
                    fmt = "jpeg"
                    width, height = _jpeg_size(f)
                elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                    fmt = "webp"
                    width, height = _webp_size(f)
                else:
                    other = next((label for magic, label in _OTHER_IMAGE_MAGIC
                                  if head.startswith(magic)), None)
                    what = f"a {other} image" if other else "not a PNG, JPEG or WebP image"
                    raise ValidationError(
                        f"{field}: '{name}' is {what}. Tripo accepts PNG, JPEG and WebP; "
                        "save the image in one of those formats.",
                        field=field,
                    )
            except (EOFError, struct.error):
                raise ValidationError(
                    f"{field}: '{name}' looks damaged: its image header cannot be read.",
                    field=field,
                ) from None
    except OSError as exc:
        raise ValidationError(f"{field}: cannot read '{path}': {exc.strerror or exc}.",
                              field=field) from None
    for side, value in (("width", width), ("height", height)):
        if value < IMAGE_MIN_SIDE or value > IMAGE_MAX_SIDE:
            raise ValidationError(
                f"{field}: '{name}' is {width}x{height} px; each side must be between "
                f"{IMAGE_MIN_SIDE} and {IMAGE_MAX_SIDE} px (more than 256 px is recommended).",
                field=field,
            )
    return fmt, width, height


def validate_model_file(path: Any, *, field: str = "input") -> tuple[str, int]:
    """Check a local 3D model for upload: .glb, .fbx, .obj or .stl, ≤ 150 MB.
    Returns ``(format, size_bytes)``."""
    path = _check_regular_file(path, field)
    name = os.path.basename(path)
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if ext == "gltf":
        raise ValidationError(
            f"{field}: '{name}' is a .gltf with separate files; export it as .glb (binary glTF).",
            field=field,
        )
    if ext not in MODEL_FILE_FORMATS:
        raise ValidationError(
            f"{field}: '{name}' is not a supported model file; Tripo imports "
            f"{', '.join('.' + e for e in MODEL_FILE_FORMATS)}.",
            field=field,
        )
    if ext == "glb":
        with open(path, "rb") as f:
            if f.read(4) != b"glTF":
                raise ValidationError(f"{field}: '{name}' is not a valid .glb file.", field=field)
    return ext, os.path.getsize(path)


def check_local_files(request: "TaskRequest") -> list[InputRef]:
    """Check every local file input of ``request``; return those inputs."""
    local = request.local_files()
    for ref in local:
        if ref.kind == "image":
            validate_image_file(ref.value, field=ref.name)
        else:
            validate_model_file(ref.value, field=ref.name)
    return local


def check_input_value(value: Any, field: str, *, allowed: Iterable[InputKind] = tuple(InputKind),
                      what: str = "input") -> Any:
    """``value`` stripped, when it is one of the ``allowed`` kinds of input; a request
    field's validator. ``what`` says what the field holds, for the message."""
    if value is None:
        return value
    kind = classify_input(value, field=field)
    allowed = tuple(allowed)
    if kind not in allowed:
        names = {
            InputKind.TASK_ID: "a task id",
            InputKind.FILE_TOKEN: "a file token",
            InputKind.URL: "an http(s) URL",
            InputKind.LOCAL_FILE: "a local file",
        }
        raise ValidationError(
            f"{field} must be {' or '.join(names[k] for k in allowed)} ({what}); "
            f"got {names[kind]}.",
            field=field,
        )
    return value.strip()
