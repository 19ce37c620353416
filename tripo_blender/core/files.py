"""Writing JSON files so that a crash never leaves half of one: the journal, the settings file,
the task sidecars and the batch reports all go through `write_json`."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


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
