"""Tripo protocol core: plain Python, no Blender.

Rule for everything under ``core/``: never import ``bpy``. These modules talk to the
Tripo API (``requests``), describe tasks and requests (``pydantic``), estimate costs and
download files. They take plain Python values in and hand plain values back, so they can
run in a worker thread and be tested without Blender. Turning results into Blender data is
the job of the Blender layer, on the main thread.

Keep this ``__init__`` light: import submodules explicitly
(``from .core import tasks``, ``from .core.tripo_v3 import TripoV3Provider``).
"""
