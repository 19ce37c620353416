"""Tripo 3D generation inside Blender.

Layout (each layer only imports the ones above it):
  core/     the Tripo protocol: request models, providers, jobs, journal. Plain Python, no bpy.
  blender/  turns finished jobs into Blender data: import, metadata, the main-thread runtime.
  ui/       preferences, properties, operators and the sidebar panel.
  api.py    the public scripting API for `blender -b` scripts.
"""

from __future__ import annotations

import importlib

# Registered in this order, unregistered in reverse. Each module owns register()/unregister().
# ui.preferences comes first: it restores the saved key and host, which blender.runtime needs
# to resume the jobs left in the journal.
_MODULE_NAMES = (
    "ui.preferences",
    "ui.properties",
    "ui.operators",
    "ui.panels",
    "ui.history",
    "ui.selection_ops",
    "blender.runtime",
    "blender.assets",
    "ui.timer",  # last in, first out: the timer stops before the runtime shuts down
)


def _modules():
    return [importlib.import_module(f"{__package__}.{name}") for name in _MODULE_NAMES]


def register() -> None:
    for module in _modules():
        module.register()


def unregister() -> None:
    for module in reversed(_modules()):
        module.unregister()
