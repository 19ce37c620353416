"""The connection settings on disk, so they outlive the extension's own lifecycle.

Blender frees an add-on's preferences when it is disabled, and updating an extension disables
and re-enables it. This file, in the extension's user data folder (which Blender keeps across
updates), holds what the user would otherwise have to set again: provider, keys, host, proxy,
download folder and whether imports are marked as assets.

- JSON, one object of string values (booleans for switches); unknown keys and values of the
  wrong type are dropped on read.
- Written atomically (a temp file beside it, fsync, os.replace): a crash leaves the old file or
  the new one, never half of one.
- Created with mode 0600 where the platform has modes: it holds API keys.
- Nothing here logs a value: a value may be a key.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from ..files import write_json

log = logging.getLogger(__name__)

SETTINGS_FILE_NAME = "settings.json"
FORMAT_VERSION = 1

# The preferences that survive disable/enable, updates and restarts (names of the preferences'
# properties, so the Blender layer copies them by name).
PERSISTED_NAMES = (
    "provider",
    "api_key",
    "api_base",
    "custom_base_url",
    "aistudio_api_key",
    "aistudio_base_url",
    "proxy_mode",
    "proxy_url",
    "download_dir",
    "mark_as_assets",
)
#: Persisted switches (booleans in the file); every other persisted name holds a string.
BOOLEAN_NAMES = frozenset({"mark_as_assets"})
SECRET_NAMES = frozenset({"api_key", "aistudio_api_key"})


def read_settings(path: str | os.PathLike) -> dict[str, str]:
    """The stored settings, or {} when there is no file or it cannot be read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        log.warning("could not read the settings file %s: %s", path, exc.strerror or type(exc).__name__)
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        # The message of a JSON error quotes the text around the fault, which may be a key.
        log.warning("ignoring the settings file %s: it is not valid JSON", path)
        return {}
    values = data.get("settings") if isinstance(data, dict) else None
    if not isinstance(values, dict):
        log.warning("ignoring the settings file %s: it holds no settings object", path)
        return {}
    settings = {}
    for name in PERSISTED_NAMES:
        if name not in values:
            continue
        kind = bool if name in BOOLEAN_NAMES else str
        if isinstance(values[name], kind):
            settings[name] = values[name]
        else:
            log.warning("ignoring %s in the settings file %s: not a %s", name, path,
                        "boolean" if kind is bool else "string")
    return settings


def write_settings(path: str | os.PathLike, settings: dict[str, str]) -> None:
    """Replaces the file with these settings (only the persisted names), readable by the user only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "format": FORMAT_VERSION,
        "settings": {name: bool(settings[name]) if name in BOOLEAN_NAMES else str(settings[name])
                     for name in PERSISTED_NAMES if name in settings},
    }
    write_json(path, document)  # 0600 from its first byte: it holds the keys
