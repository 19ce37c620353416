"""Add-on preferences: the API key, where to connect, proxies and the download folder.

The key lives here (Blender's user preferences) or in the TRIPO_API_KEY environment variable,
never on a Scene or Object, so it is never saved into a .blend that gets shared.

Blender frees these preferences when the extension is disabled (an update disables it too), so
every change is also written to the settings file in the extension's user folder
(core/providers/settings_store.py), and register() copies the file back into the preferences.
"""

from __future__ import annotations

import contextlib
import logging
import os

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

from ..blender.settings import ADDON_ID  # the extension's module: bl_ext.<repo>.tripo_blender
from ..blender.settings import settings_file_path
from ..core.providers import settings as core_settings
from ..core.providers import settings_store

log = logging.getLogger(__name__)

# While True, property changes are not written to the settings file: register() copying the file
# into the preferences must not write it back once per property (or over it with defaults).
_saving_suspended = False


@contextlib.contextmanager
def _without_saving():
    global _saving_suspended
    previous, _saving_suspended = _saving_suspended, True
    try:
        yield
    finally:
        _saving_suspended = previous


def _on_persisted_change(prefs, _context) -> None:
    if not _saving_suspended:
        save_settings(prefs)


def save_settings(prefs) -> bool:
    """Writes the persisted preferences to the settings file; False (and a warning) if it failed."""
    path = settings_file_path()
    values = {name: getattr(prefs, name) for name in settings_store.PERSISTED_NAMES}
    try:
        settings_store.write_settings(path, values)
    except OSError as exc:
        log.warning("could not save the Tripo settings to %s: %s", path, exc.strerror or type(exc).__name__)
        return False
    return True


def restore_settings() -> None:
    """Copies the settings file into the preferences (file values win: it is written on every
    change, while Blender's saved preferences may hold the emptied values of a disabled add-on)."""
    addon = bpy.context.preferences.addons.get(ADDON_ID)
    prefs = addon.preferences if addon else None
    if prefs is None:
        return
    path = settings_file_path()
    if not os.path.exists(path):
        # First run of a version with the file: keep what Blender's preferences already hold.
        if any(getattr(prefs, name) != prefs.bl_rna.properties[name].default
               for name in settings_store.PERSISTED_NAMES):
            save_settings(prefs)
        return
    stored = settings_store.read_settings(path)
    with _without_saving():
        for name, value in stored.items():
            prop = prefs.bl_rna.properties[name]
            if prop.type == "ENUM" and value not in prop.enum_items.keys():
                # The value is not logged: a hand-edited file may have a key in the wrong place.
                log.warning("ignoring %s in the settings file %s: not one of %s",
                            name, path, ", ".join(prop.enum_items.keys()))
                continue
            if getattr(prefs, name) != value:
                setattr(prefs, name, value)


class TRIPO_OT_forget_key(bpy.types.Operator):
    bl_idname = "tripo.forget_key"
    bl_label = "Forget Key"
    bl_description = ("Erase the Tripo and 3D AI Studio API keys from the preferences and from the "
                      "settings file")
    bl_options = {"INTERNAL"}

    def execute(self, context):
        prefs = context.preferences.addons[ADDON_ID].preferences
        with _without_saving():  # one write below, not one per key
            prefs.api_key = ""
            prefs.aistudio_api_key = ""
        context.preferences.is_dirty = True  # so Blender's saved preferences lose the key too
        if not save_settings(prefs):
            self.report({"ERROR"}, f"The key could not be erased from {settings_file_path()}")
            return {"CANCELLED"}
        overridden = [name for name in ("TRIPO_API_KEY", "AISTUDIO_API_KEY") if os.environ.get(name)]
        if overridden:
            self.report({"WARNING"}, f"Key forgotten, but {' and '.join(overridden)} is still set "
                                     "in the environment and is used instead")
        else:
            self.report({"INFO"}, "API key forgotten")
        return {"FINISHED"}


