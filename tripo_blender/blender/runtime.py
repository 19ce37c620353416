"""The main-thread side of the job engine.

One `Runtime` per Blender session owns the JobEngine (whose worker thread does all network work)
and applies what the worker reports: `tick()` drains the event queue, keeps the latest snapshot
of every job for the panel, imports finished jobs and marks them imported. A tick never touches
the network and never waits, so it can run from a modal timer on every UI refresh.

Background mode (`blender -b`) has no event loop: `wait()` runs the same tick in a blocking loop
until the asked jobs are imported or failed, logging progress as it goes.
"""

from __future__ import annotations

import logging
import queue
import time
from collections import deque
from dataclasses import dataclass

import bpy

from ..core import jobs as core_jobs
from ..core.journal import Journal
from ..core.settings import make_provider
from . import importer, settings as blender_settings

log = logging.getLogger(__name__)


@dataclass
class Notice:
    level: str  # "INFO", "WARNING", "ERROR"
    text: str
    job_id: str = ""


class Runtime:
    def __init__(self):
        self.engine: core_jobs.JobEngine | None = None
        self._engine_key = None
        self.jobs: dict[str, dict] = {}            # latest snapshot per job id
        self.results: dict[str, importer.ImportResult] = {}
        self.notices: deque[Notice] = deque(maxlen=50)
        self.unreported: deque[Notice] = deque()   # for the modal operator to report
        self.balance: dict | None = None
        self.balance_pending = False

    # --- engine ------------------------------------------------------------------------------
    def ensure_engine(self, context=None) -> core_jobs.JobEngine:
        """Starts (or restarts after a settings change) the engine for the current settings."""
        blender_settings.require_online_access()
        conn = blender_settings.connection_settings(context)
        key = (conn.provider, conn.api_key, conn.base_url, conn.proxy_mode, conn.proxy_url, conn.download_dir)
        if self.engine is not None and self._engine_key == key and self.engine.running:
            return self.engine
        if self.engine is not None:
            self.engine.stop()
        provider_check = make_provider(conn)  # refuses a malformed key before any request
        provider_check.close()
        self.engine = core_jobs.JobEngine(
            lambda: make_provider(conn, for_engine=True),
            Journal(blender_settings.user_data_dir("journal")),
            conn.download_dir,
            provider_name=conn.provider,
            base_url=conn.base_url,
            **ENGINE_OPTIONS,
        ).start()
        self._engine_key = key
        for record in self.engine.resume_from_journal():
            self.jobs.setdefault(record["job_id"], record)
            log.info("resuming %s from the journal", describe(record))
        return self.engine

    def shutdown(self) -> None:
        if self.engine is not None:
            self.engine.stop()
            self.engine = None

    def submit(self, job: core_jobs.Job, context=None) -> str:
        engine = self.ensure_engine(context)
        job_id = engine.submit(job)
        self.jobs[job_id] = job.to_record()
        return job_id

    # --- main-thread application of worker events ----------------------------------------
    def tick(self, context=None) -> bool:
        """Drains the worker's events and imports finished jobs. Returns True if anything changed."""
        if self.engine is None:
            return False
        context = context or bpy.context
        changed = False
        while True:
            try:
                event = self.engine.events.get_nowait()
            except queue.Empty:
                break
            changed = True
            self._handle(context, event)
        return changed

    def _handle(self, context, event: core_jobs.JobEvent) -> None:
        if event.kind == "balance":
            self.balance = {**event.job, "error": event.message}
            self.balance_pending = False
            return
        self.jobs[event.job_id] = event.job
        if event.kind == "ready":
            self._import(context, event.job)
        elif event.kind in ("failed", "needs_decision"):
            self._notice("ERROR", f"{event.job['label']}: {event.message}", event.job_id)
        elif event.kind in ("notice", "cancelled") and event.message:
            self._notice("WARNING" if event.kind == "notice" else "INFO",
                         f"{event.job['label']}: {event.message}", event.job_id)

    def _notice(self, level: str, text: str, job_id: str = "") -> None:
        notice = Notice(level, text, job_id)
        self.notices.append(notice)
        self.unreported.append(notice)
        (log.error if level == "ERROR" else log.info)(text)

    def _import(self, context, job: dict) -> None:
        if job.get("meta", {}).get("no_import"):  # e.g. a conversion: the files are the result
            self.engine.mark_imported(job["job_id"], [])
            job["state"] = core_jobs.IMPORTED
            return
        if self._already_imported(context, job["job_id"]):
            self.engine.mark_imported(job["job_id"], [])
            job["state"] = core_jobs.IMPORTED
            return
        handler = IMPORT_HANDLERS.get(job.get("meta", {}).get("kind"), importer.import_job)
        try:
            result = handler(context, job)
        except Exception as exc:  # noqa: BLE001 - an import error must reach the user, not kill the tick
            log.exception("import of %s failed", job["job_id"])
            self._notice("ERROR", f"{job['label']}: the result could not be imported: {exc}", job["job_id"])
            return
        self.results[job["job_id"]] = result
        self.engine.mark_imported(job["job_id"], result.object_names)
        job["state"] = core_jobs.IMPORTED
        self._notice("INFO", f"{job['label']}: imported {len(result.objects)} object(s)", job["job_id"])
        if not bpy.app.background:
            bpy.ops.ed.undo_push(message=f"Import Tripo asset {job['label']}")

    @staticmethod
    def _already_imported(context, job_id: str) -> bool:
        """Idempotent import: a job whose objects are already in the file is not imported again."""
        from . import metadata
        return any((metadata.read(o) or {}).get("job_id") == job_id for o in bpy.data.objects)

    def wait_for_balance(self, context=None, timeout: float = 60.0) -> dict | None:
        """Background mode: blocks until the worker answered a balance request."""
        deadline = time.monotonic() + timeout
        while self.balance_pending and time.monotonic() < deadline:
            try:
                event = self.engine.events.get(timeout=0.2)
            except queue.Empty:
                continue
            self._handle(context or bpy.context, event)
        return self.balance

    # --- queries -------------------------------------------------------------------------------
    def active_jobs(self) -> list[dict]:
        return [j for j in self.jobs.values() if j["state"] not in core_jobs.FINAL_STATES]

    def wait(self, job_ids: list[str], context=None, timeout: float | None = None,
             progress_interval: float = 5.0) -> dict[str, dict]:
        """Blocking loop for background mode: returns the final snapshot of each job."""
        _show_progress_on_console()
        deadline = None if timeout is None else time.monotonic() + timeout
        last_report = 0.0
        pending = set(job_ids)
        while pending:
            self.tick(context)
            for job_id in list(pending):
                state = self.jobs.get(job_id, {}).get("state")
                if state in core_jobs.FINAL_STATES or state == core_jobs.NEEDS_DECISION:
                    pending.discard(job_id)
            if not pending:
                break
            if time.monotonic() - last_report >= progress_interval:
                last_report = time.monotonic()
                for job_id in sorted(pending):
                    job = self.jobs.get(job_id) or {}
                    log.info("%s", describe(job))
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"jobs still running after {timeout} s: {sorted(pending)}")
            try:  # sleep until the worker reports something (no busy loop)
                event = self.engine.events.get(timeout=0.2)
            except queue.Empty:
                continue
            self._handle(context or bpy.context, event)
        return {job_id: self.jobs.get(job_id, {}) for job_id in job_ids}


