"""Tripo protocol core: plain Python, no Blender.

Rule for everything under ``core/``: never import ``bpy``. These modules talk to the
Tripo API (``requests``), describe tasks and requests (``pydantic``), estimate costs and
download files. They take plain Python values in and hand plain values back, so they can
run in a worker thread and be tested without Blender. Turning results into Blender data is
the job of the Blender layer, on the main thread.

One subpackage per concern; each imports only the ones listed before it:
  protocol/   task vocabulary, request models and validation, task records, inputs, chain rules,
              errors
  costs.py    credit estimates from Tripo's published prices
  providers/  the services that run tasks (the ``Provider`` seam, Tripo v3, 3D AI Studio), HTTP,
              downloads, capabilities and connection settings
  engine/     jobs, the worker that runs them, the journal, job ownership, recipes, local history
  batch/      batch files: parse, schema, plan

Keep these ``__init__`` files light: import submodules explicitly
(``from .core.protocol import request_models``,
``from .core.providers.tripo_v3 import TripoV3Provider``).
"""
