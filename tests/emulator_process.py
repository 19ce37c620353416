"""The local Tripo emulator as a subprocess, its test-control routes and its fixtures (no bpy:
both tiers use them)."""

from __future__ import annotations

import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent
TEST_API_KEY = "tsk_test_0123456789abcdef"


sys.path.insert(0, str(REPO / "scripts"))
# How a subprocess starts Blender here: as the emulator starts its asset factory.
from emulator.server import resolve_blender_command as blender_command  # noqa: E402


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
