"""Reads the add-on preferences into plain ConnectionSettings, and guards network actions."""

from __future__ import annotations

import os

import bpy

from ..core.providers.settings_store import SETTINGS_FILE_NAME
from ..core.providers.settings import (AISTUDIO_URL, OFFLINE_MESSAGE, TRIPO_CHINA_URL, TRIPO_GLOBAL_URL,
                             ConnectionSettings)

ADDON_ID = __package__.rpartition(".")[0]


class OfflineError(RuntimeError):
    """Blender's online access is off: no network action may run."""


def require_online_access() -> None:
    """Every network action calls this first (Blender's rule for extensions)."""
    if not bpy.app.online_access:
        raise OfflineError(OFFLINE_MESSAGE)


def default_download_dir() -> str:
    return bpy.utils.extension_path_user(ADDON_ID, path="downloads", create=True)


def user_data_dir(*parts: str) -> str:
    """A folder under the extension's user directory (survives extension upgrades)."""
    path = "/".join(parts) if parts else ""
    return bpy.utils.extension_path_user(ADDON_ID, path=path, create=True)


def settings_file_path(create: bool = True) -> str:
    """The settings file (keys, host, proxy, download folder) in the extension's user folder,
    which Blender keeps when the extension is disabled or updated."""
    return os.path.join(bpy.utils.extension_path_user(ADDON_ID, create=create), SETTINGS_FILE_NAME)


def configured_provider(context=None) -> str:
    """The provider id only, as connection_settings would give it, without creating folders
    (panels call this on every redraw)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    prefs = addon.preferences if addon else None
    return os.environ.get("TRIPO_PROVIDER") or (prefs.provider if prefs is not None else "tripo")


def connection_settings(context=None) -> ConnectionSettings:
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    prefs = addon.preferences if addon else None
    if prefs is None:
        settings = ConnectionSettings(download_dir=default_download_dir())
    elif prefs.provider == "3daistudio":
        settings = ConnectionSettings(
            provider="3daistudio", api_key=prefs.aistudio_api_key,
            base_url=prefs.aistudio_base_url or AISTUDIO_URL,
            proxy_mode=prefs.proxy_mode, proxy_url=prefs.proxy_url,
            download_dir=bpy.path.abspath(prefs.download_dir) if prefs.download_dir else default_download_dir(),
        )
    else:
        base_url = {"global": TRIPO_GLOBAL_URL, "china": TRIPO_CHINA_URL}.get(prefs.api_base, prefs.custom_base_url)
        settings = ConnectionSettings(
            provider="tripo", api_key=prefs.api_key, base_url=base_url,
            proxy_mode=prefs.proxy_mode, proxy_url=prefs.proxy_url,
            download_dir=bpy.path.abspath(prefs.download_dir) if prefs.download_dir else default_download_dir(),
        )
    return settings.with_environment()
