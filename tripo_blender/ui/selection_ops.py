"""Actions on the selection (retexture, segment, complete, low poly, rig, convert, import). Being written."""

import bpy

CLASSES = ()


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
