"""Helpers shared by the benchmark scripts: start the emulator, read its logs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the package's core imports no bpy: usable from plain Python


class Emulator:
    def __init__(self, *args: str, task_seconds: float = 2.0):
        command = [sys.executable, str(REPO / "scripts" / "tripo_emulator.py"), "--port", "0",
                   "--task-seconds", str(task_seconds), "--log-level", "WARNING",
                   "--cache-dir", str(REPO / ".cache" / "emulator-assets"), *args]
        blender = os.environ.get("BLENDER_EXECUTABLE")
        if blender:
            command += ["--blender", blender]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError("emulator did not start")
        threading.Thread(target=self.process.stdout.read, daemon=True).start()
        self.url = line.split()[1]
        self.http = requests.Session()
        self.http.trust_env = False

    def control(self, method: str, route: str, payload=None):
        response = self.http.request(method, f"{self.url}/_emulator/{route}", json=payload, timeout=60)
        response.raise_for_status()
        return response.json()

    def close(self):
        self.process.terminate()
        self.process.wait(10)


def rerun_with_temporary_user_dir(script: str, argv: list[str]) -> None:
    """Inside Blender: unless already done, runs `script` again in a new Blender whose user
    folders are a temporary one, and exits with its status. Blender reads its user folders at
    start-up, so this is how a benchmark avoids installing into a real profile."""
    if os.environ.get("TRIPO_BENCH_USER_DIR"):
        return
    import tempfile

    user_dir = tempfile.mkdtemp(prefix="tripo-bench-user-")
    env = dict(os.environ, BLENDER_USER_RESOURCES=user_dir, TRIPO_BENCH_USER_DIR=user_dir)
    blender = os.environ.get("BLENDER_EXECUTABLE") or sys.argv[0]
    status = subprocess.run([blender, "-b", "--python-exit-code", "1", "--python", script, "--",
                             *argv], env=env).returncode
    sys.exit(status)


def install_extension(zip_path: str) -> str:
    """Inside Blender: installs and enables the built extension; returns its module name."""
    import bpy

    bpy.context.preferences.system.use_online_access = True
    bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                             enable_on_install=True)
    return "bl_ext.user_default.tripo_blender"
