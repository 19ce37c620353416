"""The emulator's records: tasks, uploads, accounts, the request log. No HTTP here.

A task's status is a function of time and of its asset production:
queued for the first 15 % of its duration (`queuing_num` > 0), then running with progress rising
with time, then, once the duration has passed AND its assets are ready, success (or failed when
production failed or the prompt asked for a failure). So a task never completes before its
assets exist, and never before `task_seconds`.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

QUEUED_SHARE = 0.15
ACTIVE = ("queued", "running")
# What generation tasks produce: "light" small props (fast, the default for tests) or
# "realistic" Tripo-sized models (~200k triangles, 2048² PBR textures, a GLB of 15-25 MB).
ASSET_PROFILES = ("light", "realistic")
FINAL = ("success", "failed")


def iso(t: float | None) -> str | None:
    return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


@dataclass
class Config:
    """What `/_emulator/config` can change (and `/_emulator/reset` restores)."""
    api_key: str | None = None  # None: any key starting with tsk_
    task_seconds: float = 3.0
    task_seconds_max: float = 0.0  # > task_seconds: each task lasts a random time in between
    concurrency_limit: int = 10
    rate_limit_per_minute: int = 200
    balance: int = 10000
    blocked_word: str = "forbidden"
    url_ttl_seconds: float = 300.0
    slow_seconds: float = 2.0
    asset_profile: str = "light"
    late_seconds: float = 5.0  # delay of the `late` fault: when the create is processed

    def update(self, changes: dict) -> None:
        """Applies `changes`; raises ValueError for an unknown key or a value of the wrong type."""
        for key, value in changes.items():
            if key not in self.__dataclass_fields__:
                raise ValueError(f"unknown config key {key!r} "
                                 f"(one of {', '.join(self.__dataclass_fields__)})")
            current = getattr(self, key)
            if key == "api_key":
                if value is not None and not isinstance(value, str):
                    raise ValueError("api_key must be a string or null")
            elif key == "blocked_word":
                if not isinstance(value, str):
                    raise ValueError("blocked_word must be a string")
            elif key == "asset_profile":
                if value not in ASSET_PROFILES:
                    raise ValueError(f"asset_profile must be one of {', '.join(ASSET_PROFILES)}")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{key} must be a non-negative number")
            elif isinstance(current, int):
                value = int(value)
            else:
                value = float(value)
            setattr(self, key, value)

    def as_dict(self) -> dict:
        return {key: getattr(self, key) for key in self.__dataclass_fields__}


@dataclass
class Account:
    balance: int
    frozen: int = 0
    creates: deque = field(default_factory=deque)  # times of recent create requests


@dataclass
class Upload:
    """A file token: bytes uploaded (multipart or presigned PUT) or still awaited (presign)."""
    token: str
    key: str
    declared_format: str | None
    path: Path | None = None
    format: str | None = None
    size: int | None = None
    width: int | None = None
    height: int | None = None
    filename: str = ""
    created: float = field(default_factory=time.time)


@dataclass
class ImageRef:
    """An image input resolved to a file on disk; `prompt` when the emulator itself generated
    the image (so a text -> image -> model chain keeps the original subject)."""
    path: Path
    format: str
    digest: str
    prompt: str | None = None


@dataclass
class FileSource:
    """A model input given as a file token or URL instead of a task. `path` None: a foreign URL,
    for which a stand-in model is produced from `label`."""
    path: Path | None
    format: str | None
    label: str
    prompt: str | None = None
    type: str = "import_model"  # for the chain rules, a file counts as an imported model


@dataclass
class Phase:
    status: str
    progress: int
    completed_at: float | None = None
    running_left_time: int | None = None
    queuing_num: int | None = None


@dataclass
class Task:
    task_id: str
    key: str
    type: str
    route: str
    input: dict  # the request body as received
    params: dict  # normalised parameters
    cost: int
    created: float
    duration: float
    prompt: str | None = None  # the subject, inherited along a chain (rig type, previews)
    source: "Task | FileSource | None" = None
    images: dict = field(default_factory=dict)  # role -> ImageRef | list[ImageRef | None]
    planned_failure: tuple[int, str] | None = None
    asset_profile: str = "light"  # Config.asset_profile when the task was created
    # Filled by production:
    files: dict = field(default_factory=dict)  # output name -> Path
    glb: Path | None = None  # the model as GLB, what chained tasks start from
    info: dict = field(default_factory=dict)  # factory info (part_names, faces, ...)
    extra: dict = field(default_factory=dict)  # non-file outputs (riggable, rig_type)
    ready_at: float | None = None
    error: tuple[int, str] | None = None
    settled: bool = False

    def phase(self, now: float) -> Phase:
        queue_end = self.created + QUEUED_SHARE * self.duration
        end = self.created + self.duration
        if self.planned_failure and now >= end:
            return Phase("failed", 100, completed_at=end)
        if now < queue_end:
            share = (queue_end - now) / max(queue_end - self.created, 1e-9)
            return Phase("queued", 0, queuing_num=max(1, math.ceil(3 * share)),
                         running_left_time=max(1, math.ceil(end - now)))
        if now < end or self.ready_at is None:
            span = max(end - queue_end, 1e-9)
            progress = min(99, max(1, int(100 * (now - queue_end) / span)))
            return Phase("running", progress, running_left_time=max(1, math.ceil(end - now)))
        completed = max(end, self.ready_at)
        if self.error:
            return Phase("failed", 100, completed_at=completed)
        return Phase("success", 100, completed_at=completed)

    def failure(self) -> tuple[int, str] | None:
        return self.planned_failure or self.error


class RequestLog:
    """Every request the emulator received, in order (never the Authorization value)."""

    MAX_ENTRIES = 20000

    def __init__(self):
        self._lock = threading.Lock()
        self._entries: deque = deque(maxlen=self.MAX_ENTRIES)
        self._seq = 0

    def start(self, method: str, path: str, query: str, auth: bool, kind: str) -> dict:
        with self._lock:
            self._seq += 1
            entry = {"seq": self._seq, "time": time.time(), "method": method, "path": path,
                     "query": query, "auth": auth, "json": None, "status": None, "fault": None,
                     "kind": kind}
            self._entries.append(entry)
            return entry

    def entries(self) -> list[dict]:
        with self._lock:
            return [dict(entry) for entry in self._entries]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
