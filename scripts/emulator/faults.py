"""Injected faults: what the next matching requests suffer instead of a normal answer.

Spec: comma-separated `KIND:TARGET[:COUNT]`, each applied to the next COUNT (default 1) requests
that match TARGET, in the order the faults were added. Example: `429:create:2,reset_after:create`.

TARGET: `create` (any create route), `get` (GET /v3/tasks/{id}), `list` (POST /v3/tasks/list),
`balance`, `usage`, `upload` (POST /v3/files, POST /v3/files/presign and the presigned PUT),
`download` (GET /files/...), `any` (every request except the /_emulator control routes).

KIND:
- `429`: HTTP 429 code 1007 with `Retry-After: 1`; nothing processed.
- `500`: HTTP 500 code 1000; `503`: HTTP 503 code 1000; nothing processed.
- `2000`: HTTP 429 code 2000 (concurrency limit); nothing processed.
- `reset_before`: the connection is closed without an answer; nothing processed.
- `reset_after`: the request IS processed (a create creates and bills its task), then the
  connection is closed without an answer.
- `slow`: sleeps `slow_seconds` (default 2) before processing and answering normally.
- `truncate`: processed; the answer announces its full Content-Length but only half of the
  body is sent before the connection closes (meant for downloads; works on any answer).
- `expire`: HTTP 403 code 1005 "URL expired" (meant for downloads); nothing processed.
- `malformed`: HTTP 200 whose body is not valid JSON; nothing processed.
- `late`: the connection is closed without an answer, and the request is processed
  `late_seconds` (default 5) afterwards, as a request held up in a gateway would be: a create
  shows up on the account only then (it is meant for creates; any other request is just reset).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

KINDS = ("429", "500", "503", "2000", "reset_before", "reset_after", "slow", "truncate", "expire",
         "malformed", "late")
TARGETS = ("create", "get", "list", "balance", "usage", "upload", "download", "any")


@dataclass
class Fault:
    kind: str
    target: str
    remaining: int

    def describe(self) -> str:
        return f"{self.kind}:{self.target}"


def parse_spec(spec: str) -> list[Fault]:
    """Parses a fault spec; raises ValueError with a readable message on a bad entry."""
    faults = []
    for entry in (part.strip() for part in (spec or "").split(",")):
        if not entry:
            continue
        fields = entry.split(":")
        if len(fields) not in (2, 3):
            raise ValueError(f"fault {entry!r}: expected KIND:TARGET[:COUNT]")
        kind, target = fields[0].strip().lower(), fields[1].strip().lower()
        if kind not in KINDS:
            raise ValueError(f"fault {entry!r}: unknown kind {kind!r} (one of {', '.join(KINDS)})")
        if target not in TARGETS:
            raise ValueError(f"fault {entry!r}: unknown target {target!r} (one of {', '.join(TARGETS)})")
        try:
            count = int(fields[2]) if len(fields) == 3 else 1
        except ValueError:
            raise ValueError(f"fault {entry!r}: COUNT must be an integer") from None
        if count < 1:
            raise ValueError(f"fault {entry!r}: COUNT must be at least 1")
        faults.append(Fault(kind, target, count))
    return faults


class FaultBook:
    """The pending faults; thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, spec: str) -> list[Fault]:
        faults = parse_spec(spec)
        with self._lock:
            self._faults.extend(faults)
        return faults

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, target: str | None) -> Fault | None:
        """Consumes one application of the first fault matching a request of `target`
        (None: a request no fault applies to, such as a control route)."""
        if target is None:
            return None
        with self._lock:
            for fault in self._faults:
                if fault.target in (target, "any"):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return Fault(fault.kind, fault.target, 1)
        return None

    def pending(self) -> list[dict]:
        with self._lock:
            return [{"kind": f.kind, "target": f.target, "remaining": f.remaining}
                    for f in self._faults]
