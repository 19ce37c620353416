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
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import pytest

try:
    import bpy
except ImportError:  # the host-side pytest of pytest-blender with a real Blender: it only relaunches
    bpy = None       # pytest inside Blender (its pytest_configure), where bpy is importable
import requests

REPO = Path(__file__).resolve().parent.parent
EXTENSION_REPO = "user_default"
PACKAGE = f"bl_ext.{EXTENSION_REPO}.tripo_blender"
TEST_API_KEY = "tsk_test_0123456789abcdef"
# Debian's Blender package is built without USD; the emulator makes its outputs with the same
# Blender, so USD conversions are checked only where Blender has it (every bpy-module tier).
HAS_USD = bpy is not None and "usd_export" in dir(bpy.ops.wm)
NO_USD_REASON = "this Blender build has no USD support (Debian's package); the bpy tiers test USDZ"
INSTALLED_WHEEL_FILES: list[Path] = []

# The GUI tier drives a real Blender from the host's Python (scripts/test_gui.sh); inside Blender
# there is nothing of it to collect.
collect_ignore = ["gui"] if bpy is not None else []


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
    """tmod("core.tasks") -> the module bl_ext.user_default.tripo_blender.core.tasks."""
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


# --- the emulator ---------------------------------------------------------------------------------

def blender_command() -> list[str]:
    """How a subprocess starts Blender here (the emulator makes its assets with it)."""
    if os.environ.get("TRIPO_BLENDER_COMMAND"):
        return shlex.split(os.environ["TRIPO_BLENDER_COMMAND"])
    if os.environ.get("BLENDER_EXECUTABLE"):
        return [os.environ["BLENDER_EXECUTABLE"]]
    return [sys.executable]


class EmulatorHandle:
    """A running emulator process and its test-control routes."""

    def __init__(self, process: subprocess.Popen, base_url: str):
        self.process = process
        self.base_url = base_url
        self.api_key = TEST_API_KEY
        self._http = requests.Session()
        self._http.trust_env = False  # loopback: never through a proxy

    def _control(self, method: str, route: str, payload=None):
        response = self._http.request(method, f"{self.base_url}/_emulator/{route}", json=payload,
                                      timeout=30)
        response.raise_for_status()
        return response.json() if response.content else None

    def reset(self) -> None:
        self._control("POST", "reset")

    def configure(self, **config) -> None:
        self._control("POST", "config", config)

    def set_faults(self, spec: str) -> None:
        self._control("POST", "faults", {"spec": spec})

    def pending_faults(self) -> list[dict]:
        return self._control("GET", "faults")["faults"]

    def clear_faults(self) -> None:
        self._control("POST", "faults", {"spec": "", "clear": True})

    def requests(self) -> list[dict]:
        return self._control("GET", "requests")["requests"]

    def api_requests(self, path_prefix: str = "/v3/") -> list[dict]:
        return [r for r in self.requests() if r["path"].startswith(path_prefix)]

    def creates(self) -> list[dict]:
        """Create requests the emulator received (any create route, whatever the outcome)."""
        reads = ("/v3/tasks", "/v3/account", "/v3/files")
        return [r for r in self.requests()
                if r["method"] == "POST" and r["path"].startswith("/v3/") and not r["path"].startswith(reads)]

    def tasks(self) -> dict:
        return self._control("GET", "tasks")["tasks"]

    def big_file(self, size_mb: int) -> str:
        return self._control("POST", "big-file", {"size_mb": size_mb})["url"]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_emulator(*extra_args: str, task_seconds: float = 0.5) -> EmulatorHandle:
    command = [
        sys.executable, str(REPO / "scripts" / "tripo_emulator.py"),
        "--host", "127.0.0.1", "--port", "0",
        "--task-seconds", str(task_seconds),
        "--cache-dir", str(REPO / ".cache" / "emulator-assets"),
        "--blender", shlex.join(blender_command()),
        *extra_args,
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=None, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"emulator exited with {process.wait()}")
        if line.startswith("READY "):
            # Keep draining stdout so the emulator never blocks on a full pipe.
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return EmulatorHandle(process, line.split()[1].strip())
    process.kill()
    raise RuntimeError("emulator did not print READY within 60 s")


@pytest.fixture(scope="session")
def emulator_server():
    handle = start_emulator()
    yield handle
    handle.stop()


@pytest.fixture
def emulator(emulator_server):
    emulator_server.reset()
    return emulator_server


# --- the extension connected to the emulator ------------------------------------------------------

def write_png(path, width=64, height=64, rgb=(200, 120, 40)):
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


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


def reset_runtime(tmod):
    """Stops the engine and forgets every job (journal included) between tests."""
    runtime_module = tmod("blender.runtime")
    runtime_module.get_runtime().shutdown()
    runtime_module._runtime = None
    runtime_module.ENGINE_OPTIONS.clear()
    runtime_module.ENGINE_OPTIONS.update(runtime_module.DEFAULT_ENGINE_OPTIONS)
    shutil.rmtree(tmod("blender.settings").user_data_dir("journal"), ignore_errors=True)
