"""Runs a batch file inside Blender in background mode (`blender -b`): the orchestration behind
`scripts/tripo_batch.py`.

    from bl_ext.user_default.tripo_blender.blender import batch_runner
    result = batch_runner.run(batch_runner.RunOptions("props.toml", out="build/props"))
    result.exit_code, result.report["totals"]

What a run does, in order:
1. Loads and validates the batch file (core/batch/batchfile); `dry_run` stops here with the estimate,
   having sent nothing and opened no connection.
2. Opens `<out>/<blend>` when it exists (a rerun), so every asset already imported is there once.
3. Starts a JobEngine whose journal is `<out>/.journal`. Jobs have deterministic ids, so a rerun
   maps each asset to its journal entry: running tasks are polled again, finished ones are
   downloaded, steps whose create may have left are reconciled, never sent twice, and only what
   was never submitted is created. Failed jobs are resubmitted from the failed step on a rerun
   unless their failure would repeat (content policy, bad parameters...); done steps are kept.
4. Imports each finished asset on the main thread, runs QC, writes `<stem>.task.json` sidecars
   and the metadata, then submits the asset's per-part work (part names come from its model).
5. Logs a progress line per finished job; at the end writes `report.json`, `report.txt`,
   `contact_sheet.png` (each preview labelled with the asset's name and QC state) and saves the
   .blend, which is an asset library: every asset marked (blender/assets.py), tagged with its
   QC state, in a catalog per project and type listed in `blender_assets.cats.txt` beside it.
   Exit status 1 when any job failed.

Threads: the engine's worker does every network call and never touches bpy; everything here runs
on the main thread, which blocks on the engine's event queue (background mode only).
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import bpy

from ..core.batch import batchfile
from ..core.batch.source import BatchFileError
from ..core import costs
from ..core.protocol import errors, request_models
from ..core.engine import history as core_history
from ..core.engine import jobs as core_jobs
from ..core.engine.journal import Journal
from ..core.providers.settings import make_provider
from ..core.files import write_json
from . import assets, importer, landing, metadata, qc as qc_checks, runtime
from . import settings as blender_settings

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_CONCURRENCY = 8          # below the account's ~10 concurrent tasks
DEFAULT_CREATES_PER_MINUTE = 100  # Tripo allows about 200 a minute
DEFAULT_RETRIES = 1
JOURNAL_DIR = ".journal"
REPORT_SCHEMA = 1
GRID_SPACING = 2.5                # metres between assets in the .blend


@dataclass
class RunOptions:
    batch_file: str
    out: str | None = None
    dry_run: bool = False
    concurrency: int | None = None
    creates_per_minute: int | None = None
    retries: int | None = None
    fail_on_qc: bool = False
    resubmit_unknown: bool = False
    timeout: float | None = None       # seconds for the whole run (None: no limit)
    save_interval: float = 30.0        # seconds between saves of the .blend during the run
    contact_sheet: bool = True
    poll_min: float = 0.25             # fastest poll interval (the engine's default is 0.5)


@dataclass
class RunResult:
    exit_code: int
    text: str = ""                     # what the CLI prints (estimate, or the readable report)
    report: dict | None = None
    batch: batchfile.Batch | None = None
    timings: dict = field(default_factory=dict)


def configure_logging(verbose: bool = False, stream=None) -> None:
    """Progress lines to stdout; other modules' INFO only when verbose. For the CLI."""
    import sys

    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    log.setLevel(logging.INFO)
    if not verbose:  # Blender's glTF importer logs three INFO lines per import
        logging.getLogger("glTFImporter").addFilter(lambda record: record.levelno >= logging.WARNING)


def run(options: RunOptions) -> RunResult:
    """Runs (or, with dry_run, only validates and estimates) a batch file. Never raises for a
    bad batch file or a failed job: see RunResult.exit_code."""
    try:
        batch = batchfile.load(options.batch_file)
    except BatchFileError as exc:
        return RunResult(EXIT_INVALID, str(exc))
    if options.dry_run:
        text = "Dry run: nothing was sent.\n" + batch.describe_estimate()
        return RunResult(EXIT_OK, text, batch=batch)
    if not options.out:
        return RunResult(EXIT_INVALID, "--out is required (the folder that receives the assets)")
    if not bpy.app.background:
        return RunResult(EXIT_INVALID, "The batch runner blocks while it waits; run it with "
                                       "`blender -b` (background mode).")
    try:
        return BatchRun(batch, Path(options.out), options).execute()
    except (blender_settings.OfflineError, errors.ValidationError) as exc:
        message = exc.user_message() if hasattr(exc, "user_message") else str(exc)
        return RunResult(EXIT_INVALID, message, batch=batch)


# =========================================================================== engine glue


class _BatchJournal(Journal):
    """The run's journal; `load_all` (used by resume_from_journal) sees this batch's jobs only."""

    def __init__(self, directory, accept):
        super().__init__(directory)
        self._accept = accept

    def load_all(self) -> list[dict]:
        return [r for r in super().load_all() if self._accept(r)]


class BatchRuntime(runtime.Runtime):
    """The main-thread runtime with the batch's own engine and import step."""

    land_at_once = True  # the run waits for every job: import each the moment it is ready

    def __init__(self, batch_run: "BatchRun"):
        super().__init__()
        self.batch_run = batch_run

    def ensure_engine(self, context=None):
        return self.engine

    def _handle(self, context, event):
        if event.kind != "balance" and event.job_id in self.batch_run.records:
            self.batch_run.records[event.job_id] = event.job
        super()._handle(context, event)
        if event.kind in ("failed", "needs_decision", "cancelled"):
            self.batch_run.job_finished(event.job)

    def _import(self, context, job):
        self.batch_run.import_ready(context, job)

    def _notice(self, level: str, text: str, job_id: str = "") -> None:
        # Failures reach the log through the progress line; other notices (waiting for a slot,
        # network trouble) only when verbose.
        self.notices.append(runtime.Notice(level, text, job_id))
        log.debug("%s", text)


