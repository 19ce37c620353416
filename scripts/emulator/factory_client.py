"""Client of the Blender asset factory (`asset_factory.py`), for the emulator server process.

Standard library only: the server may run in a Python without `bpy`. One Blender worker
process (slow to start) is started lazily and serves every request in turn; results are cached
on disk by content, so a request seen before (even by another process) never reaches Blender:

    factory = AssetFactory(["/path/to/blender"], cache_dir=".cache/emulator-assets")
    result = factory.produce("model", {"prompt": "a robot", "seed": 1, "texture": True})
    result["files"]["model"]           # absolute path of a GLB under cache_dir/<key>/
    result["info"]["part_names"]
    factory.close()

Cache layout: `cache_dir/<key>/result.json` (op, params, file names relative to the folder,
info) next to the files. The folder is written under a temporary name and renamed when
complete, so a folder that exists is always whole.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import shlex
import shutil
import subprocess
import threading
import time
import uuid
import weakref
from collections import deque
from pathlib import Path

log = logging.getLogger(__name__)

# Bump when the factory's output changes in a way the script digest below would not capture
# (e.g. a different Blender behaviour being worked around).
FACTORY_VERSION = "1"
PROTOCOL_PREFIX = "@@ASSET "
SCRIPT_PATH = Path(__file__).resolve().with_name("asset_factory.py")
FACTORY_PACKAGE = SCRIPT_PATH.with_name("factory")
RESULT_FILE = "result.json"


class AssetFactoryError(RuntimeError):
    """The factory could not make the asset (Blender's message is in the text)."""


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_script_digest: str | None = None


def script_digest() -> str:
    """The hash of the factory's code (the entry script and its package) is part of every cache
    key: editing the factory can never serve assets made by an older version of it."""
    global _script_digest
    if _script_digest is None:
        files = [SCRIPT_PATH, *sorted(FACTORY_PACKAGE.glob("*.py"))]
        digest = hashlib.sha256()
        for path in files:
            digest.update(f"{path.name}\0{file_sha256(path)}\n".encode())
        _script_digest = digest.hexdigest()
    return _script_digest


def cache_key(op: str, params: dict, inputs: dict[str, str] | None = None) -> str:
    payload = {
        "factory_version": FACTORY_VERSION,
        "script": script_digest(),
        "op": op,
        "params": params,
        "inputs": {name: file_sha256(path) for name, path in sorted((inputs or {}).items())},
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def worker_command(blender_command: list[str]) -> list[str]:
    """How to start a worker: Blender's command line, or `python asset_factory.py --serve`
    when the command is a Python interpreter (that has the bpy module). A Python running a
    script, e.g. `python scripts/blender_launcher.py`, is a Blender-like command."""
    executable = os.path.basename(blender_command[0]).lower()
    runs_script = any(arg.endswith(".py") for arg in blender_command[1:])
    if executable.startswith("python") and not runs_script:
        return [*blender_command, str(SCRIPT_PATH), "--serve"]
    return [*blender_command, "-b", "--factory-startup", "--python-exit-code", "1",
            "--python", str(SCRIPT_PATH), "--", "--serve"]


class _Worker:
    """One running factory process and the threads that read its output."""

    def __init__(self, command: list[str], env: dict[str, str] | None):
        self.command = command
        self.messages: queue.Queue = queue.Queue()
        self.tail: deque[str] = deque(maxlen=60)  # last lines of noise, for error messages
        log.info("starting asset factory worker: %s", shlex.join(command))
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, encoding="utf-8", errors="replace", bufsize=1, env=env)
        threading.Thread(target=self._read_stdout, daemon=True, name="factory-stdout").start()
        threading.Thread(target=self._read_stderr, daemon=True, name="factory-stderr").start()

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            # The prefix is searched, not only matched at the start: native code may have left
            # an unterminated line just before an answer.
            position = line.find(PROTOCOL_PREFIX)
            if position < 0:
                self._noise(line)
                continue
            if position:
                self._noise(line[:position])
            try:
                self.messages.put(json.loads(line[position + len(PROTOCOL_PREFIX):]))
            except json.JSONDecodeError:
                self._noise(line)
        self.messages.put(None)  # EOF: the process ended

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            self._noise(line)

    def _noise(self, line: str) -> None:
        line = line.rstrip()
        if line:
            self.tail.append(line)
            log.debug("blender: %s", line)

    def alive(self) -> bool:
        return self.process.poll() is None

    def receive(self, timeout: float, want_id=None) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            try:
                message = self.messages.get(timeout=remaining)
            except queue.Empty:
                raise TimeoutError from None
            if message is None:
                self.messages.put(None)  # keep reporting EOF to later calls
                raise EOFError
            if want_id is None or message.get("id") == want_id:
                return message
            log.warning("ignoring a stale factory answer: %s", message.get("id"))

    def send(self, request: dict) -> None:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()

    def describe_failure(self) -> str:
        code = self.process.poll()
        tail = "\n".join(list(self.tail)[-25:])
        return f"exit status {code}; last output:\n{tail}" if tail else f"exit status {code}"

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.close()  # the worker ends on EOF
            except OSError:
                pass
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            try:
                stream.close()
            except (OSError, ValueError):
                pass


class AssetFactory:
    """Thread-safe, blocking, caching front of one Blender worker process."""

    def __init__(self, blender_command: list[str] | str, cache_dir: str | Path, *,
                 startup_timeout: float = 300.0, request_timeout: float = 600.0,
                 env: dict[str, str] | None = None):
        if isinstance(blender_command, str):
            blender_command = shlex.split(blender_command)
        if not blender_command:
            raise ValueError("blender_command is empty")
        self.blender_command = list(blender_command)
        self.cache_dir = Path(cache_dir).resolve()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.startup_timeout = startup_timeout
        self.request_timeout = request_timeout
        self.env = env
        self.worker_info: dict = {}  # the worker's "ready" message (Blender version...)
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self._finalizer = weakref.finalize(self, AssetFactory._stop_worker, [None])
        self._counter = 0

    # -- public -----------------------------------------------------------------------------

    def produce(self, op: str, params: dict, inputs: dict[str, str] | None = None) -> dict:
        """Makes (or finds in the cache) an asset; returns {"files": {...}, "info": {...}}."""
        inputs = {name: str(Path(path).resolve()) for name, path in (inputs or {}).items()}
        for name, path in inputs.items():
            if not os.path.isfile(path):
                raise AssetFactoryError(f"input {name!r} does not exist: {path}")
        key = cache_key(op, params, inputs)
        cached = self._load(key)
        if cached is not None:
            log.debug("asset cache hit %s %s", op, key[:12])
            return cached
        with self._lock:
            cached = self._load(key)  # made by another thread while we waited
            if cached is not None:
                return cached
            return self._make(key, op, params, inputs)

    def cached(self, op: str, params: dict, inputs: dict[str, str] | None = None) -> dict | None:
        """The cached result of a request, or None (never starts Blender)."""
        return self._load(cache_key(op, params, inputs))

    def close(self) -> None:
        with self._lock:
            if self._worker is not None:
                self._worker.stop()
                self._worker = None

    def __enter__(self) -> "AssetFactory":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def worker_pid(self) -> int | None:
        worker = self._worker
        return worker.process.pid if worker is not None and worker.alive() else None

    # -- cache ------------------------------------------------------------------------------

    def _load(self, key: str) -> dict | None:
        folder = self.cache_dir / key
        try:
            stored = json.loads((folder / RESULT_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        files = {name: str(folder / relative) for name, relative in stored["files"].items()}
        if not all(os.path.isfile(path) for path in files.values()):
            return None  # a damaged entry is made again
        return {"files": files, "info": stored["info"]}

    def _make(self, key: str, op: str, params: dict, inputs: dict[str, str]) -> dict:
        staging = self.cache_dir / f".tmp-{key[:16]}-{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True)
        try:
            self._counter += 1
            request = {"id": f"{os.getpid()}-{self._counter}", "op": op, "params": params,
                       "inputs": inputs, "out_dir": str(staging)}
            started = time.monotonic()
            answer = self._call(request)
            if not answer.get("ok"):
                raise AssetFactoryError(f"{op}: {answer.get('error', 'unknown error')}")
            files = {}
            for name, path in answer.get("files", {}).items():
                relative = Path(path).resolve().relative_to(staging.resolve())
                files[name] = relative.as_posix()
            record = {"op": op, "params": params, "inputs": inputs, "files": files,
                      "info": answer.get("info", {}), "seconds": answer.get("seconds"),
                      "blender": self.worker_info.get("blender"), "created": time.time()}
            (staging / RESULT_FILE).write_text(json.dumps(record, indent=1), encoding="utf-8")
            final = self.cache_dir / key
            try:
                os.rename(staging, final)
            except OSError:
                if not (final / RESULT_FILE).is_file():  # not a lost race: a real failure
                    raise
                shutil.rmtree(staging, ignore_errors=True)
            log.info("asset %s made in %.2f s (%s)", op, time.monotonic() - started, key[:12])
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        result = self._load(key)
        if result is None:
            raise AssetFactoryError(f"{op}: the result could not be stored in {self.cache_dir}")
        return result

    # -- worker -----------------------------------------------------------------------------

    def _ensure_worker(self) -> _Worker:
        if self._worker is not None and self._worker.alive():
            return self._worker
        if self._worker is not None:
            log.warning("asset factory worker died (%s); restarting",
                        self._worker.describe_failure())
            self._worker.stop()
            self._worker = None
        try:
            worker = _Worker(worker_command(self.blender_command), self.env)
        except OSError as exc:
            raise AssetFactoryError(f"cannot start Blender ({self.blender_command[0]}): {exc}") from exc
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, AssetFactory._stop_worker, [worker])
        started = time.monotonic()
        try:
            ready = worker.receive(self.startup_timeout)
        except (TimeoutError, EOFError) as exc:
            failure = worker.describe_failure()
            worker.process.kill()
            worker.stop()
            kind = "did not start in time" if isinstance(exc, TimeoutError) else "exited"
            raise AssetFactoryError(f"the asset factory {kind}: {failure}") from None
        self.worker_info = ready
        log.info("asset factory ready in %.1f s (Blender %s, pid %s)",
                 time.monotonic() - started, ready.get("blender"), ready.get("pid"))
        self._worker = worker
        return worker

    def _call(self, request: dict) -> dict:
        worker = self._ensure_worker()
        try:
            worker.send(request)
        except OSError:  # it died between requests: one fresh start
            worker = self._ensure_worker()
            worker.send(request)
        try:
            return worker.receive(self.request_timeout, want_id=request["id"])
        except TimeoutError:
            worker.process.kill()
            failure = worker.describe_failure()
            worker.stop()
            self._worker = None
            raise AssetFactoryError(
                f"{request['op']}: no answer within {self.request_timeout:.0f} s; worker killed "
                f"({failure})") from None
        except EOFError:
            worker.process.wait(timeout=10)
            failure = worker.describe_failure()
            worker.stop()
            self._worker = None
            raise AssetFactoryError(f"{request['op']}: Blender exited while working ({failure})") from None

    @staticmethod
    def _stop_worker(holder) -> None:
        worker = holder[0] if isinstance(holder, list) else holder
        if worker is not None:
            worker.stop(timeout=5)