class TRIPO_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    provider: EnumProperty(
        name="Provider",
        description="Who runs the Tripo models for you",
        items=[
            ("tripo", "Tripo (apiv3)", "Tripo's own API with a Tripo API key (tsk_...)"),
            ("3daistudio", "3D AI Studio", "Tripo models bought through 3D AI Studio's API"),
        ],
        default="tripo",
        update=_on_persisted_change,
    )
    api_key: StringProperty(
        name="API Key",
        description="Your Tripo API key (starts with tsk_). TRIPO_API_KEY overrides it",
        subtype="PASSWORD",
        update=_on_persisted_change,
    )
    api_base: EnumProperty(
        name="API Host",
        items=[
            ("global", "Global", core_settings.TRIPO_GLOBAL_URL),
            ("china", "Mainland China", core_settings.TRIPO_CHINA_URL),
            ("custom", "Custom URL", "A gateway, or the local emulator for offline work"),
        ],
        default="global",
        update=_on_persisted_change,
    )
    custom_base_url: StringProperty(
        name="Custom URL",
        description="Base URL of the API (HTTPS, or http on 127.0.0.1/localhost)",
        default="http://127.0.0.1:8765",
        update=_on_persisted_change,
    )
    aistudio_api_key: StringProperty(
        name="3D AI Studio Key", subtype="PASSWORD",
        description="Your 3D AI Studio API key. AISTUDIO_API_KEY overrides it",
        update=_on_persisted_change,
    )
    aistudio_base_url: StringProperty(
        name="3D AI Studio URL", default=core_settings.AISTUDIO_URL,
        update=_on_persisted_change,
    )
    proxy_mode: EnumProperty(
        name="Proxy",
        items=[
            ("system", "System / Environment", "Use the system's or HTTPS_PROXY's proxy"),
            ("none", "None", "Connect directly, ignoring proxy settings"),
            ("custom", "Custom", "Use the proxy URL below"),
        ],
        default="system",
        update=_on_persisted_change,
    )
    proxy_url: StringProperty(name="Proxy URL", default="http://proxy.example:3128",
                              update=_on_persisted_change)
    download_dir: StringProperty(
        name="Download Folder",
        description="Where models are saved. Empty: the extension's user folder",
        subtype="DIR_PATH",
        update=_on_persisted_change,
    )
    mark_as_assets: BoolProperty(
        name="Mark as Assets",
        description=("Mark imported Tripo models as assets (Asset Browser), with Tripo's preview, "
                     "the prompt, tags and a catalog per project and type. The object metadata is "
                     "kept either way"),
        default=True,
        update=_on_persisted_change,
    )

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "provider")
        if self.provider == "tripo":
            layout.prop(self, "api_key")
            layout.prop(self, "api_base")
            if self.api_base == "custom":
                layout.prop(self, "custom_base_url")
        else:
            layout.prop(self, "aistudio_api_key")
            layout.prop(self, "aistudio_base_url")
        self._draw_key_storage(layout)
        row = layout.row()
        row.prop(self, "proxy_mode")
        if self.proxy_mode == "custom":
            row.prop(self, "proxy_url", text="")
        layout.prop(self, "download_dir")
        layout.prop(self, "mark_as_assets")
        if not bpy.app.online_access:
            layout.label(text=core_settings.OFFLINE_MESSAGE, icon="ERROR")

    def _draw_key_storage(self, layout) -> None:
        box = layout.box()
        column = box.column(align=True)
        column.label(text="Keys and connection settings are stored in:", icon="LOCKED")
        column.label(text=settings_file_path(create=False))
        env_name = "AISTUDIO_API_KEY" if self.provider == "3daistudio" else "TRIPO_API_KEY"
        if os.environ.get(env_name):
            column.label(text=f"{env_name} is set in the environment and overrides this key", icon="INFO")
        box.operator(TRIPO_OT_forget_key.bl_idname, icon="TRASH")


CLASSES = (TRIPO_AddonPreferences, TRIPO_OT_forget_key)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(CLASSES)


def register() -> None:
    _register_classes()
    # Before blender.runtime registers: resuming journaled jobs needs the restored key.
    try:
        restore_settings()
    except Exception as exc:  # noqa: BLE001 - a bad settings file must not stop the extension loading
        log.warning("could not restore the Tripo settings: %s", type(exc).__name__)


def unregister() -> None:
    _unregister_classes()
