"""Every task this machine knows: the journals and the `<stem>.task.json` sidecars.

Tripo keeps task records for a limited time; the local record is the lasting one. Two sources:
- journals: one JSON record per job (core/engine/journal.py), with absolute paths to its downloads;
- sidecars: `<stem>.task.json` beside the downloaded files, one per task, written by the batch
  runner and, for interactive jobs, by the runtime when a result is imported. They outlive a
  journal entry ("Remove from List" deletes it) and travel with the files.

A task found in both is listed once (the journal's record wins: it can be re-imported whole).
Plain Python, no bpy: the UI keeps the scanned list in memory and rescans only when asked or
when a result was imported, never while drawing.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from ..files import write_json

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".task.json"
ROOTS_FILE = "history_roots.json"  # folders of batch runs, so their sidecars are found


@dataclass
class HistoryEntry:
    task_id: str
    task_type: str
    job_id: str = ""
    label: str = ""
    prompt: str = ""
    created_at: str = ""          # ISO-8601, as Tripo reported it (or when it was sent)
    credits: float = 0.0
    state: str = ""               # the job's state (journal) or the task's status (sidecar)
    provider: str = ""
    preview: str = ""             # local file of Tripo's rendered preview ("" when none)
    model: str = ""               # local model file ("" when none: e.g. an image task)
    source: str = ""              # "journal" or the sidecar's path
    job: dict = field(default_factory=dict, repr=False)  # what importer.import_job takes

    @property
    def date(self) -> str:
        return self.created_at[:10]

    @property
    def importable(self) -> bool:
        return bool(self.model) and os.path.isfile(self.model) and \
            Path(self.model).suffix.lower() in (".glb", ".gltf")

    def haystack(self) -> str:
        return " ".join((self.prompt, self.task_id, self.job_id, self.task_type, self.label,
                         self.created_at.replace("T", " "), self.state, self.provider)).lower()


def _iso(seconds) -> str:
    if not seconds:
        return ""
    return datetime.fromtimestamp(float(seconds), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _file(files: dict, key: str) -> str:
    path = (files or {}).get(key) or ""
    return path if path and os.path.isfile(path) else ""


def entries_from_record(record: dict) -> list[HistoryEntry]:
    """One entry per task of a journal record."""
    entries = []
    meta = record.get("meta") or {}
    steps = record.get("steps") or []
    for index, step in enumerate(steps):
        if not step.get("task_id"):
            continue
        task = step.get("task") or {}
        params = step.get("params") or {}
        files = step.get("files") or {}
        # A later step may carry the preview (e.g. texturing renders the textured model).
        preview = _file(files, "rendered_image_url") or _file(files, "generated_image_url")
        job = dict(record, steps=steps[: index + 1])
        entries.append(HistoryEntry(
            task_id=step["task_id"], task_type=step.get("task_type") or task.get("type") or "",
            job_id=record.get("job_id", ""), label=record.get("label", ""),
            prompt=meta.get("prompt") or params.get("prompt") or "",
            created_at=task.get("created_at") or _iso(step.get("sent_at") or record.get("created_at")),
            credits=float(task.get("credits_consumed") or 0), state=record.get("state", ""),
            provider=record.get("provider", ""), preview=preview, model=_file(files, "model_url"),
            source="journal", job=job))
    return entries


def entry_from_sidecar(path: Path) -> HistoryEntry | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("skipping unreadable sidecar %s: %s", path, exc)
        return None
    if not isinstance(data, dict) or not data.get("task_id"):
        return None
    folder = path.parent
    files = {key: str(folder / name) for key, name in (data.get("files") or {}).items() if name}
    task = data.get("task") or {}
    meta = {k: v for k, v in (data.get("meta") or {}).items() if k not in ("location", "qc")}
    params = (data.get("request") or {}).get("body") or {}
    job_id = data.get("job_id") or data["task_id"]
    step = {"task_type": data.get("task_type") or task.get("type") or "", "task_id": data["task_id"],
            "params": params if isinstance(params, dict) else {}, "task": task, "files": files,
            "state": "done"}
    label = meta.get("name") or data.get("asset_id") or data.get("stem") or data["task_id"]
    job = {"job_id": job_id, "label": label, "steps": [step], "meta": meta,
           "provider": data.get("provider") or "", "state": "imported", "out_dir": str(folder)}
    return HistoryEntry(
        task_id=data["task_id"], task_type=step["task_type"], job_id=job_id, label=label,
        prompt=meta.get("prompt") or step["params"].get("prompt") or "",
        created_at=task.get("created_at") or (data.get("timings") or {}).get("sent_at") or "",
        credits=float((data.get("credits") or {}).get("consumed") or task.get("credits_consumed") or 0),
        state=str(task.get("status") or data.get("state") or ""), provider=job["provider"],
        preview=_file(files, "rendered_image_url") or _file(files, "generated_image_url"),
        model=_file(files, "model_url"), source=str(path), job=job)


def sidecars_under(root: Path) -> list[Path]:
    """Sidecars in a download or batch folder: in it and one level down (one folder per job or
    asset). Not a deep walk: a download folder may hold a great deal else."""
    if not root.is_dir():
        return []
    return sorted([*root.glob(f"*{SIDECAR_SUFFIX}"), *root.glob(f"*/*{SIDECAR_SUFFIX}")])


def scan(journal_dirs, sidecar_roots) -> list[HistoryEntry]:
    """Every known task, newest first, one entry per task id."""
    by_task: dict[str, HistoryEntry] = {}
    run_roots = []
    for directory in journal_dirs:
        directory = Path(directory)
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # the journal itself reports unreadable entries
            if isinstance(record, dict) and record.get("job_id"):
                for entry in entries_from_record(record):
                    by_task[entry.task_id] = entry
        if directory.name == ".journal":  # a batch run: its sidecars sit beside its journal
            run_roots.append(directory.parent)
    for root in dict.fromkeys(Path(r) for r in [*sidecar_roots, *run_roots]):
        for path in sidecars_under(root):
            entry = entry_from_sidecar(path)
            if entry is None:
                continue
            known = by_task.get(entry.task_id)
            if known is None:
                by_task[entry.task_id] = entry
            elif not known.preview and entry.preview:  # the journal's files may have moved
                known.preview = entry.preview
    return sorted(by_task.values(), key=lambda e: e.created_at, reverse=True)


def matches(entry: HistoryEntry, query: str) -> bool:
    """Every word of the query appears in the prompt, task id, date, type, label or state."""
    haystack = entry.haystack()
    return all(word in haystack for word in query.lower().split())


def search(entries: list[HistoryEntry], query: str) -> list[HistoryEntry]:
    return [e for e in entries if matches(e, query)] if query.strip() else list(entries)


# --- sidecars of interactive jobs, and the folders of batch runs -------------------------------

def write_job_sidecars(record: dict) -> list[Path]:
    """`<stem>.task.json` beside a job's downloads, one per task (the batch runner's layout),
    so the history keeps the task when the journal forgets it. Returns the files written."""
    out_dir = Path(record.get("out_dir") or "")
    if not record.get("out_dir"):
        return []
    written = []
    for index, step in enumerate(record.get("steps") or []):
        if not step.get("task_id"):
            continue
        task = step.get("task") or {}
        stem = step.get("file_stem") or f"{index + 1:02d}_{step.get('task_type')}"
        sidecar = {
            "schema": 1, "asset_id": (record.get("meta") or {}).get("asset_id") or record.get("job_id"),
            "job_id": record.get("job_id"), "step": index + 1, "stem": stem,
            "task_type": step.get("task_type"), "task_id": step["task_id"], "state": step.get("state"),
            "provider": record.get("provider"),
            "request": {"body": step.get("params") or {}},
            "task": task,
            "timings": {"sent_at": _iso(step.get("sent_at")), "finished_at": _iso(step.get("finished_at"))},
            "credits": {"consumed": task.get("credits_consumed")},
            "files": {key: os.path.basename(path) for key, path in (step.get("files") or {}).items()},
            "meta": {k: v for k, v in (record.get("meta") or {}).items() if k not in ("location", "qc")},
        }
        path = out_dir / f"{stem}{SIDECAR_SUFFIX}"
        try:
            write_json(path, sidecar, private=False, indent=2)
        except OSError as exc:
            log.warning("could not write the sidecar %s: %s", path, exc)
            continue
        written.append(path)
    return written


def read_roots(user_dir: str | os.PathLike) -> list[str]:
    try:
        data = json.loads((Path(user_dir) / ROOTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [str(p) for p in data.get("roots", []) if isinstance(p, str)] if isinstance(data, dict) else []


def add_root(user_dir: str | os.PathLike, folder: str | os.PathLike) -> None:
    """Remembers a batch run's output folder (its journal and sidecars join the history)."""
    folder = str(Path(folder).resolve())
    roots = read_roots(user_dir)
    if folder in roots:
        return
    try:
        write_json(Path(user_dir) / ROOTS_FILE, {"roots": roots + [folder]})
    except OSError as exc:
        log.warning("could not remember %s for the task history: %s", folder, exc)


