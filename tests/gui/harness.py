"""Host-side harness of the GUI tier: an X server, real Blender windows, the emulator, screenshots.

Everything runs as a person would see it: a real Blender (scripts/real_blender.sh) with a window
on Xvfb, the built extension zip installed with Blender's own `extension install-file`, X input
through xdotool, and X-level screenshots (ImageMagick `import`), written to
out/gui-screenshots/<test>/<step>.png for a person to look at.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT_ROOT = REPO / "out" / "gui-screenshots"
DRIVER = Path(__file__).with_name("blender_driver.py")
PACKAGE = "bl_ext.user_default.tripo_blender"
SCREEN_SIZE = (1600, 900)

log = logging.getLogger("gui")


def real_blender() -> Path | None:
    path = os.environ.get("TRIPO_REAL_BLENDER") or str(REPO / ".cache" / "real-blender" / "blender")
    return Path(path) if Path(path).is_file() else None


def inside(*command: str) -> list[str]:
    """A command run inside the real Blender's root filesystem (Xvfb, xdotool, import live there)."""
    return [str(real_blender().with_name("chroot-run")), *command]


def wait_until(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        time.sleep(interval)


def terminate(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


class XServer:
    """A virtual screen (Xvfb) for the session."""

    def __init__(self, display: int | None = None):
        if display is None:  # the first display number no other X server uses
            display = next(n for n in range(90, 130) if not Path(f"/tmp/.X11-unix/X{n}").exists())
        self.display = f":{display}"
        self.process = subprocess.Popen(
            inside("Xvfb", self.display, "-screen", "0", f"{SCREEN_SIZE[0]}x{SCREEN_SIZE[1]}x24", "-nolisten", "tcp"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: Path(f"/tmp/.X11-unix/X{display}").exists() or self.process.poll() is not None,
                   30, what="Xvfb socket")
        if self.process.poll() is not None:
            raise RuntimeError(f"Xvfb {self.display} exited with {self.process.returncode}")

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(inside("env", f"DISPLAY={self.display}", *command), check=check,
                              capture_output=True, text=True, timeout=60)

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.run("import", "-window", "root", str(path))
        return path

    def xdotool(self, *args: str) -> None:
        self.run("xdotool", *args)

    def stop(self) -> None:
        terminate(self.process)


class BlenderUser:
    """A person's Blender profile: a user folder with the extension installed from its zip."""

    def __init__(self, root: Path, zip_path: Path, *, autosave_minutes: int = 0):
        self.root = root
        self.resources = root / "blender-user"
        self.tempdir = root / "blender-temp"
        self.tempdir.mkdir(parents=True, exist_ok=True)
        env = self.environment()
        install = subprocess.run(
            [str(real_blender()), "--online-mode", "--command", "extension", "install-file",
             "-r", "user_default", "-e", str(zip_path)],
            env=env, capture_output=True, text=True, timeout=300)
        if install.returncode != 0:
            raise RuntimeError(f"extension install failed: {install.stdout}\n{install.stderr}")
        # The profile a user would have after a first start: no splash, online access allowed,
        # their autosave interval, the temporary folder where autosave writes.
        script = (
            "import bpy, addon_utils\n"
            "p = bpy.context.preferences\n"
            "p.view.show_splash = False\n"
            "p.system.use_online_access = True\n"
            f"p.filepaths.temporary_directory = {str(self.tempdir)!r}\n"
            f"p.filepaths.use_auto_save_temporary_files = {bool(autosave_minutes)}\n"
            f"p.filepaths.auto_save_time = {max(1, autosave_minutes)}\n"
            f"assert {PACKAGE!r} in p.addons, 'the extension is not enabled after install'\n"
            "bpy.ops.wm.save_userpref()\n")
        configure = subprocess.run([str(real_blender()), "-b", "--python-exit-code", "1", "--python-expr", script],
                                   env=env, capture_output=True, text=True, timeout=300)
        if configure.returncode != 0:
            raise RuntimeError(f"profile set-up failed: {configure.stdout}\n{configure.stderr}")

    def environment(self, **extra: str) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TRIPO_", "BLENDER_USER"))}
        env.update(BLENDER_USER_RESOURCES=str(self.resources), **extra)
        return env

    @property
    def data_dir(self) -> Path:
        """The extension's user data folder (journal, downloads)."""
        return self.resources / "extensions" / ".user" / "user_default" / "tripo_blender"

    def journal(self) -> list[dict]:
        folder = self.data_dir / "journal"
        records = []
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                records.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        return records


class GuiBlender:
    """One running Blender with a window, driven through blender_driver.py and X input."""

    def __init__(self, xserver: XServer, user: BlenderUser, screenshots: Path, *, blend: Path | None = None,
                 env: dict | None = None, online: bool = True, name: str = "blender"):
        self.xserver, self.user, self.screenshots, self.name = xserver, user, screenshots, name
        self.control = user.root / f"control-{name}-{uuid.uuid4().hex[:6]}"
        self.control.mkdir(parents=True)
        command = [str(real_blender()), "--window-geometry", "0", "0", str(SCREEN_SIZE[0]), str(SCREEN_SIZE[1]),
                   "--online-mode" if online else "--offline-mode", "--python", str(DRIVER)]
        if blend is not None:
            command.insert(1, str(blend))
        self.log_path = user.root / f"{name}.log"
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            command, env=user.environment(DISPLAY=xserver.display, TRIPO_GUI_CONTROL_DIR=str(self.control),
                                          **(env or {})),
            stdout=self._log, stderr=subprocess.STDOUT, cwd=str(user.root), start_new_session=True)
        try:
            wait_until(lambda: (self.control / "ready").exists() or self.process.poll() is not None, 120,
                       what="Blender window")
        except TimeoutError:
            self.kill()
            raise
        if self.process.poll() is not None:
            raise RuntimeError(f"Blender exited with {self.process.returncode}: {self.log_tail()}")
        self.open_tab("Tripo")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def run(self, code: str, timeout: float = 60):
        """Runs `code` on Blender's main thread (from its event loop); returns its `result`."""
        if self.process.poll() is not None:
            raise RuntimeError(f"Blender is not running (exit {self.process.returncode}): {self.log_tail()}")
        stem = f"{time.monotonic_ns()}"
        temporary = self.control / f"{stem}.tmp"
        temporary.write_text(code)
        os.replace(temporary, self.control / f"{stem}.command")
        answer = self.control / f"{stem}.answer"
        wait_until(lambda: answer.exists() or self.process.poll() is not None, timeout, interval=0.05,
                   what=f"answer to {code[:60]!r}")
        if not answer.exists():
            raise RuntimeError(f"Blender exited while running {code[:60]!r}: {self.log_tail()}")
        payload = json.loads(answer.read_text())
        answer.unlink()
        if not payload["ok"]:
            raise AssertionError(f"in Blender:\n{payload['error']}")
        return payload["result"]

    def wait_for(self, expression: str, timeout: float = 60, what: str = "") -> object:
        """Polls a Python expression inside Blender until it is truthy; returns its value."""
        return wait_until(lambda: self.run(f"result = {expression}"), timeout, interval=0.3,
                          what=what or expression)

    def screenshot(self, step: str) -> Path:
        number = len(list(self.screenshots.glob("*.png"))) + 1  # one sequence per test, all windows
        return self.xserver.screenshot(self.screenshots / f"{number:02d}-{self.name}-{step}.png")

    def key(self, *keys: str) -> None:
        self.xserver.xdotool("key", "--clearmodifiers", *keys)

    def hover(self, x: int, y: int) -> None:
        """Blender registers a click only after pointer motion over the spot."""
        self.xserver.xdotool("mousemove", str(x), str(y))
        time.sleep(0.2)
        self.xserver.xdotool("mousemove", str(x + 1), str(y + 1))
        time.sleep(0.2)

    def open_tab(self, category: str = "Tripo") -> None:
        """Clicks down the sidebar's tab strip (its right edge) until `category` is the active tab,
        as a person scanning the tabs would; Python cannot set the active tab."""
        x, y, width, height = self.run("r = view3d_sidebar()['region']; result = [r.x, r.y, r.width, r.height]")
        tab_x, top = x + width - 10, SCREEN_SIZE[1] - (y + height)
        for offset in range(20, min(height, 600), 18):
            if self.run("result = view3d_sidebar()['region'].active_panel_category") == category:
                return
            self.hover(tab_x, top + offset)
            self.xserver.xdotool("click", "1")
            time.sleep(0.2)
        if self.run("result = view3d_sidebar()['region'].active_panel_category") != category:
            raise AssertionError(f"the sidebar has no {category} tab")
        self.hover(*self.viewport_center())  # no tooltip left over the panel

    def type_into_sidebar(self, offset_from_top: int, text: str) -> None:
        """Clicks a text field of the sidebar (its row `offset_from_top` pixels below the region's
        top), types `text` and confirms with Return, through X input."""
        x, y, width, height = self.run("r = view3d_sidebar()['region']; result = [r.x, r.y, r.width, r.height]")
        self.hover(x + width // 2, SCREEN_SIZE[1] - (y + height) + offset_from_top)
        self.xserver.xdotool("click", "1")
        time.sleep(0.3)
        self.xserver.xdotool("type", "--delay", "30", text)
        self.key("Return")
        time.sleep(0.3)

    def scroll_sidebar(self, clicks: int) -> None:
        """Turns the mouse wheel over the sidebar: down for clicks > 0, up for clicks < 0."""
        x, y, width, height = self.run("r = view3d_sidebar()['region']; result = [r.x, r.y, r.width, r.height]")
        self.hover(x + width // 2, SCREEN_SIZE[1] - (y + height // 2))
        self.xserver.xdotool("click", "--repeat", str(abs(clicks)), "--delay", "40", "5" if clicks > 0 else "4")
        time.sleep(0.5)

    def viewport_center(self) -> tuple[int, int]:
        """Screen coordinates (X: origin top-left) of the middle of the 3D view's main region."""
        x, y, width, height = self.run(
            "r = view3d_main()['region']; result = [r.x, r.y, r.width, r.height]")
        return x + width // 2, SCREEN_SIZE[1] - (y + height // 2)

    def quit(self) -> None:
        if self.process.poll() is None:
            try:
                self.run("bpy.app.timers.register(lambda: bpy.ops.wm.quit_blender() and None, first_interval=0.1)\n"
                         "result = True", timeout=10)
                self.process.wait(30)
            except (RuntimeError, AssertionError, TimeoutError, subprocess.TimeoutExpired):
                self.kill()
        self._log.close()

    def kill(self) -> None:
        """kill -9, as a crash or an impatient user would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)


class Emulator:
    """The Tripo emulator as a host process, with its test-control routes."""

    def __init__(self, python: str, task_seconds: float = 3.0):
        import requests  # the host venv has it

        self._http = requests.Session()
        self._http.trust_env = False
        self.process = subprocess.Popen(
            [python, str(REPO / "scripts" / "tripo_emulator.py"), "--host", "127.0.0.1", "--port", "0",
             "--task-seconds", str(task_seconds), "--cache-dir", str(REPO / ".cache" / "emulator-assets"),
             "--blender", str(real_blender())],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = ""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line or line.startswith("READY "):
                break
        if not line.startswith("READY "):
            self.process.kill()
            raise RuntimeError("the emulator did not start")
        threading.Thread(target=self.process.stdout.read, daemon=True).start()
        self.base_url = line.split()[1].strip()
        self.api_key = "tsk_gui_test_0123456789abcdef"

    def control(self, method: str, route: str, payload=None):
        response = self._http.request(method, f"{self.base_url}/_emulator/{route}", json=payload, timeout=30)
        response.raise_for_status()
        return response.json() if response.content else None

    def reset(self, **config) -> None:
        self.control("POST", "reset")
        if config:
            self.control("POST", "config", config)

    def tasks(self) -> dict:
        return self.control("GET", "tasks")["tasks"]

    def requests(self) -> list[dict]:
        return self.control("GET", "requests")["requests"]

    def creates(self) -> list[dict]:
        reads = ("/v3/tasks", "/v3/account", "/v3/files")
        return [r for r in self.requests() if r["method"] == "POST" and r["path"].startswith("/v3/")
                and not r["path"].startswith(reads)]

    def connection_env(self) -> dict:
        return {"TRIPO_API_KEY": self.api_key, "TRIPO_API_BASE": self.base_url}

    def stop(self) -> None:
        terminate(self.process)


def clean_screenshots(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder
