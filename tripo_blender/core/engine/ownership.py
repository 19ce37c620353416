"""Which process owns a job, shared by every Blender process of the user.

Several Blender processes (two GUI instances, `blender -b` renders and scripts) share one journal
folder. A job belongs to the process that runs it: that process holds an exclusive lock on
`<journal>/<job_id>.lock` for as long as the job is unfinished in its engine. Another process
that finds the lock held leaves the job alone; a lock nobody holds (the owner quit or crashed)
may be claimed, which is how a job is adopted.

- POSIX: `fcntl.flock` on the lock file. The kernel drops the lock when its process dies, so a
  stale lock cannot exist.
- Elsewhere (Windows): the lock file holds the owner's pid and process start token; it counts as
  held while that process is alive with the same token (a reused pid has another start token).

No `bpy` here (see `core/__init__`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

log = logging.getLogger(__name__)


def _start_token(pid: int) -> str:
    """Something that tells this process from a later one with the same pid."""
    try:  # Linux: the start time in clock ticks since boot (field 22 of /proc/<pid>/stat)
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return ""


_PID = os.getpid()
# The start time is read once; elsewhere than Linux this import's time stands in for it.
PROCESS_TOKEN = _start_token(_PID) or f"t{time.time():.6f}"
HOST = socket.gethostname()


def this_process() -> dict:
    """The owner fields of this process (stored in a job record as `owner`)."""
    pid = os.getpid()
    token = PROCESS_TOKEN if pid == _PID else (_start_token(pid) or f"t{time.time():.6f}")
    return {"pid": pid, "token": token, "host": HOST}


def is_this_process(owner: dict | None) -> bool:
    me = this_process()
    return bool(owner) and all(owner.get(k) == me[k] for k in ("pid", "token", "host"))


def process_alive(pid: int, token: str = "") -> bool:
    """Whether the process `pid` runs (and, when the token can be checked, is the same one)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        return _windows_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    live_token = _start_token(pid)
    return not (token and live_token and not token.startswith("t") and live_token != token)


def _windows_alive(pid: int) -> bool:  # pragma: no cover - Windows only
    import ctypes

    kernel32 = ctypes.windll.kernel32
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        return bool(kernel32.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == 259
    finally:
        kernel32.CloseHandle(handle)


class JobLocks:
    """The per-job lock files of one journal folder. Thread-safe."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self._held: dict[str, int] = {}  # job id -> open file descriptor holding the lock
        self._mutex = threading.Lock()

    def path_for(self, job_id: str) -> Path:
        return self.directory / f"{job_id}.lock"

    def holds(self, job_id: str) -> bool:
        with self._mutex:
            return job_id in self._held

    def claim(self, job_id: str) -> bool:
        """Takes the job's lock (True), or finds it held by another live process (False).
        Claiming a lock this object already holds succeeds."""
        with self._mutex:
            if job_id in self._held:
                return True
            fd = self._lock(job_id)
            if fd is None:
                return False
            self._held[job_id] = fd
            return True

    def release(self, job_id: str) -> None:
        with self._mutex:
            fd = self._held.pop(job_id, None)
        if fd is not None:
            self._unlock(job_id, fd)

    def release_all(self) -> None:
        with self._mutex:
            held, self._held = self._held, {}
        for job_id, fd in held.items():
            self._unlock(job_id, fd)

    def held_elsewhere(self, job_id: str) -> bool:
        """Whether another live process owns the job (a quick probe: claim and release)."""
        with self._mutex:
            if job_id in self._held:
                return False
            fd = self._lock(job_id)
        if fd is None:
            return True
        self._unlock(job_id, fd)
        return False

    # --- the lock itself ------------------------------------------------------------------------
    def _lock(self, job_id: str) -> int | None:
        path = self.path_for(job_id)
        self.directory.mkdir(parents=True, exist_ok=True)
        if fcntl is not None:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return None
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(this_process()).encode())  # for people reading the folder
            return fd
        return self._lock_by_pid(path)

    def _lock_by_pid(self, path: Path) -> int | None:  # pragma: no cover - Windows only
        me = json.dumps(this_process()).encode()
        for _attempt in range(2):
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    owner = json.loads(path.read_text() or "{}")
                except (OSError, ValueError):
                    owner = {}  # being written right now, or left half-written by a crash
                if not owner and time.time() - _mtime(path) < 5:
                    return None
                if owner and process_alive(int(owner.get("pid", 0)), str(owner.get("token", ""))):
                    return None
                log.info("taking over the stale lock %s (owner %s is gone)", path.name, owner.get("pid"))
                path.unlink(missing_ok=True)
                continue
            os.write(fd, me)
            return fd
        return None

    def _unlock(self, job_id: str, fd: int) -> None:
        try:
            if fcntl is None:  # pragma: no cover - Windows only
                os.close(fd)
                self.path_for(job_id).unlink(missing_ok=True)
                return
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError as exc:
            log.debug("unlocking %s: %s", job_id, exc)
        finally:
            if fcntl is not None:
                os.close(fd)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
