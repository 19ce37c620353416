"""Test fixtures. These tests run INSIDE Blender (pytest-blender starts `blender -b`).

- The built extension zip ($TRIPO_EXTENSION_ZIP, made by scripts/build_extension.py) is installed
  as a real extension into a temporary Blender user directory and enabled, once per session; tests
  reach it as `bl_ext.user_default.tripo_blender`, exactly as users get it.
- Every test starts from an empty scene.
- `emulator` is the local Tripo emulator, a real HTTP server in a subprocess, reset before each test.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

try:
    import bpy
except ImportError:  # the host-side pytest of pytest-blender with a real Blender: it only relaunches
    bpy = None       # pytest inside Blender (its pytest_configure), where bpy is importable

from emulator_process import REPO, blender_command  # noqa: F401 - tests import them from here
from emulator_process import emulator, emulator_server  # noqa: F401 - fixtures of both tiers
from sample_files import write_png  # noqa: F401

EXTENSION_REPO = "user_default"
PACKAGE = f"bl_ext.{EXTENSION_REPO}.tripo_blender"
# Debian's Blender package is built without USD; the emulator makes its outputs with the same
# Blender, so USD conversions are checked only where Blender has it (every bpy-module tier).
HAS_USD = bpy is not None and "usd_export" in dir(bpy.ops.wm)
NO_USD_REASON = "this Blender build has no USD support (Debian's package); the bpy tiers test USDZ"
INSTALLED_WHEEL_FILES: list[Path] = []

# The GUI tier drives a real Blender from the host's Python (scripts/test_gui.sh), and the fast tier
# runs without Blender (tests/fast, run first by scripts/test.sh): inside Blender there is nothing
# of either to collect.
collect_ignore = ["gui", "fast"] if bpy is not None else []


def _temporary_user_dir() -> Path:
    """Blender's user folders must point at a temporary directory (never the real profile).

    Blender resolves the extension repositories when it starts, so the directory has to be set
    before that: ./scripts/test.sh exports a fresh BLENDER_USER_RESOURCES for every run.
    """
    current = os.environ.get("BLENDER_USER_RESOURCES", "")
    if not current or not Path(current).resolve().is_relative_to(Path(tempfile.gettempdir()).resolve()):
        pytest.exit("BLENDER_USER_RESOURCES must point at a temporary directory: run the tests "
                    "with ./scripts/test.sh", returncode=2)
    return Path(current)


def _extension_zip() -> Path:
    zip_path = os.environ.get("TRIPO_EXTENSION_ZIP")
    if zip_path and Path(zip_path).is_file():
        return Path(zip_path)
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "build_extension.py"), "--quiet"],
                         check=True, capture_output=True, text=True).stdout.strip()
    return Path(out)


@pytest.fixture(scope="session", autouse=True)
def tripo_extension():
    """Installs and enables the built extension; yields its package name."""
    if bpy is None:  # the GUI tier (host side) has its own fixtures
        yield None
        return
    user_dir = _temporary_user_dir()
    assert str(user_dir) in bpy.utils.user_resource("EXTENSIONS")
    bpy.context.preferences.system.use_online_access = True
    result = bpy.ops.extensions.package_install_files(
        filepath=str(_extension_zip()), repo=EXTENSION_REPO, enable_on_install=True)
    assert result == {"FINISHED"}, result
    assert PACKAGE in bpy.context.preferences.addons, "extension did not enable"
    # What Blender unpacked from the manifest's wheels, right after the install.
    INSTALLED_WHEEL_FILES.extend(
        (Path(bpy.utils.user_resource("EXTENSIONS")) / ".local").rglob("pydantic_core/__init__.py"))
    yield PACKAGE
    bpy.ops.preferences.addon_disable(module=PACKAGE)


@pytest.fixture
def tripo(tripo_extension):
    """The installed extension's package module."""
    return importlib.import_module(tripo_extension)


@pytest.fixture
def tmod(tripo_extension):
    """tmod("core.protocol.records") -> the module bl_ext.user_default.tripo_blender.core.protocol.records."""
    return lambda name: importlib.import_module(f"{tripo_extension}.{name}")


@pytest.fixture
def prefs(tripo_extension):
    return bpy.context.preferences.addons[tripo_extension].preferences


@pytest.fixture(autouse=True)
def clean_scene():
    """An empty scene for every test, and online access on (tests that need it off turn it off)."""
    if bpy is None:
        yield
        return
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.context.preferences.system.use_online_access = True
    yield


# --- the extension connected to the emulator ------------------------------------------------------

@pytest.fixture
def connected(prefs, emulator, tmod, tmp_path, monkeypatch):
    """The extension pointed at the emulator, with a fresh runtime and journal."""
    monkeypatch.delenv("TRIPO_API_KEY", raising=False)
    monkeypatch.delenv("TRIPO_API_BASE", raising=False)
    prefs.provider = "tripo"
    prefs.api_base = "custom"
    prefs.custom_base_url = emulator.base_url
    prefs.api_key = emulator.api_key
    prefs.proxy_mode = "none"
    prefs.download_dir = str(tmp_path / "downloads")
    yield emulator
    reset_runtime(tmod)
    # Re-read the preferences: a test may have re-enabled the extension (new preferences).
    prefs = bpy.context.preferences.addons[PACKAGE].preferences
    prefs.api_key = ""
    prefs.api_base = "global"
    prefs.download_dir = ""


def our_handlers() -> list:
    """Functions of the extension still in any of bpy.app.handlers' lists."""
    found = []
    for name in dir(bpy.app.handlers):
        handlers = getattr(bpy.app.handlers, name)
        if isinstance(handlers, list):
            found += [h for h in handlers if getattr(h, "__module__", "").startswith(PACKAGE)]
    return found


def our_threads() -> list:
    """The extension's threads (every one it starts is named tripo-...)."""
    return [t for t in threading.enumerate() if t.name.startswith("tripo")]


def reset_runtime(tmod):
    """Stops the engine and forgets every job (journal included) between tests."""
    runtime_module = tmod("blender.runtime")
    runtime_module.get_runtime().shutdown()
    runtime_module._runtime = None
    runtime_module.ENGINE_OPTIONS.clear()
    runtime_module.ENGINE_OPTIONS.update(runtime_module.DEFAULT_ENGINE_OPTIONS)
    shutil.rmtree(tmod("blender.settings").user_data_dir("journal"), ignore_errors=True)
