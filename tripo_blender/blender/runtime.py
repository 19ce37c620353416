"""The main-thread side of the job engine.

One `Runtime` per Blender session owns the JobEngine (whose worker thread does all network work)
and applies what the worker reports: `tick()` drains the event queue and keeps the latest
snapshot of every job for the panel; `land_ready()` imports finished jobs when that disturbs
nobody. Neither touches the network nor waits, so both run from the UI's timer (ui/timer.py).

Landing rules (the UI): a finished job stays READY until the user is in Object Mode (or has no
active object) and no modal tool runs in any window; it then lands with the user's selection and
active object kept, as one undo step. A job lands by itself only in the file it was submitted
from; otherwise it waits for "Import here". Scripts that wait for their jobs (`wait()`) and the
batch runner import at once.

Ownership: jobs are the process's own (see core/engine/ownership.py). Only the interactive start-up and
file loads adopt journal jobs whose owner is gone, never `blender -b`, whose scripts adopt what
they wait for (`api.wait_all`, the batch runner's journal).

Background mode (`blender -b`) has no event loop: `wait()` runs the same tick in a blocking loop
until the asked jobs are imported or failed, logging progress as it goes.
"""

from __future__ import annotations

import logging
import os
import queue
import time
from collections import deque
from dataclasses import dataclass

import bpy

from ..core.protocol import errors
from ..core.engine import jobs as core_jobs
from ..core.engine import ownership
from ..core.engine.journal import Journal
from ..core.providers.settings import make_provider
from . import history, importer, landing, settings as blender_settings

log = logging.getLogger(__name__)

# How often another process's journal jobs are checked for an owner that has gone away.
FOREIGN_RECHECK_SECONDS = 5.0
# The journal folder changes with every save of a running job: re-read it at most this often.
JOURNAL_REREAD_SECONDS = 1.0
IMPORT_FAILED = "Import failed"


@dataclass
class Notice:
    level: str  # "INFO", "WARNING", "ERROR"
    text: str
    job_id: str = ""


def current_blend() -> str:
    return bpy.data.filepath or ""


def _same_file(a: str, b: str) -> bool:
    return bool(a) and bool(b) and os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def landing_blocker(context) -> str:
    """Why a finished result may not land now ("" when it may): landing never changes the
    user's mode, selection or active object while they work, and the glTF importer would."""
    wm = context.window_manager
    if wm is not None and wm.is_interface_locked:
        return "Blender is busy (rendering)"
    view_layer = getattr(context, "view_layer", None)
    active = view_layer.objects.active if view_layer is not None else None
    if active is not None and active.mode != "OBJECT":
        return f"Waiting for Object Mode ({active.mode.replace('_', ' ').title()} Mode is on)"
    for window in (wm.windows if wm is not None else ()):
        for operator in getattr(window, "modal_operators", ()):  # Blender 4.2+
            return f"Waiting for {operator.name or operator.bl_idname} to finish"
    return ""


def _selection_state(context):
    view_layer = context.view_layer
    return [o for o in view_layer.objects if o.select_get()], view_layer.objects.active


def _restore_selection(context, state) -> None:
    selected, active = state
    view_layer = context.view_layer
    for obj in view_layer.objects:
        if obj.select_get():
            obj.select_set(False)
    for obj in selected:
        try:
            if view_layer.objects.get(obj.name) is obj and obj.visible_get():
                obj.select_set(True)
        except ReferenceError:  # removed by the landing (e.g. a replaced original)
            pass
    try:
        view_layer.objects.active = active if active is None or view_layer.objects.get(active.name) is active else None
    except ReferenceError:
        view_layer.objects.active = None


