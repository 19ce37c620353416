"""Fixtures of the GUI tier (see harness.py). These tests run in the host's Python, not in Blender:
scripts/test_gui.sh runs them with `pytest -p no:pytest-blender tests/gui`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import (SCREENSHOT_ROOT, BlenderUser, Emulator, GuiBlender, XServer,  # noqa: E402
                     clean_screenshots, real_blender)


@pytest.fixture(scope="session")
def xserver():
    if real_blender() is None:
        pytest.skip("no real Blender: run ./scripts/real_blender.sh (as root) or scripts/test_gui.sh")
    server = XServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def extension_zip() -> Path:
    path = os.environ.get("TRIPO_EXTENSION_ZIP")
    if not path or not Path(path).is_file():
        pytest.skip("TRIPO_EXTENSION_ZIP is not set: run the GUI tier with scripts/test_gui.sh")
    return Path(path)


@pytest.fixture(scope="session")
def emulator_session(xserver):
    emulator = Emulator(sys.executable)
    yield emulator
    emulator.stop()


@pytest.fixture
def emulator(emulator_session):
    emulator_session.reset(task_seconds=4.0)
    return emulator_session


@pytest.fixture
def screenshots(request) -> Path:
    return clean_screenshots(SCREENSHOT_ROOT / request.node.name.replace("/", "_"))


@pytest.fixture
def user(tmp_path, extension_zip) -> BlenderUser:
    return BlenderUser(tmp_path, extension_zip)


@pytest.fixture
def launch(xserver, screenshots, emulator):
    """launch(user, **options) -> a running GuiBlender connected to the emulator; all are stopped
    (and screenshotted on failure) at the end of the test."""
    started: list[GuiBlender] = []

    def start(user: BlenderUser, *, name: str = "blender", connect: bool = True, **options) -> GuiBlender:
        env = dict(options.pop("env", {}))
        if connect:
            env.update(emulator.connection_env())
        blender = GuiBlender(xserver, user, screenshots, name=name, env=env, **options)
        started.append(blender)
        return blender

    yield start
    for blender in started:
        if blender.process.poll() is None:
            blender.screenshot("end")
        blender.kill()
        blender._log.close()
