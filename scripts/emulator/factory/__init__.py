"""The emulator's asset factory, run inside Blender by `scripts/emulator/asset_factory.py`.

One module per kind of output; every module needs `bpy` (the emulator server itself never imports
this package, it talks to the worker through `factory_client.py`).
"""
