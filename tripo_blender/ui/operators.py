"""(being written)"""

CLASSES = ()


def register() -> None:
    import bpy
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister() -> None:
    import bpy
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
