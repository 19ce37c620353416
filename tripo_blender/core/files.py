"""The files we write: names that work on every file system (`safe_name`), and JSON written so
that a crash never leaves half of one (`write_json`: the journal, the settings file, the task
sidecars and the batch reports)."""

from __future__ import annotations

import json
import os
import re
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                     *(f"lpt{i}" for i in range(1, 10))}


def safe_name(text: Any, fallback: str = "asset", max_length: int = 80) -> str:
    """A file and folder name that works on every file system: ASCII letters, digits, '-',
    '_' and '.', no leading dot or dash, no Windows device names, at most ``max_length``."""
    text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", text)
    text = re.sub(r"_{2,}", "_", text).strip("._-")
    text = text[:max_length].rstrip("._-")
    if not text:
        text = fallback
    if text.split(".")[0].lower() in _WINDOWS_RESERVED:
        text = f"_{text}"
    return text


def write_json(path: str | os.PathLike, data, *, private: bool = True, indent: int = 1) -> None:
    """Writes `data` to `path` atomically: a temporary file beside it, flushed to disk, then
    renamed over it. `private`: readable by the user only (0600 where the platform has modes)
    from its first byte, for keys and journals; otherwise 0644, for files people read."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=indent, ensure_ascii=False, default=str)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        if not private:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