# =========================================================================== the run


def _iso(t: float | None) -> str | None:
    if not t:
        return None
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def _duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class BatchRun:
    def __init__(self, batch: batchfile.Batch, out: Path, options: RunOptions):
        self.batch = batch
        self.out = out.resolve()
        self.options = options
        self.plans = {p.job_id: p for p in batch.plans}
        self.records: dict[str, dict] = {}        # latest snapshot of every job of this run
        self.part_parent: dict[str, str] = {}     # part job id -> main job id
        self.part_names: dict[str, list[str]] = {}  # main job id -> part names found
        self.finished: set[str] = set()
        self.failed: set[str] = set()
        self.import_errors: dict[str, str] = {}
        self.qc: dict[str, dict] = {}
        self.import_seconds: dict[str, float] = {}
        self.previous: dict[str, dict] = {}      # journal records found at start
        self.engine: core_jobs.JobEngine | None = None
        self.runtime: BatchRuntime | None = None
        self.blend_path = self.out / batch.blend
        self.started = time.time()
        self.loop_started = time.monotonic()
        self.finished_this_run = 0
        self.last_save = time.monotonic()
        self.last_progress = time.monotonic()
        self.all_done_at: float | None = None
        self.interrupted = False
        self.timed_out = False
        self._objects_by_job: dict[str, list] | None = None

    # --- setup ---------------------------------------------------------------------------------
    def accepts(self, record: dict) -> bool:
        """Journal records the engine resumes: this batch's, except READY ones (their files are
        on disk whatever server made them: `schedule` imports them without the engine)."""
        in_batch = record.get("job_id") in self.plans or \
            (record.get("meta") or {}).get("batch_parent") in self.plans
        return in_batch and record.get("state") != core_jobs.READY

    def engine_options(self) -> dict:
        opts = dict(runtime.ENGINE_OPTIONS)
        opts["max_concurrent"] = self.options.concurrency or self.batch.concurrency or DEFAULT_CONCURRENCY
        opts["creates_per_minute"] = (self.options.creates_per_minute or self.batch.creates_per_minute
                                      or DEFAULT_CREATES_PER_MINUTE)
        retries = self.options.retries if self.options.retries is not None else self.batch.retries
        opts["max_task_retries"] = DEFAULT_RETRIES if retries is None else retries
        opts.setdefault("poll_min", self.options.poll_min)
        return opts

    def prepare_blend(self) -> None:
        online = bpy.context.preferences.system.use_online_access
        if self.blend_path.is_file():
            log.info("reopening %s", self.blend_path)
            bpy.ops.wm.open_mainfile(filepath=str(self.blend_path))
        else:
            bpy.ops.wm.read_homefile(use_empty=True)
        bpy.context.preferences.system.use_online_access = online
        name = f"Tripo batch {self.batch.project}"
        collection = bpy.data.collections.get(name)
        scene = bpy.context.scene
        if collection is None:
            collection = bpy.data.collections.new(name)
        if collection.name not in scene.collection.children:
            scene.collection.children.link(collection)
        layer = next((c for c in bpy.context.view_layer.layer_collection.children
                      if c.collection == collection), None)
        if layer is not None:
            bpy.context.view_layer.active_layer_collection = layer

    def preflight(self):
        """Online access and a well-formed key, before anything is written or sent."""
        blender_settings.require_online_access()
        conn = blender_settings.connection_settings()
        make_provider(conn).close()  # refuses a missing or malformed key without a request
        return conn

    def start_engine(self, conn) -> None:
        journal = _BatchJournal(self.out / JOURNAL_DIR, self.accepts)
        self.journal = journal
        self.previous = {r["job_id"]: r for r in Journal.load_all(journal) if r.get("job_id")}
        opts = self.engine_options()
        self.settings = {"base_url": conn.base_url, "provider": conn.provider, **opts}
        self.engine = core_jobs.JobEngine(lambda: make_provider(conn, for_engine=True), journal, self.out,
                                  provider_name=conn.provider, base_url=conn.base_url, **opts)
        self.runtime = BatchRuntime(self)
        self.runtime.engine = self.engine
        self.engine.start()
        log.info("%d asset(s), concurrency %d, at most %d creates a minute, %d retr%s per task; "
                 "output in %s", len(self.plans), opts["max_concurrent"], opts["creates_per_minute"],
                 opts["max_task_retries"], "y" if opts["max_task_retries"] == 1 else "ies", self.out)

    # --- the run ------------------------------------------------------------------------------
    def execute(self) -> RunResult:
        conn = self.preflight()
        self.out.mkdir(parents=True, exist_ok=True)
        # The History panel lists this run's tasks (its journal and sidecars) from now on.
        core_history.add_root(blender_settings.user_data_dir(), self.out)
        self.prepare_blend()
        self.start_engine(conn)
        context = bpy.context
        try:
            self.schedule(context)
            self.loop(context)
        except KeyboardInterrupt:
            self.interrupted = True
            log.warning("interrupted: rerun the same command to resume (nothing is sent twice)")
        finally:
            self.engine.stop()
            self.finalize_journal()
        self.all_done_at = self.all_done_at or time.monotonic()
        contact = self.write_contact_sheet() if self.options.contact_sheet else None
        self.save_blend()
        report = self.build_report(contact)
        write_json(self.out / "report.json", report, private=False, indent=2)
        text = self.report_text(report)
        (self.out / "report.txt").write_text(text, encoding="utf-8")
        code = report["exit_status"]
        timings = {"wall_seconds": report["wall_seconds"],
                   "until_all_done_seconds": report["until_all_done_seconds"],
                   "import_seconds": report["import_seconds"]}
        return RunResult(code, text, report, self.batch, timings)

    def schedule(self, context) -> None:
        """Maps every asset to its journal entry: resume, retry, import again, or submit."""
        to_submit: list[core_jobs.Job] = []
        for plan in self.batch.plans:
            plan.job.out_dir = str(self.out / plan.asset_id)
            record = self.previous.get(plan.job_id)
            if record is None:
                if self.objects_of(plan.job_id):
                    # In the .blend but not in the journal (journal deleted): never pay again.
                    log.info("%s is already in %s; not submitted again", plan.asset_id, self.blend_path.name)
                    self.records[plan.job_id] = {**plan.job.to_record(), "state": core_jobs.IMPORTED}
                    self.import_asset(context, plan, self.records[plan.job_id])
                    self.finished.add(plan.job_id)
                else:
                    to_submit.append(plan.job)
                continue
            self.records[plan.job_id] = record
            state = record.get("state")
            if state in (core_jobs.IMPORTED, core_jobs.READY):
                # READY: downloaded before an interruption, never imported: no server needed.
                if self.import_asset(context, plan, record):
                    self.mark_done_in_journal(record)
                    self.schedule_parts(plan, record, to_submit)
                self.finished.add(plan.job_id)
            elif state in (core_jobs.FAILED, core_jobs.CANCELLED):
                job = self.requeue(record)
                if job is None:
                    self.finished.add(plan.job_id)
                    self.failed.add(plan.job_id)
                else:
                    to_submit.append(job)
        adopted = set()
        for record in self.engine.resume_from_journal():
            adopted.add(record["job_id"])
            self.records[record["job_id"]] = record
            if record.get("state") == core_jobs.NEEDS_DECISION:
                if self.options.resubmit_unknown:
                    log.warning("%s: resubmitting a create whose outcome was unknown (may bill again)",
                                record.get("label"))
                    self.engine.decide(record["job_id"], True)
                else:
                    self.finished.add(record["job_id"])
                    self.failed.add(record["job_id"])
            parent = (record.get("meta") or {}).get("batch_parent")
            if parent:
                self.part_parent[record["job_id"]] = parent
            log.info("resuming %s (%s)", record.get("label"), runtime.describe(record))
        queued = {job.job_id for job in to_submit}
        for job_id, record in list(self.records.items()):
            if job_id in adopted or job_id in self.finished or job_id not in self.previous:
                continue
            if record.get("state") in core_jobs.FINAL_STATES or job_id in queued:
                continue
            # Unfinished, but created through another provider or API base: its tasks cannot be
            # polled from here, and creating them again would bill twice.
            record = dict(record, state=core_jobs.FAILED, error={
                "type": "OtherServer", "code": None,
                "message": f"this job was started against {record.get('base_url') or 'another server'} "
                           f"({record.get('provider')}); run with that API base to resume it"})
            self.job_finished(record)
        for job in to_submit:
            self.submit(job)
        if self.previous:
            done = sum(1 for j in self.finished if j not in self.failed)
            log.info("resumed from the journal: %d job(s) already done, %d to run", done,
                     len(self.pending()))

    def submit(self, job: core_jobs.Job) -> None:
        try:
            self.engine.submit(job)  # validates the chain first: nothing is sent when it is wrong
        except errors.TripoError as exc:
            record = job.to_record()
            record["state"] = core_jobs.FAILED
            record["error"] = {"type": type(exc).__name__, "code": getattr(exc, "code", None),
                               "message": exc.user_message()}
            self.records[job.job_id] = record
            self.job_finished(record)
            return
        self.records[job.job_id] = job.to_record()

    def requeue(self, record: dict) -> core_jobs.Job | None:
        """A failed job of an earlier run, to run again from its failed step, or None when its
        failure would only repeat. A step whose task succeeded is polled again, never recreated."""
        error = record.get("error") or {}
        if error.get("code") in core_jobs.NON_RETRYABLE_CODES:
            return None
        job = core_jobs.Job.from_record(record)
        step = job.current
        status = str((step.task or {}).get("status") or "")
        if step.task_id and status not in ("failed", "cancelled", "banned", "expired"):
            step.state = core_jobs.RUNNING      # task exists (may have succeeded): poll it again
        elif step.state == core_jobs.SENDING:
            pass  # its create may have reached Tripo: the engine reconciles it, never resends it
        else:
            step.state, step.task_id, step.task = core_jobs.PENDING, None, None
            step.attempts = 0
        step.error = None
        job.state, job.error = core_jobs.QUEUED, None
        log.info("%s failed in an earlier run (%s); running it again from step %d",
                 job.label, error.get("message", "unknown error"), job.current_index + 1)
        return job

    def mark_done_in_journal(self, record: dict) -> None:
        """Journals a job this run imported (or, for per-part work, collected) without the
        engine: a READY job of an earlier run, or one whose "imported" mark the engine had not
        written yet when it stopped."""
        if record.get("state") == core_jobs.IMPORTED and self.journal.path_for(record["job_id"]).is_file():
            try:
                stored = json.loads(self.journal.path_for(record["job_id"]).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                stored = {}
            if stored.get("state") == core_jobs.IMPORTED:
                return
        record["state"] = core_jobs.IMPORTED
        record["imported"] = [o.name for o in self.objects_of(record["job_id"])]
        record["updated_at"] = time.time()
        self.journal.save(record)

    def finalize_journal(self) -> None:
        """After the engine stopped: what this run imported is journaled as imported (the
        engine may have stopped before writing its last marks), so a rerun does nothing twice."""
        for job_id in list(self.records):
            record = self.records[job_id]
            if job_id in self.failed or record.get("state") != core_jobs.IMPORTED:
                continue
            try:
                self.mark_done_in_journal(record)
            except OSError as exc:
                log.warning("could not journal %s as done: %s", job_id, exc)

    def pending(self) -> list[str]:
        return [job_id for job_id in self.records if job_id not in self.finished]

    def loop(self, context) -> None:
        deadline = None if self.options.timeout is None else time.monotonic() + self.options.timeout
        self.loop_started = time.monotonic()
        while True:
            self.runtime.tick(context)
            if not self.pending():
                self.all_done_at = time.monotonic()
                return
            now = time.monotonic()
            if deadline is not None and now > deadline:
                self.timed_out = True
                log.error("timed out after %s with %d job(s) unfinished; rerun to resume",
                          _duration(self.options.timeout), len(self.pending()))
                return
            if now - self.last_save > self.options.save_interval:
                self.save_blend()
            if now - self.last_progress > 60:
                self.progress("still running")
            try:
                event = self.engine.events.get(timeout=0.5)
            except queue.Empty:
                continue
            self.runtime._handle(context, event)

    # --- finished jobs -------------------------------------------------------------------------
    def import_ready(self, context, job: dict) -> None:
        """A job whose outputs are on disk (engine event "ready")."""
        job_id = job["job_id"]
        self.records[job_id] = job
        plan = self.plans.get(job_id)
        if plan is None:  # per-part work: its files are the result
            self.write_sidecars(job)
            self.engine.mark_imported(job_id, [])
            job["state"] = core_jobs.IMPORTED
            self.job_finished(job)
            return
        if not self.import_asset(context, plan, job):
            self.job_finished(job)
            return
        names = [o.name for o in self.objects_of(job_id)]
        self.engine.mark_imported(job_id, names)
        job["state"] = core_jobs.IMPORTED
        new_jobs: list[core_jobs.Job] = []
        self.schedule_parts(plan, job, new_jobs)
        for part_job in new_jobs:
            self.submit(part_job)
        self.job_finished(job)
        if time.monotonic() - self.last_save > self.options.save_interval:
            self.save_blend()

    def objects_of(self, job_id: str) -> list:
        """The objects the .blend holds for a job (indexed once: a rerun may open thousands)."""
        if self._objects_by_job is None:
            self._objects_by_job = {}
            for obj in bpy.data.objects:
                owner = (metadata.read(obj) or {}).get("job_id")
                if owner:
                    self._objects_by_job.setdefault(owner, []).append(obj)
        return list(self._objects_by_job.get(job_id, []))

    def grid_location(self, plan: batchfile.AssetPlan) -> list[float]:
        columns = max(1, math.ceil(math.sqrt(len(self.batch.plans))))
        row, column = divmod(plan.index, columns)
        return [column * GRID_SPACING, -row * GRID_SPACING, 0.0]

    def import_asset(self, context, plan: batchfile.AssetPlan, record: dict) -> bool:
        """Imports the asset unless the .blend already has it, then QC, metadata, sidecars.
        Returns False when the import failed (the job then counts as failed)."""
        job_id = plan.job_id
        objects = self.objects_of(job_id)
        if not objects:
            trimmed = dict(record)
            trimmed["steps"] = record["steps"][: plan.import_step + 1]
            trimmed["meta"] = {**(record.get("meta") or {}), "location": self.grid_location(plan)}
            started = time.perf_counter()
            try:  # landed as the panel lands it: a model, or a splat / depth map by its kind
                result = landing.land(context, trimmed)
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
                log.exception("import of %s failed", plan.asset_id)
                self.import_errors[job_id] = f"the result could not be imported: {exc}"
                self.failed.add(job_id)
                self.write_sidecars(record)
                return False
            self.import_seconds[job_id] = time.perf_counter() - started
            objects = list(result.objects)
            self.objects_of(job_id)  # make sure the index exists, then add the new objects
            self._objects_by_job[job_id] = objects
            if not objects:
                what = {"splat": "splat", "depth": "depth map"}.get(plan.output, "model file")
                self.import_errors[job_id] = f"the job produced no {what} Blender can import"
                self.failed.add(job_id)
                self.write_sidecars(record)
                return False
        self.import_errors.pop(job_id, None)
        self.failed.discard(job_id)
        result_qc = qc_checks.check_asset(objects, output=plan.output, **plan.qc)
        self.qc[job_id] = result_qc
        root = next((o for o in objects if o.parent not in objects), objects[0])
        try:
            metadata.write(root, {
                "batch_asset_id": plan.asset_id, "batch_file": str(Path(self.batch.source).name),
                "batch_folder": plan.asset_id, "batch_tags": json.dumps(plan.tags or {}, sort_keys=True),
                "qc_passed": bool(result_qc["passed"]), "qc_failed": list(result_qc["failed"]),
                "qc_json": json.dumps(result_qc, sort_keys=True, default=str),
            })
        except Exception as exc:  # noqa: BLE001
            log.warning("could not write the QC metadata of %s: %s", plan.asset_id, exc)
        # The library's users filter on QC in the Asset Browser (a rerun replaces the old state).
        assets.replace_tags(assets.marked_id_of(root), "qc:",
                            ["qc:passed" if result_qc["passed"] else "qc:failed"]
                            + [f"qc:{name}" for name in result_qc["failed"]])
        self.write_sidecars(record, result_qc, plan.import_step)
        return True

    def schedule_parts(self, plan: batchfile.AssetPlan, record: dict, to_submit: list) -> None:
        """The asset's per-part jobs, once its part names are known (from its model files)."""
        if not plan.part_work:
            return
        names: dict[int, list[str]] = {}
        for work in plan.part_work:
            step = record["steps"][work.source_step]
            path = (step.get("files") or {}).get("model_url")
            try:
                names[work.source_step] = importer.glb_node_names(path) if path else []
            except (OSError, ValueError) as exc:
                log.warning("%s: cannot read part names from %s: %s", plan.asset_id, path, exc)
                names[work.source_step] = []
        self.part_names[plan.job_id] = sorted({n for v in names.values() for n in v},
                                              key=lambda n: next((v.index(n) for v in names.values() if n in v), 0))
        if not any(names.values()):
            log.warning("%s: the model has no named parts, so there is no per-part work", plan.asset_id)
        for work, missing, real in batchfile.unknown_parts(plan, names):
            self.refuse_unknown_parts(plan, work, missing, real)
        for job in batchfile.part_jobs(plan, record, names, str(self.out / plan.asset_id)):
            self.part_parent[job.job_id] = plan.job_id
            previous = self.previous.get(job.job_id)
            if job.job_id in self.records and job.job_id not in self.finished:
                continue  # resumed from the journal
            if previous is None:
                to_submit.append(job)
                self.records[job.job_id] = job.to_record()
                continue
            self.records[job.job_id] = previous
            state = previous.get("state")
            if state in (core_jobs.IMPORTED, core_jobs.READY):
                self.write_sidecars(previous)
                self.mark_done_in_journal(previous)
                self.finished.add(job.job_id)
            elif state in (core_jobs.FAILED, core_jobs.CANCELLED):
                again = self.requeue(previous)
                if again is None:
                    self.finished.add(job.job_id)
                    self.failed.add(job.job_id)
                else:
                    to_submit.append(again)
            # other states: adopted by resume_from_journal

    def refuse_unknown_parts(self, plan: batchfile.AssetPlan, work, missing: list[str],
                             real: list[str]) -> None:
        """A `parts` entry the model lacks: one failed part job in the report (no request)."""
        for name in missing:
            stem = f"{work.stage}__unknown__{batchfile.safe_name(name)[:40]}"
            job_id = f"{plan.job_id}-{stem}"[:120]
            if job_id in self.finished:
                continue
            message = (f"post.texture_parts names the part {name!r}, which the model does not "
                       f"have; its parts are: {', '.join(real) or '(none)'}. Nothing was sent for it.")
            log.error("%s: %s", plan.asset_id, message)
            job = core_jobs.Job.new(f"{plan.asset_id} {stem}", [core_jobs.Step(
                work.task_type, dict(work.params), file_stem=stem, downloads=())],
                {"asset_id": plan.asset_id, "batch_parent": plan.job_id, "part_name": name,
                 "part_work": work.kind, "no_import": True}, job_id=job_id)
            job.out_dir = str(self.out / plan.asset_id)
            record = job.to_record()
            record["state"] = core_jobs.FAILED
            record["error"] = {"type": "UnknownPart", "code": None, "message": message}
            self.part_parent[job_id] = plan.job_id
            self.records[job_id] = record
            self.job_finished(record)

    def job_finished(self, job: dict) -> None:
        job_id = job["job_id"]
        self.records[job_id] = job
        if job.get("state") == core_jobs.FAILED or job.get("state") == core_jobs.NEEDS_DECISION \
                or job.get("state") == core_jobs.CANCELLED:
            self.failed.add(job_id)
            self.write_sidecars(job)
        if job_id in self.finished:
            return
        self.finished.add(job_id)
        self.finished_this_run += 1
        plan = self.plans.get(job_id)
        if job_id in self.import_errors:
            status = f"FAILED: {self.import_errors[job_id]}"
        elif job_id in self.failed:
            status = f"FAILED: {(job.get('error') or {}).get('message', job.get('state'))}"
        else:
            seconds = self.job_seconds(job)
            status = f"done in {seconds:.1f} s" if seconds is not None else "done"
            if plan is not None:
                status += f", {qc_checks.summary(self.qc.get(job_id))}"
        self.progress(f"{job.get('label', job_id)}: {status}")

    def progress(self, text: str) -> None:
        self.last_progress = time.monotonic()
        total = len(self.records)
        done = len(self.finished)
        in_flight = (core_jobs.SENDING, core_jobs.RUNNING, core_jobs.DOWNLOADING)
        running = sum(1 for j in self.records.values() if j["job_id"] not in self.finished
                      and any(s.get("state") in in_flight for s in j.get("steps") or []))
        failed = len(self.failed)
        credits = sum(core_jobs.record_credits(j) for j in self.records.values())
        elapsed = time.monotonic() - self.loop_started
        left = total - done
        eta = elapsed / self.finished_this_run * left if self.finished_this_run and left else (0 if not left else None)
        unknown_parts = sum(1 for p in self.plans.values() if p.part_work and p.job_id not in self.part_names
                            and p.job_id not in self.finished)
        more = f" (+ per-part jobs of {unknown_parts} asset(s))" if unknown_parts else ""
        log.info("[%d/%d%s] %s | %d running, %d failed, %s credits, ETA %s", done, total, more, text,
                 running, failed, f"{credits:g}", _duration(eta))

    @staticmethod
    def job_seconds(job: dict) -> float | None:
        steps = job.get("steps") or []
        starts = [s.get("sent_at") for s in steps if s.get("sent_at")]
        ends = [s.get("finished_at") for s in steps if s.get("finished_at")]
        if not starts or not ends:
            return None
        return max(ends) - min(starts)

    # --- sidecars ------------------------------------------------------------------------------
    def write_sidecars(self, job: dict, qc: dict | None = None, qc_step: int | None = None) -> None:
        """`<stem>.task.json` per task: request, the task record, timings, credits (and QC)."""
        out_dir = Path(job.get("out_dir") or self.out / "_unassigned")
        steps = job.get("steps") or []
        for index, step in enumerate(steps):
            if not step.get("task_id") and not step.get("error"):
                continue
            stem = batchfile.step_stem(step, index)
            params = dict(step.get("params") or {})
            if step.get("input_from") is not None:
                params["input"] = steps[step["input_from"]].get("task_id")
            route, body, estimate = request_models.ROUTES.get(step["task_type"]), params, None
            try:
                request = request_models.load_request(step["task_type"], params)
                body = request.to_body()
                estimate = costs.estimate_credits(request).credits
            except errors.TripoError:
                pass
            task = step.get("task") or {}
            sent, submitted, finished = step.get("sent_at"), step.get("submitted_at"), step.get("finished_at")
            sidecar = {
                "schema": 1,
                "asset_id": (job.get("meta") or {}).get("asset_id"),
                "job_id": job["job_id"],
                "step": index + 1,
                "stem": stem,
                "task_type": step["task_type"],
                "task_id": step.get("task_id"),
                "state": step.get("state"),
                "attempts": step.get("attempts"),
                "request": {"route": route, "body": body,
                            "input_from_step": None if step.get("input_from") is None else step["input_from"] + 1},
                "task": task,
                "timings": {
                    "sent_at": _iso(sent), "task_created_at": task.get("created_at"),
                    "submitted_at": _iso(submitted), "finished_at": _iso(finished),
                    "completed_at": task.get("completed_at"),
                    "seconds": round(finished - sent, 3) if sent and finished else None,
                },
                "credits": {"consumed": task.get("credits_consumed"), "estimated": estimate},
                "files": {key: os.path.basename(path) for key, path in (step.get("files") or {}).items()},
                "error": step.get("error"),
                "meta": {k: v for k, v in (job.get("meta") or {}).items() if k not in ("qc", "location")},
            }
            if qc is not None and qc_step == index:
                sidecar["qc"] = qc
            try:
                write_json(out_dir / f"{stem}.task.json", sidecar, private=False, indent=2)
            except OSError as exc:
                log.warning("could not write the sidecar of %s: %s", stem, exc)

    # --- end of run ----------------------------------------------------------------------------
    def save_blend(self) -> None:
        prefs = bpy.context.preferences.filepaths
        versions = prefs.save_version
        try:
            prefs.save_version = 0  # no .blend1 backups next to the result
            bpy.ops.wm.save_as_mainfile(filepath=str(self.blend_path), check_existing=False)
        except Exception as exc:  # noqa: BLE001
            log.error("could not save %s: %s", self.blend_path, exc)
        finally:
            prefs.save_version = versions
        # The save handler writes them too; this run's library must have them either way.
        assets.write_catalogs(str(self.blend_path))
        self.last_save = time.monotonic()

    def preview_of(self, plan: batchfile.AssetPlan) -> str | None:
        """The contact sheet's picture: Tripo's rendered preview, or a depth map itself (a splat
        has no picture: its cell stays grey)."""
        record = self.records.get(plan.job_id) or {}
        steps = (record.get("steps") or [])[: plan.import_step + 1]
        if not steps:
            return None
        depth_map = (steps[-1].get("files") or {}).get("depth_image_url")
        if plan.output == "depth" and depth_map and os.path.isfile(depth_map):
            return depth_map
        return importer.preview_file({"steps": steps})

    def write_contact_sheet(self) -> dict | None:
        entries = []
        for plan in self.batch.plans:
            ok = plan.job_id not in self.failed and self.records.get(plan.job_id, {}).get("state") \
                == core_jobs.IMPORTED
            qc_ok = (self.qc.get(plan.job_id) or {}).get("passed", True)
            entries.append((plan.asset_id, self.preview_of(plan), ok, qc_ok))
        if not any(path for _, path, _, _ in entries):
            return None
        dest = self.out / "contact_sheet.png"
        try:
            return write_contact_sheet(entries, dest)
        except Exception as exc:  # noqa: BLE001 - a missing picture must not lose the report
            log.warning("could not write the contact sheet: %s", exc)
            return None

    def asset_status(self, plan: batchfile.AssetPlan) -> str:
        record = self.records.get(plan.job_id) or {}
        if plan.job_id in self.import_errors:
            return "import_failed"
        state = record.get("state") or "pending"
        if state == core_jobs.IMPORTED:
            parts = [j for j, parent in self.part_parent.items() if parent == plan.job_id]
            if any(p in self.failed for p in parts):
                return "part_jobs_failed"
            if any(p not in self.finished for p in parts):
                return "part_jobs_pending"
            return "imported"
        return state

    def build_report(self, contact: dict | None) -> dict:
        assets = []
        for plan in self.batch.plans:
            record = self.records.get(plan.job_id) or {}
            parts = []
            for job_id, parent in self.part_parent.items():
                if parent != plan.job_id:
                    continue
                part = self.records.get(job_id) or {}
                step = (part.get("steps") or [{}])[0]
                parts.append({
                    "job_id": job_id, "stem": step.get("file_stem"), "task_id": step.get("task_id"),
                    "part": (part.get("meta") or {}).get("part_name"),
                    "status": "failed" if job_id in self.failed else part.get("state", "pending"),
                    "credits": core_jobs.record_credits(part), "error": (part.get("error") or {}).get("message"),
                    "files": [os.path.basename(p) for p in (step.get("files") or {}).values()],
                })
            folder = self.out / plan.asset_id
            files = sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
            seconds = self.job_seconds(record)
            assets.append({
                "asset_id": plan.asset_id, "job_id": plan.job_id, "status": self.asset_status(plan),
                "source": plan.source, "name": plan.name, "type": plan.type, "prompt": plan.prompt,
                "fields": plan.fields, "variant": plan.variant, "generation": plan.generation,
                "seed": plan.seed, "tags": plan.tags, "folder": plan.asset_id, "output": plan.output,
                "tasks": [{"step": i + 1, "type": s.get("task_type"), "task_id": s.get("task_id"),
                           "state": s.get("state"), "stem": batchfile.step_stem(s, i)}
                          for i, s in enumerate(record.get("steps") or [])],
                "credits": core_jobs.record_credits(record) + sum(p["credits"] for p in parts),
                "estimated_credits": plan.estimate,
                "seconds": round(seconds, 2) if seconds is not None else None,
                "import_seconds": round(self.import_seconds.get(plan.job_id, 0.0), 3),
                "qc": self.qc.get(plan.job_id),
                "error": self.import_errors.get(plan.job_id) or (record.get("error") or {}).get("message"),
                "part_names": self.part_names.get(plan.job_id, []),
                "part_jobs": parts,
                "files": files,
            })
        imported = sum(1 for a in assets if a["status"] in ("imported", "part_jobs_failed", "part_jobs_pending"))
        failed_assets = sum(1 for a in assets if a["status"] not in ("imported",))
        part_jobs = [p for a in assets for p in a["part_jobs"]]
        qc_failed = [a["asset_id"] for a in assets if a["qc"] and not a["qc"]["passed"]]
        any_failed = bool(self.failed) or bool(self.pending()) or failed_assets > 0
        if self.interrupted:
            code = EXIT_INTERRUPTED
        elif any_failed:
            code = EXIT_FAILED
        elif qc_failed and self.options.fail_on_qc:
            code = EXIT_FAILED
        else:
            code = EXIT_OK
        now = time.time()
        return {
            "schema": REPORT_SCHEMA,
            "batch_file": str(Path(self.batch.source).resolve()),
            "out": str(self.out),
            "blend": self.blend_path.name,
            "contact_sheet": contact,
            "started_at": _iso(self.started),
            "finished_at": _iso(now),
            "wall_seconds": round(now - self.started, 3),
            "until_all_done_seconds": round((self.all_done_at or time.monotonic()) - self.loop_started, 3),
            "import_seconds": round(sum(self.import_seconds.values()), 3),
            "settings": self.settings,
            "interrupted": self.interrupted,
            "timed_out": self.timed_out,
            "totals": {
                "assets": len(assets), "imported": imported, "failed": failed_assets,
                "qc_failed": len(qc_failed), "part_jobs": len(part_jobs),
                "part_jobs_failed": sum(1 for p in part_jobs if p["status"] == "failed"),
                "credits": sum(a["credits"] for a in assets),
                "estimated_credits": sum(a["estimated_credits"] for a in assets),
                "unfinished_jobs": len(self.pending()),
                "needs_decision": sum(1 for r in self.records.values()
                                      if r.get("state") == core_jobs.NEEDS_DECISION),
                # Tasks Tripo created late for a request already submitted again (billed,
                # not imported), with their ids in the job's journal record.
                "duplicate_tasks": sum(len(r.get("duplicates") or []) for r in self.records.values()),
            },
            "engine": dict(self.engine.stats) if self.engine else {},
            "qc_failed": qc_failed,
            "assets": assets,
            "exit_status": code,
        }

    @staticmethod
    def report_text(report: dict) -> str:
        totals = report["totals"]
        lines = [
            f"Tripo batch report: {report['batch_file']}",
            f"Output: {report['out']} (blend: {report['blend']})",
            f"Started {report['started_at']}, took {_duration(report['wall_seconds'])}",
            f"Assets: {totals['assets']}  imported: {totals['imported']}  failed: {totals['failed']}  "
            f"QC failed: {totals['qc_failed']}  per-part jobs: {totals['part_jobs']} "
            f"({totals['part_jobs_failed']} failed)",
            f"Credits: {totals['credits']:g} consumed (estimate was ≈ {totals['estimated_credits']:g} "
            "before per-part work)",
            "",
        ]
        width = max([len(a["asset_id"]) for a in report["assets"]] + [8])
        lines.append(f"{'asset':<{width}}  {'output':<6} {'status':<17} {'credits':>8} {'time':>8}  QC")
        for asset in report["assets"]:
            qc = asset["qc"]
            qc_text = "-" if not qc else ("ok" if qc["passed"] else "FAILED: " + ", ".join(qc["failed"]))
            seconds = f"{asset['seconds']:.1f}s" if asset["seconds"] is not None else "-"
            lines.append(f"{asset['asset_id']:<{width}}  {asset['output']:<6} {asset['status']:<17} "
                         f"{asset['credits']:>8g} {seconds:>8}  {qc_text}")
        problems = [a for a in report["assets"] if a["error"] or (a["qc"] and not a["qc"]["passed"])
                    or any(p["status"] == "failed" for p in a["part_jobs"])]
        if problems:
            lines += ["", "Details:"]
            for asset in problems:
                if asset["error"]:
                    lines.append(f"  {asset['asset_id']}: {asset['error']}")
                if asset["qc"] and not asset["qc"]["passed"]:
                    for name in asset["qc"]["failed"]:
                        lines.append(f"  {asset['asset_id']}: QC {name}: {asset['qc']['checks'][name]['message']}")
                for part in asset["part_jobs"]:
                    if part["status"] == "failed":
                        lines.append(f"  {asset['asset_id']}: {part['stem']}: {part['error']}")
        if report.get("contact_sheet"):
            lines += ["", f"Contact sheet: {report['contact_sheet']['file']}"]
        if report.get("interrupted") or report.get("timed_out") or totals["unfinished_jobs"]:
            lines += ["", f"{totals['unfinished_jobs']} job(s) unfinished: rerun the same command to "
                          "resume (nothing is sent twice)."]
        lines.append(f"Exit status: {report['exit_status']}")
        return "\n".join(lines) + "\n"


# =========================================================================== contact sheet


def _load_pixels(path: str, size: int):
    """The image at `path` scaled to fit a size x size cell, as an (h, w, 4) float array."""
    import numpy as np

    image = bpy.data.images.load(path, check_existing=False)
    try:
        width, height = image.size[:]
        if not width or not height:
            return None
        scale = min(size / width, size / height)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        if (new_w, new_h) != (width, height):
            image.scale(new_w, new_h)
        pixels = np.empty(new_w * new_h * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
        return pixels.reshape(new_h, new_w, 4)
    finally:
        bpy.data.images.remove(image)


LABEL_HEIGHT = 34                 # px under each contact-sheet cell: the name, then the state
LABEL_COLORS = {"QC ok": (0.55, 0.9, 0.55, 1.0), "QC failed": (1.0, 0.6, 0.1, 1.0),
                "failed": (1.0, 0.35, 0.35, 1.0)}


def cell_state(ok: bool, qc_ok: bool) -> str:
    if not ok:
        return "failed"
    return "QC ok" if qc_ok else "QC failed"


def _draw_labels(labels: list[tuple], width: int, height: int):
    """Text drawn with Blender's font into an (h, w, 4) float array (transparent elsewhere), or
    None where this Blender cannot draw text into an image buffer. `labels`: (x, y, max width,
    text, rgba), y counted from the bottom as in Blender's images."""
    import blf
    import numpy as np
    try:
        import imbuf
    except ImportError:
        return None
    if not hasattr(blf, "bind_imbuf"):
        return None
    font = 0
    buffer = imbuf.new((width, height))
    with blf.bind_imbuf(font, buffer, display_name="sRGB"):
        blf.size(font, 13)
        for x, y, max_width, text, color in labels:
            while len(text) > 4 and blf.dimensions(font, text)[0] > max_width:
                text = text[:-2] + "…"
            blf.position(font, x, y, 0)
            blf.color(font, *color)
            blf.draw_buffer(font, text)
    # ImBuf has no pixel access from Python: through a PNG and Blender's image loader.
    fd, tmp = tempfile.mkstemp(suffix=".png")
    os.close(fd)
    try:
        imbuf.write(buffer, filepath=tmp)
        image = bpy.data.images.load(tmp, check_existing=False)
        try:
            pixels = np.empty(width * height * 4, dtype=np.float32)
            image.pixels.foreach_get(pixels)
        finally:
            bpy.data.images.remove(image)
    finally:
        buffer.free()
        os.unlink(tmp)
    return pixels.reshape(height, width, 4)


def write_contact_sheet(entries: list[tuple], dest: Path, cell: int = 256, pad: int = 8) -> dict:
    """A grid of the previews, in batch order, left to right and top to bottom, each labelled
    with the asset's name and its state ("QC ok", "QC failed", "failed"). `entries` are
    (asset_id, preview path or None, job ok, QC ok). Failed jobs get a red cell, QC failures an
    orange frame, a missing preview a grey cell. Returns the layout for the report."""
    import numpy as np

    count = len(entries)
    columns = max(1, math.ceil(math.sqrt(count)))
    rows = math.ceil(count / columns)
    row_height = cell + LABEL_HEIGHT
    width = columns * cell + (columns + 1) * pad
    height = rows * row_height + (rows + 1) * pad
    sheet = np.empty((height, width, 4), dtype=np.float32)
    sheet[:] = (0.08, 0.08, 0.08, 1.0)
    layout = []
    labels = []
    for number, (asset_id, path, ok, qc_ok) in enumerate(entries):
        row, column = divmod(number, columns)
        x0 = pad + column * (cell + pad)
        # Blender's rows go bottom-up; the label band sits under the picture.
        y0 = height - pad - (row + 1) * row_height - row * pad + LABEL_HEIGHT
        state = cell_state(ok, qc_ok)
        labels.append((x0 + 4, y0 - 15, cell - 8, asset_id, (0.92, 0.92, 0.92, 1.0)))
        labels.append((x0 + 4, y0 - 31, cell - 8, state, LABEL_COLORS[state]))
        background = (0.2, 0.2, 0.2, 1.0) if ok else (0.45, 0.08, 0.08, 1.0)
        sheet[y0:y0 + cell, x0:x0 + cell] = background
        shown = False
        if path:
            try:
                pixels = _load_pixels(path, cell)
            except (RuntimeError, OSError) as exc:
                log.warning("preview %s could not be read: %s", path, exc)
                pixels = None
            if pixels is not None:
                h, w = pixels.shape[:2]
                ox, oy = x0 + (cell - w) // 2, y0 + (cell - h) // 2
                region = sheet[oy:oy + h, ox:ox + w]
                alpha = pixels[..., 3:4]
                region[..., :3] = pixels[..., :3] * alpha + region[..., :3] * (1 - alpha)
                region[..., 3] = 1.0
                shown = True
        if ok and not qc_ok:
            frame = (1.0, 0.55, 0.0, 1.0)
            sheet[y0:y0 + 4, x0:x0 + cell] = frame
            sheet[y0 + cell - 4:y0 + cell, x0:x0 + cell] = frame
            sheet[y0:y0 + cell, x0:x0 + 4] = frame
            sheet[y0:y0 + cell, x0 + cell - 4:x0 + cell] = frame
        layout.append({"cell": number + 1, "row": row + 1, "column": column + 1, "asset_id": asset_id,
                       "label": f"{asset_id} · {state}",
                       "preview": os.path.basename(path) if path else None, "shown": shown,
                       "job_ok": ok, "qc_ok": qc_ok})
    try:
        text = _draw_labels(labels, width, height)
    except Exception as exc:  # noqa: BLE001 - the pictures matter more than their captions
        log.warning("could not draw the contact sheet's labels: %s", exc)
        text = None
    if text is not None:
        alpha = text[..., 3:4]
        sheet[..., :3] = text[..., :3] * alpha + sheet[..., :3] * (1 - alpha)
    image = bpy.data.images.new("Tripo contact sheet", width, height, alpha=True)
    try:
        image.pixels.foreach_set(sheet.ravel())
        image.filepath_raw = str(dest)
        image.file_format = "PNG"
        image.save()
    finally:
        bpy.data.images.remove(image)
    return {"file": dest.name, "columns": columns, "rows": rows, "cell_pixels": cell,
            "labelled": text is not None, "cells": layout}