class Runtime:
    # The batch runner imports a job the moment it is ready (its script waits for it).
    land_at_once = False

    def __init__(self):
        self.engine: core_jobs.JobEngine | None = None
        self._engine_key = None
        self.jobs: dict[str, dict] = {}            # latest snapshot per job id (this process's)
        self.results: dict[str, importer.ImportResult] = {}
        self.notices: deque[Notice] = deque(maxlen=50)
        self.unreported: deque[Notice] = deque()   # for the UI timer to report
        self.balance: dict | None = None
        self.balance_pending = False
        self.waiting: dict[str, str] = {}          # ready job id -> why it has not landed yet
        self.file_generation = 0                   # bumped by every file load
        self.submitted_in: dict[str, int] = {}     # job id -> file_generation it was submitted in
        self.resume_problem = ""                   # why adopting journal jobs could not start
        self.journal_jobs: dict[str, dict] = {}    # every unfinished journal job (the panel's list)
        self.foreign: set[str] = set()             # of those, jobs another live process owns
        self._journal: Journal | None = None
        self._journal_stamp = None
        self._journal_checked = 0.0

    # --- engine ------------------------------------------------------------------------------
    def ensure_engine(self, context=None) -> core_jobs.JobEngine:
        """Starts (or restarts after a settings change) the engine for the current settings.
        A restart stops the old engine first (its downloads included), then resumes this
        process's unfinished jobs in the new one: no .part is ever written by two."""
        blender_settings.require_online_access()
        conn = blender_settings.connection_settings(context)
        key = (conn.provider, conn.api_key, conn.base_url, conn.proxy_mode, conn.proxy_url, conn.download_dir)
        if self.engine is not None and self._engine_key == key and self.engine.running:
            return self.engine
        provider_check = make_provider(conn)  # refuses a malformed key before any request
        provider_check.close()
        restarted = self.engine is not None
        if restarted:
            self.engine.stop()
        self.engine = core_jobs.JobEngine(
            lambda: make_provider(conn, for_engine=True),
            Journal(self.journal_dir()),
            conn.download_dir,
            provider_name=conn.provider,
            base_url=conn.base_url,
            **ENGINE_OPTIONS,
        ).start()
        self._engine_key = key
        ours = [job_id for job_id, job in self.jobs.items() if job.get("state") not in core_jobs.FINAL_STATES]
        if restarted and ours:
            for record in self.engine.resume_from_journal(only=set(ours)):
                log.info("continuing %s in the restarted engine", describe(record))
        return self.engine

    def journal_dir(self) -> str:
        if self._journal is None:  # created once, not on every tick or draw
            self._journal = Journal(blender_settings.user_data_dir("journal"))
        return str(self._journal.directory)

    def shutdown(self) -> None:
        if self.engine is not None:
            self.engine.stop()
            self.engine = None

    def submit(self, job: core_jobs.Job, context=None) -> str:
        engine = self.ensure_engine(context)
        job.owner = {**job.owner, "blend": current_blend()}
        job_id = engine.submit(job)
        self.submitted_in[job_id] = self.file_generation
        self.jobs[job_id] = job.to_record()
        return job_id

    def import_task(self, task_id: str, context=None, name: str | None = None) -> str:
        """Fetches a task made elsewhere with the same key (the web console, another machine),
        downloads and imports it with its metadata, like a job submitted here. The worker reads
        the task; nothing is created or billed. Returns the job id."""
        task_id = (task_id or "").strip()
        if not task_id:
            raise errors.ValidationError("Enter a task id.", field="task_id")
        engine = self.ensure_engine(context)
        meta = {"source": "task_id"}
        if name:
            meta["name"] = name
        job = core_jobs.Job.new(name or f"Task {task_id[:8]}",
                                [core_jobs.Step("", {}, task_id=task_id)], meta)
        job.owner = {**job.owner, "blend": current_blend()}
        job_id = engine.track(job)
        self.submitted_in[job_id] = self.file_generation
        self.jobs[job_id] = job.to_record()
        return job_id

    # --- journal jobs: adoption and the panel's list --------------------------------------------
    def resume_journal(self, context=None, only=None) -> list[dict]:
        """Adopts the journal's unfinished jobs (those in `only`, when given) whose owner is gone
        (another live process keeps its own). Raises OfflineError / errors.TripoError when the
        engine cannot start; the reason stays in `resume_problem` for the panel."""
        try:
            engine = self.ensure_engine(context)
        except (errors.TripoError, blender_settings.OfflineError) as exc:
            self.resume_problem = exc.user_message() if isinstance(exc, errors.TripoError) else str(exc)
            raise
        self.resume_problem = ""
        records = engine.resume_from_journal(only=only)
        for record in records:
            self.jobs.setdefault(record["job_id"], record)
            log.info("resuming %s from the journal", describe(record))
        self.refresh_journal_view(force=True)
        return records

    def resume_pending(self, context=None) -> None:
        """The interactive start-up and file loads: adopts orphaned journal jobs if there are
        any; when that cannot start (no key, online access off) the panel shows why."""
        self.refresh_journal_view(force=True)
        orphans = [j for j in self.journal_jobs if j not in self.foreign and j not in self.jobs]
        if not orphans:
            return
        try:
            self.resume_journal(context)
        except (errors.TripoError, blender_settings.OfflineError) as exc:
            log.warning("could not resume %d pending Tripo job(s): %s", len(orphans), exc)

    def refresh_journal_view(self, force: bool = False) -> bool:
        """Re-reads the journal when its folder changed (otherwise one stat), and re-checks the
        owners of other processes' jobs now and then. Returns True when the list changed."""
        directory = self.journal_dir()
        try:
            stamp = os.stat(directory).st_mtime_ns
        except OSError:
            stamp = None
        now = time.monotonic()
        since = now - self._journal_checked
        recheck = self.foreign and since >= FOREIGN_RECHECK_SECONDS
        if not force and ((stamp == self._journal_stamp and not recheck) or since < JOURNAL_REREAD_SECONDS):
            return False
        self._journal_stamp, self._journal_checked = stamp, now
        records = {r["job_id"]: r for r in self._journal.load_all()
                   if r.get("state") not in core_jobs.FINAL_STATES}
        # Our own jobs hold their locks in the engine's journal: probe only the others.
        foreign = {job_id for job_id in records
                   if job_id not in self.jobs and self._journal.locks.held_elsewhere(job_id)}
        changed = records.keys() != self.journal_jobs.keys() or foreign != self.foreign or any(
            records[j].get("updated_at") != self.journal_jobs[j].get("updated_at") for j in records)
        self.journal_jobs, self.foreign = records, foreign
        return changed

    def unowned_jobs(self) -> list[dict]:
        """Unfinished journal jobs this process does not run (another's, or waiting for Resume)."""
        return [r for job_id, r in self.journal_jobs.items() if job_id not in self.jobs]

    # --- main-thread application of worker events ----------------------------------------
    def tick(self, context=None) -> bool:
        """Drains the worker's events. Returns True if anything changed."""
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
            if self.land_at_once:
                self._import(context, event.job)
        elif event.kind in ("failed", "needs_decision"):
            self._notice("ERROR", f"{event.job['label']}: {event.message}", event.job_id)
        elif event.kind in ("notice", "cancelled") and event.message:
            self._notice("WARNING" if event.kind == "notice" else "INFO",
                         f"{event.job['label']}: {event.message}", event.job_id)

    def notify(self, level: str, text: str, job_id: str = "") -> None:
        """A message for the user (the panel's notices, the UI's report, the log)."""
        self._notice(level, text, job_id)

    def _notice(self, level: str, text: str, job_id: str = "") -> None:
        notice = Notice(level, text, job_id)
        self.notices.append(notice)
        self.unreported.append(notice)
        (log.error if level == "ERROR" else log.info)(text)

    def ready_jobs(self) -> list[dict]:
        return [j for j in self.jobs.values() if j.get("state") == core_jobs.READY]

    def lands_here(self, job: dict) -> bool:
        """Whether a ready job belongs to the open file (else it waits for "Import here")."""
        generation = self.submitted_in.get(job["job_id"])
        if generation == self.file_generation:
            return True  # still the file it was submitted in (a Save As keeps it so)
        owner = job.get("owner") or {}
        if owner.get("blend"):  # its saved file, reopened after another one
            return _same_file(owner["blend"], current_blend())
        if generation is not None:
            return False  # submitted in an unsaved file that has since been closed
        # From an unsaved file: only this process's own job (e.g. after disable/enable) lands in
        # an unsaved file; a crashed process's unsaved file is gone.
        return not current_blend() and "adopted_from" not in owner and ownership.is_this_process(owner)

    def land_ready(self, context=None) -> bool:
        """Imports one ready job that may land now (see `landing_blocker`): one import per tick, so
        twenty results finishing together never freeze the UI for twenty imports at once; the
        next ones land on the following ticks. The others keep their reason in `waiting`.
        Returns True if anything landed or its reason changed."""
        ready = self.ready_jobs()
        if not ready:
            if self.waiting:
                self.waiting.clear()
                return True
            return False
        context = context or bpy.context
        blocker = landing_blocker(context)
        changed = landed = False
        for job in ready:
            if self.waiting.get(job["job_id"], "").startswith(IMPORT_FAILED):
                continue  # not again on every tick: "Import now" retries it
            reason = blocker if self.lands_here(job) else "From another file: Import here"
            if not reason:
                if landed:
                    continue  # its turn comes on the next tick
                self.land(context, job["job_id"], select=False, push_undo=not bpy.app.background)
                changed = landed = True
            elif self.waiting.get(job["job_id"]) != reason:
                self.waiting[job["job_id"]] = reason
                changed = True
        return changed

    def land(self, context, job_id: str, *, select: bool, push_undo: bool):
        """Imports one ready job now. `select`: the new objects become the selection (the user
        asked for it); otherwise the user's selection and active object are kept."""
        job = self.jobs[job_id]
        self.waiting.pop(job_id, None)
        saved = None if select else _selection_state(context)
        try:
            return self._import(context, job)
        finally:
            if saved is not None:
                _restore_selection(context, saved)
            if push_undo and job.get("state") == core_jobs.IMPORTED:
                bpy.ops.ed.undo_push(message=f"Import Tripo asset {job['label']}")

    def _import(self, context, job: dict):
        if job.get("meta", {}).get("no_import"):  # e.g. a conversion: the files are the result
            self._mark_imported(job, [])
            return None
        if self._already_imported(job["job_id"]):
            self._mark_imported(job, [])
            return None
        try:
            result = landing.land(context, job)
        except Exception as exc:  # noqa: BLE001 - an import error must reach the user, not kill the tick
            log.exception("import of %s failed", job["job_id"])
            self._notice("ERROR", f"{job['label']}: the result could not be imported: {exc}", job["job_id"])
            self.waiting[job["job_id"]] = f"{IMPORT_FAILED}: {exc}"
            return None
        for note in result.notes:  # e.g. undo removed what the result was for: it is paid, so kept
            self._notice("WARNING", f"{job['label']}: {note}", job["job_id"])
        self.results[job["job_id"]] = result
        self._mark_imported(job, result.object_names)
        try:
            history.after_import(job)
        except Exception:  # noqa: BLE001 - the history is a convenience; the import stands
            log.exception("could not record %s in the task history", job["job_id"])
        self._notice("INFO", f"{job['label']}: imported {len(result.objects)} object(s)", job["job_id"])
        return result

    def _mark_imported(self, job: dict, names: list[str]) -> None:
        self.engine.mark_imported(job["job_id"], names)
        job["state"] = core_jobs.IMPORTED

    @staticmethod
    def _already_imported(job_id: str) -> bool:
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

    def running_jobs(self) -> list[dict]:
        """Jobs the worker is still working on (not ready, not waiting for a decision)."""
        return [j for j in self.jobs.values() if j["state"] in (core_jobs.QUEUED, core_jobs.ACTIVE)]

    def busy(self) -> bool:
        """Whether the UI timer should come back soon: work is under way, or a result waits
        only for the user to leave a mode or finish a tool."""
        return bool(self.running_jobs() or self.balance_pending or any(
            not reason.startswith("From another file") and not reason.startswith(IMPORT_FAILED)
            for reason in self.waiting.values()) or (self.ready_jobs() and not self.waiting))

    def wait(self, job_ids: list[str], context=None, timeout: float | None = None,
             progress_interval: float = 5.0) -> dict[str, dict]:
        """Blocking loop for scripts and background mode: returns the final snapshot of each
        job. The script asked for these jobs, so they land at once, wherever the user is."""
        _show_progress_on_console()
        context = context or bpy.context
        deadline = None if timeout is None else time.monotonic() + timeout
        last_report = 0.0
        pending = set(job_ids)
        unknown = pending - set(self.jobs)
        if unknown:  # e.g. submitted before a disable/enable or a crash: the script waits for them
            self.resume_journal(context, only=unknown)
            missing = unknown - set(self.jobs)
            if missing:
                raise KeyError(f"no such job in this process or the journal (or another Blender "
                               f"owns it): {sorted(missing)}")
        while pending:
            self.tick(context)
            for job_id in list(pending):
                job = self.jobs.get(job_id, {})
                if job.get("state") == core_jobs.READY:
                    self.land(context, job_id, select=True, push_undo=not bpy.app.background)
                state = job.get("state")
                if state in core_jobs.FINAL_STATES or state == core_jobs.NEEDS_DECISION:
                    pending.discard(job_id)
                elif self.waiting.get(job_id, "").startswith(IMPORT_FAILED):
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
            self._handle(context, event)
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
    line = (f"{job.get('label', '')}: step {index + 1}/{len(steps)} {step.get('task_type', '')} "
            f"{job.get('state')} {step.get('progress', 0)}%")
    if step.get("state") == core_jobs.SENDING and step.get("reconcile_note"):
        # An unknown create outcome being checked: say so, and what the last check found.
        line += f" (checking whether the task was created: {step['reconcile_note']})"
    return line


