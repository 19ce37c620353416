"""The no-bpy rule of `core/`: every core module imports in a Python where Blender's modules
cannot be imported at all."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO

# A fresh interpreter: the result cannot depend on what other tests imported before.
IMPORT_EVERY_CORE_MODULE = """
import importlib, importlib.abc, pkgutil, sys
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] in ("bpy", "bmesh", "mathutils", "gpu", "bl_ui"):
            raise ModuleNotFoundError(fullname + " imported by core", name=fullname)
sys.meta_path.insert(0, Blocked())
import tripo_blender.core as core
names = [m.name for m in pkgutil.walk_packages(core.__path__, "tripo_blender.core.")]
for name in names:
    importlib.import_module(name)
assert "bpy" not in sys.modules
print(" ".join(names))
"""


def test_every_core_module_imports_without_blender():
    result = subprocess.run([sys.executable, "-c", IMPORT_EVERY_CORE_MODULE], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    imported = set(result.stdout.split())
    core_folder = REPO / "tripo_blender" / "core"
    # Every module and subpackage below core/ (core/__init__.py itself is not walked).
    expected = len(list(core_folder.rglob("*.py"))) - 1
    assert len(imported) == expected > 10
    protocol = {f"tripo_blender.core.protocol.{name}" for name in (
        "errors", "vocabulary", "records", "inputs", "request_models", "chains")}
    assert protocol <= imported, protocol - imported


def test_this_tier_runs_without_blender():
    assert "bpy" not in sys.modules