def _show_progress_on_console() -> None:
    """Under `blender -b` nobody may have configured logging, and Python then shows WARNING and
    above only: give this extension's INFO lines (progress, imports) a console handler, unless
    the script set up logging itself."""
    package_log = logging.getLogger(__package__.rpartition(".")[0])
    if package_log.hasHandlers():
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s tripo: %(message)s", "%H:%M:%S"))
    package_log.addHandler(handler)
    package_log.setLevel(logging.INFO)


def describe(job: dict) -> str:
    """One line for a job: label, step, state, progress, credits."""
    if not job:
        return "(unknown job)"
    steps = job.get("steps") or []
    index = core_jobs.current_step_index(job)
    step = steps[index] if steps else {}
    return (f"{job.get('label', '')}: step {index + 1}/{len(steps)} {step.get('task_type', '')} "
            f"{job.get('state')} {step.get('progress', 0)}%")


# How a finished job lands in the scene, by job.meta["kind"]; the default imports a new asset.
# Selection actions register their own (e.g. "retexture" re-materials existing parts).
# A handler takes (context, job snapshot) and returns an importer.ImportResult.
IMPORT_HANDLERS: dict = {}

# Engine options; the batch runner and tests may change these before the engine starts.
DEFAULT_ENGINE_OPTIONS: dict = {"max_concurrent": 8}
ENGINE_OPTIONS: dict = dict(DEFAULT_ENGINE_OPTIONS)

_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime()
    return _runtime


@bpy.app.handlers.persistent
def _on_load_post(*_args) -> None:
    """Opening a .blend: pick up unfinished jobs from the journal (they import into this file)."""
    _resume_if_pending()


def _resume_if_pending() -> None:
    try:
        journal = Journal(blender_settings.user_data_dir("journal"))
        if any(r.get("state") not in core_jobs.FINAL_STATES for r in journal.load_all()):
            if bpy.app.online_access:
                get_runtime().ensure_engine()
                _start_monitor_soon()
    except Exception as exc:  # noqa: BLE001 - never break Blender start-up
        log.warning("could not resume pending Tripo jobs: %s", exc)


def _start_monitor_soon() -> None:
    if bpy.app.background:
        return  # no event loop: scripts call tripo_blender.api.wait_all()

    def start():
        try:
            bpy.ops.tripo.job_monitor("INVOKE_DEFAULT")
        except RuntimeError as exc:
            log.debug("monitor not started yet: %s", exc)
            return 1.0
        return None

    bpy.app.timers.register(start, first_interval=0.5)


def register() -> None:
    bpy.app.handlers.load_post.append(_on_load_post)
    _resume_if_pending()


def unregister() -> None:
    global _runtime
    if _on_load_post in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_on_load_post)
    if _runtime is not None:
        _runtime.shutdown()  # joins the worker with a timeout; the journal keeps every job
        _runtime = None
