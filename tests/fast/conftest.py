"""Fixtures of the fast tier: the protocol core under plain CPython, without Blender.

`./scripts/test.sh` runs this folder first, with the venv's Python:

    "$PY" -m pytest -p no:pytest-blender --confcutdir tests/fast tests/fast

(--confcutdir keeps the in-Blender tests/conftest.py out). `tripo_blender.core` is imported
straight from the repository, and `bpy` cannot be imported at all here (the venv may have the bpy
module, so it is blocked): a core module that needed it would fail to import.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent
BLENDER_MODULES = ("bpy", "bmesh", "mathutils", "gpu", "aud", "bl_ui", "bl_operators")


class BlenderModulesBlocked(importlib.abc.MetaPathFinder):
    """Refuses to import Blender's own modules."""

    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in BLENDER_MODULES:
            raise ModuleNotFoundError(f"{fullname} is not available in the fast tier (no Blender)",
                                      name=fullname)
        return None


assert not any(name in sys.modules for name in BLENDER_MODULES), "bpy was imported before the fast tier"
sys.meta_path.insert(0, BlenderModulesBlocked())
for folder in (REPO, TESTS):  # the package under test, and the helpers both tiers share
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from emulator_process import emulator, emulator_server  # noqa: E402,F401 - fixtures of both tiers


@pytest.fixture
def tmod():
    """tmod("core.protocol.records") -> tripo_blender.core.protocol.records, imported from the repository."""
    return lambda name: importlib.import_module(f"tripo_blender.{name}")
