"""The Blender layer: everything that touches bpy data lives here and runs on the main thread."""
