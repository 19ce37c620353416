"""The job journal: every job and every task id on disk, the moment it is known.

One JSON file per job (`<dir>/<job_id>.json`), replaced atomically (write a temp file, fsync,
os.replace), so a crash or a closed Blender leaves either the old or the new record, never half of
one. A step is journaled as `sending` BEFORE its create request goes out: after a crash, such a
step is reconciled with the server instead of being sent again (a second create bills twice).

Several processes share the folder. Every writer replaces whole files, so a reader sees an old or
a new record; a record it cannot parse (e.g. written by a newer version) is skipped, not fatal.
Who may run a job is decided by its lock (`locks`, see core/engine/ownership.py), not by the record.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from .ownership import JobLocks
from ..files import write_json

log = logging.getLogger(__name__)


class Journal:
    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.locks = JobLocks(self.directory)

    def path_for(self, job_id: str) -> Path:
        return self.directory / f"{job_id}.json"

    def save(self, record: dict) -> None:
        write_json(self.path_for(record["job_id"]), record)

    def load(self, job_id: str) -> dict | None:
        return self._read(self.path_for(job_id))

    def load_all(self) -> list[dict]:
        records = []
        for path in sorted(self.directory.glob("*.json")):
            record = self._read(path)
            if record is not None:
                records.append(record)
        return records

    @staticmethod
    def _read(path: Path) -> dict | None:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:  # deleted by another process since the listing
            return None
        except (OSError, ValueError) as exc:  # keep going: one bad file must not hide the rest
            log.warning("skipping unreadable journal entry %s: %s", path.name, exc)
            return None
        if not isinstance(record, dict) or "job_id" not in record:
            log.warning("skipping journal entry %s: not a job record", path.name)
            return None
        return record

    def delete(self, job_id: str) -> None:
        self.path_for(job_id).unlink(missing_ok=True)
        if self.locks.holds(job_id):  # unlinked while still held: nobody can take it in between
            self.locks.path_for(job_id).unlink(missing_ok=True)
            self.locks.release(job_id)