# Engine options; the batch runner and tests may change these before the engine starts.
DEFAULT_ENGINE_OPTIONS: dict = {"max_concurrent": 8}
ENGINE_OPTIONS: dict = dict(DEFAULT_ENGINE_OPTIONS)

_runtime: Runtime | None = None
# The interactive start-up and file loads ask the UI timer to adopt orphaned journal jobs.
_resume_requested = False


def get_runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime()
    return _runtime


def current_runtime() -> Runtime | None:
    """The runtime if one exists (the idle timer must not create one)."""
    return _runtime


def request_resume() -> None:
    """Asks the next UI tick to adopt orphaned journal jobs (never in background mode)."""
    global _resume_requested
    _resume_requested = not bpy.app.background


def take_resume_request() -> bool:
    global _resume_requested
    requested, _resume_requested = _resume_requested, False
    return requested


@bpy.app.handlers.persistent
def _on_load_post(*_args) -> None:
    """Another file is open: results submitted from the previous one no longer land by
    themselves (they wait for "Import here"), and orphaned jobs of this file may be adopted."""
    if _runtime is not None:
        _runtime.file_generation += 1
        _runtime.waiting.clear()
    request_resume()


def register() -> None:
    bpy.app.handlers.load_post.append(_on_load_post)
    request_resume()


def unregister() -> None:
    global _runtime, _resume_requested
    _resume_requested = False
    while _on_load_post in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_on_load_post)
    if _runtime is not None:
        _runtime.shutdown()  # stops the worker and its downloads; the journal keeps every job
        _runtime = None
