"""Add-on preferences: the API key, where to connect, proxies and the download folder.

The key lives here (Blender's user preferences) or in the TRIPO_API_KEY environment variable,
never on a Scene or Object, so it is never saved into a .blend that gets shared.
"""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, StringProperty

from ..blender.settings import ADDON_ID  # the extension's module: bl_ext.<repo>.tripo_blender
from ..core import settings as core_settings


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
    )
    api_key: StringProperty(
        name="API Key",
        description="Your Tripo API key (starts with tsk_). TRIPO_API_KEY overrides it",
        subtype="PASSWORD",
    )
    api_base: EnumProperty(
        name="API Host",
        items=[
            ("global", "Global", core_settings.TRIPO_GLOBAL_URL),
            ("china", "Mainland China", core_settings.TRIPO_CHINA_URL),
            ("custom", "Custom URL", "A gateway, or the local emulator for offline work"),
        ],
        default="global",
    )
    custom_base_url: StringProperty(
        name="Custom URL",
        description="Base URL of the API (HTTPS, or http on 127.0.0.1/localhost)",
        default="http://127.0.0.1:8765",
    )
    aistudio_api_key: StringProperty(
        name="3D AI Studio Key", subtype="PASSWORD",
        description="Your 3D AI Studio API key. AISTUDIO_API_KEY overrides it",
    )
    aistudio_base_url: StringProperty(
        name="3D AI Studio URL", default=core_settings.AISTUDIO_URL,
    )
    proxy_mode: EnumProperty(
        name="Proxy",
        items=[
            ("system", "System / Environment", "Use the system's or HTTPS_PROXY's proxy"),
            ("none", "None", "Connect directly, ignoring proxy settings"),
            ("custom", "Custom", "Use the proxy URL below"),
        ],
        default="system",
    )
    proxy_url: StringProperty(name="Proxy URL", default="http://proxy.example:3128")
    download_dir: StringProperty(
        name="Download Folder",
        description="Where models are saved. Empty: the extension's user folder",
        subtype="DIR_PATH",
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
        row = layout.row()
        row.prop(self, "proxy_mode")
        if self.proxy_mode == "custom":
            row.prop(self, "proxy_url", text="")
        layout.prop(self, "download_dir")
        if not bpy.app.online_access:
            layout.label(text=core_settings.OFFLINE_MESSAGE, icon="ERROR")


CLASSES = (TRIPO_AddonPreferences,)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
