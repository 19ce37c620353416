"""Jobs and the background worker that runs them.

A job is one Tripo task or a chain of them (generate -> rig -> retarget, ...). The worker thread
does every network call: it creates tasks, polls all running tasks together in one request,
downloads results. Rule: THE WORKER NEVER TOUCHES bpy. It takes plain values in (Job objects
given to `submit`, commands through a queue) and hands plain values out (`JobEvent`s with a dict
snapshot of the job) through `events`, a queue.Queue the main thread drains.

Ownership: a job belongs to the process that runs it, which holds the job's lock in the journal
folder (core/engine/ownership.py) while the job is unfinished. `submit` claims it, `resume_from_journal`
adopts only jobs whose lock nobody holds, `stop` releases every lock once the downloads have
stopped, so two processes (or two engines of one process) never run or download one job.

Billing safety: a step is journaled as SENDING before its create request goes out. A create
whose outcome is unknown (the request may have reached Tripo) is never sent again blindly. Every
run of the engine keeps reconciling it with the server (the usage list plus the task's echoed
input, with backoff) for RECONCILE_WINDOW after it was sent: a matching task is adopted whenever
it shows up. Only once the window has passed and the usage list (which lists every billed task)
still shows no match is the step submitted again; its earlier attempt stays watched, and a task
that shows up for it later is recorded as a duplicate (never imported twice). The user is asked
(NEEDS_DECISION) only when the service could not be reached during the whole window, or when the
provider has no task list to check; reconciliation goes on meanwhile. A failed task is only
resubmitted when retries were asked for and its failure is not one that would fail again
(content policy, bad parameters).
"""

from __future__ import annotations

import copy
import logging
import mimetypes
import os
import queue
import threading
import time
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from ..protocol import chains, errors, request_models, vocabulary
from . import ownership
from ..providers.download import DownloadCancelled
from .journal import Journal

log = logging.getLogger(__name__)

# Job states
QUEUED = "queued"              # waiting for a concurrency slot or for its first create
ACTIVE = "active"              # a task of the chain is being created, running or downloaded
READY = "ready"                # every output is on disk; waiting for the main thread to import
IMPORTED = "imported"
FAILED = "failed"
NEEDS_DECISION = "needs_decision"  # a create may or may not have billed: the user decides
CANCELLED = "cancelled"
FINAL_STATES = (IMPORTED, FAILED, CANCELLED)

# Step states
PENDING = "pending"
SENDING = "sending"            # create request about to go out / outcome not yet known
RUNNING = "running"            # task id known, not finished
DOWNLOADING = "downloading"
DONE = "done"
STEP_FAILED = "failed"

#: Jobs whose result is no model (image analysis), by job.meta["kind"]: the task type and the
#: output that is the result. The Blender side lands them (blender/image_results); a task
#: imported by its id gets its kind from its type here, so it lands as if made in Blender.
ANALYSIS_KINDS: dict[str, tuple[str, str]] = {
    "splat": (vocabulary.IMAGE_TO_SPLAT, "model_url"),
    "depth": (vocabulary.IMAGE_TO_DEPTH, "depth_image_url"),
}
ANALYSIS_KIND_OF_TASK: dict[str, str] = {task_type: kind for kind, (task_type, _) in ANALYSIS_KINDS.items()}

# Failures that a resubmission would only repeat (and bill again).
NON_RETRYABLE_CODES = {1003, 1004, 1005, 2006, 2007, 2008, 2010, 2015, 2016, 2017, 2018}
MAX_UNSENT_ATTEMPTS = 4  # creates that never left the machine (service unreachable)

#: Seconds a create whose outcome is unknown is reconciled before "not in the usage list" counts
#: as proof that it created nothing. A request can reach Tripo late: it may wait in a proxy or
#: gateway (their timeouts run to minutes), our own read timeout is 60 s, and a task may take a
#: while to show in the usage list. Ten minutes covers several of those delays end to end; what
#: it costs is that an asset whose create got an ambiguous answer (500/503, a cut connection)
#: is resubmitted only ten minutes later. $TRIPO_RECONCILE_WINDOW overrides it (seconds).
RECONCILE_WINDOW = 600.0
#: How long an attempt that was resubmitted is still watched for a late task (recorded as a
#: duplicate). Tripo keeps task records about 7 days; a day covers any plausible delay.
LATE_WATCH_SECONDS = 24 * 3600.0


def default_reconcile_window() -> float:
    value = os.environ.get("TRIPO_RECONCILE_WINDOW", "")
    try:
        return max(0.0, float(value)) if value.strip() else RECONCILE_WINDOW
    except ValueError:
        log.warning("TRIPO_RECONCILE_WINDOW=%r is not a number of seconds; using %g s", value,
                    RECONCILE_WINDOW)
        return RECONCILE_WINDOW


@dataclass
class Step:
    task_type: str
    params: dict
    input_from: int | None = None  # index of an earlier step whose task id becomes `input`
    file_stem: str = ""            # how downloaded files are named (default "<n>_<type>")
    downloads: tuple[str, ...] = ("model_url", "rendered_image_url", "generated_image_url")
    task_id: str | None = None
    state: str = PENDING
    progress: int = 0
    status: str = ""               # Tripo's status string
    sent_at: float | None = None   # wall-clock time the create went out
    task: dict | None = None       # the last task record Tripo sent
    files: dict = field(default_factory=dict)  # output key -> local path
    error: dict | None = None
    attempts: int = 0
    submitted_at: float | None = None
    finished_at: float | None = None
    # Reconciliation of a create whose outcome is unknown: when the service last answered a
    # check (None: not since it was sent), and what the last check found.
    reached_at: float | None = None
    reconcile_note: str = ""
    checks: int = 0                # reconcile checks of the current create (for the backoff)
    # Earlier creates of this step that were resubmitted without a task being found for them
    # (proved absent after the window, or the user chose to resubmit); a task that shows up for
    # one later is a duplicate. Each: {"sent_at": float, "watch_until": float}.
    lost_creates: list = field(default_factory=list)


@dataclass
class Job:
    job_id: str
    label: str
    steps: list[Step]
    meta: dict = field(default_factory=dict)  # plain values for whoever imports the result
    state: str = QUEUED
    provider: str = ""
    base_url: str = ""
    out_dir: str = ""
    error: dict | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    imported: list = field(default_factory=list)
    # Who submitted it: ownership.this_process() plus "blend" (the .blend it lands in, "" when
    # unsaved). An adopting process puts its own pid/token here and keeps "blend".
    owner: dict = field(default_factory=dict)
    # Tasks found for lost creates after the step had another task: billed, never imported.
    # Each: {"step": index, "task_id": str, "found_at": float}.
    duplicates: list = field(default_factory=list)

    @classmethod
    def new(cls, label: str, steps: list[Step], meta: dict | None = None, job_id: str | None = None) -> "Job":
        return cls(job_id=job_id or uuid.uuid4().hex[:12], label=label, steps=steps, meta=meta or {})

    @property
    def current_index(self) -> int:
        for index, step in enumerate(self.steps):
            if step.state != DONE:
                return index
        return len(self.steps) - 1

    @property
    def current(self) -> Step:
        return self.steps[self.current_index]

    def to_record(self) -> dict:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict) -> "Job":
        record = copy.deepcopy(record)
        steps = []
        for s in record.pop("steps"):
            s["downloads"] = tuple(s.get("downloads") or ())
            steps.append(Step(**s))
        return cls(steps=steps, **record)


# Queries on job records (Job.to_record() snapshots: what the main thread holds).

def current_step_index(record: dict) -> int:
    """The first step not done yet (the last step once all are done)."""
    steps = record.get("steps") or []
    return next((i for i, s in enumerate(steps) if s.get("state") != DONE), max(0, len(steps) - 1))


def record_credits(record: dict | None) -> float:
    """Credits Tripo reported for the job's tasks so far."""
    return float(sum(float((s.get("task") or {}).get("credits_consumed") or 0)
                     for s in (record or {}).get("steps", [])))


def record_progress(record: dict) -> float:
    """0..1 over the whole chain."""
    if record.get("state") in (READY, IMPORTED):
        return 1.0
    steps = record.get("steps") or []
    index = current_step_index(record)
    running = steps[index].get("progress", 0) / 100 if steps else 0
    return min(1.0, (index + running) / max(1, len(steps)))


@dataclass(frozen=True)
class JobEvent:
    kind: str      # "update", "ready", "failed", "needs_decision", "cancelled", "notice"
    job_id: str
    job: dict      # snapshot (Job.to_record()); plain values only
    message: str = ""


def validate_chain(job: Job, provider_name: str = "tripo") -> None:
    """Builds every step's request before anything is sent: bad input costs no credits, and a
    step the provider does not offer is refused with its reason before the first one runs."""
    from ..providers.capabilities import feature_unavailable_reason

    for index, step in enumerate(job.steps):
        params = dict(step.params)
        reason = feature_unavailable_reason(provider_name, step.task_type, params)
        if reason:
            raise errors.FeatureUnavailable(reason, reason=reason)
        if index == 0 and job.meta.get("source_type"):
            chains.check_chain(step.task_type, job.meta["source_type"])
        if step.input_from is not None:
            if not 0 <= step.input_from < index:
                raise errors.ValidationError(f"step {index + 1} takes its input from a later step")
            source_type = job.steps[step.input_from].task_type
            chains.check_chain(step.task_type, source_type)
            params["input"] = "00000000-0000-4000-8000-000000000000"  # stands for the future task id
        request_models.build_request(step.task_type, **params)


class JobEngine:
    """Runs jobs on one daemon worker thread. Thread-safe entry points: submit, cancel, retry,
    decide, mark_imported, snapshot, stop. Results come out of `events`.

    ``clock`` (wall time: what is journaled and compared with Tripo's task times), ``monotonic``
    (the worker's schedule: polls, backoff, retries, the reconcile window) and ``sleep`` (the
    worker's wait between rounds) are injectable for tests, like the providers'. By default the
    worker waits on its wake-up event, which every command sets, so a command never waits for a
    round to come."""

    def __init__(self, provider_factory: Callable[[], object], journal: Journal, download_dir: str | os.PathLike,
                 *, provider_name: str = "tripo", base_url: str = "", max_concurrent: int = 8,
                 creates_per_minute: int = 100, max_task_retries: int = 0,
                 poll_min: float = 1.0, poll_max: float = 5.0, download_workers: int = 2,
                 reconcile_window: float | None = None,
                 sleep: Callable[[float], None] | None = None,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic):
        self._provider_factory = provider_factory
        self._clock = clock
        self._monotonic = monotonic
        self._local = threading.local()
        self.journal = journal
        self.download_dir = Path(download_dir)
        self.provider_name = provider_name
        self.base_url = base_url
        self.max_concurrent = max(1, max_concurrent)
        self._slot_cap = self.max_concurrent  # lowered while Tripo answers 2000
        self.creates_per_minute = creates_per_minute
        self.max_task_retries = max_task_retries
        self.poll_min, self.poll_max = poll_min, poll_max
        self.reconcile_window = default_reconcile_window() if reconcile_window is None \
            else max(0.0, float(reconcile_window))
        self._watch_at: dict[tuple[str, int, float], float] = {}  # lost create -> next check
        self.events: "queue.Queue[JobEvent]" = queue.Queue()
        self._inbox: "queue.Queue[Callable[[], None]]" = queue.Queue()
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()  # guards _jobs for snapshot() from other threads
        self._wake = threading.Event()
        self._sleep = sleep or self._wake.wait
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._downloads = ThreadPoolExecutor(max_workers=download_workers, thread_name_prefix="tripo-download")
        self._pending_downloads: dict[tuple[str, int], Future] = {}
        self._create_times: deque[float] = deque()
        self._retry_at: dict[tuple[str, int], float] = {}
        self._next_poll = 0.0
        self._poll_failures = 0
        self.stats = {"creates": 0, "polls": 0, "downloads": 0, "reconciles": 0,
                      "adopted": 0, "resubmitted_after_window": 0, "duplicates": 0}

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "JobEngine":
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="tripo-jobs", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stops the worker and its downloads (each stops at its next chunk and removes its
        .part), then gives up every job lock so that a new engine or process may resume them."""
        deadline = time.monotonic() + timeout  # real time: it bounds the wait for real threads
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._downloads.shutdown(wait=False, cancel_futures=True)
        running = [f for f in self._pending_downloads.values() if not f.done()]
        if running:
            done, not_done = futures_wait(running, timeout=max(0.1, deadline - time.monotonic()))
            if not_done:
                log.warning("%d download(s) still stopping; their .part files stay locked until then",
                            len(not_done))
        if all(f.done() for f in self._pending_downloads.values()):
            self._downloads.shutdown(wait=True)  # idle download threads exit at once: none left behind
        self.journal.locks.release_all()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- thread-safe commands ----------------------------------------------------------------
    def submit(self, job: Job) -> str:
        """Validates the whole chain (raises errors.ValidationError), journals it, queues it."""
        validate_chain(job, self.provider_name)
        if not self.journal.locks.claim(job.job_id):
            raise errors.TripoError(f"Job {job.job_id} is already run by another Blender process.")
        job.owner = {**job.owner, **ownership.this_process()}
        job.provider, job.base_url = self.provider_name, self.base_url
        job.out_dir = job.out_dir or str(self.download_dir / job.job_id)
        job.state = QUEUED
        self.journal.save(job.to_record())
        self._command(lambda: self._add(job))
        return job.job_id

    def resume_from_journal(self, only=None) -> list[dict]:
        """Adopts unfinished jobs of this provider/host from the journal (those in `only`, when
        given) whose owner is gone; returns their records. A job another live process owns (its
        lock is held) is left to it."""
        resumed = []
        for record in self.journal.load_all():
            if record.get("state") in FINAL_STATES:
                continue
            if only is not None and record["job_id"] not in only:
                continue
            if (record.get("provider"), record.get("base_url")) != (self.provider_name, self.base_url):
                continue
            with self._lock:
                if record["job_id"] in self._jobs:
                    continue  # already ours
            if not self.journal.locks.claim(record["job_id"]):
                log.debug("job %s belongs to another live process", record["job_id"])
                continue
            record = self.journal.load(record["job_id"])  # the owner may have finished it meanwhile
            if record is None or record.get("state") in FINAL_STATES:
                if record is not None:
                    self.journal.locks.release(record["job_id"])
                continue
            job = Job.from_record(record)
            previous = job.owner or {}
            job.owner = {**previous, **ownership.this_process()}
            if previous.get("pid") and not ownership.is_this_process(previous):
                job.owner["adopted_from"] = previous.get("pid")
            self.journal.save(job.to_record())
            for step in job.steps:
                if step.state == DOWNLOADING:
                    step.state = RUNNING  # poll again for fresh URLs
            resumed.append(job.to_record())
            self._command(lambda job=job: self._add(job, resumed=True))
        return resumed

    def cancel(self, job_id: str) -> None:
        self._command(lambda: self._cancel(job_id))

    def retry(self, job_id: str) -> None:
        """Resubmits a failed job from its failed step (a new task: the failed one billed nothing)."""
        self._command(lambda: self._retry(job_id))

    def decide(self, job_id: str, resubmit: bool) -> None:
        """For NEEDS_DECISION jobs: resubmit (may bill twice) or give up."""
        self._command(lambda: self._decide(job_id, resubmit))

    def mark_imported(self, job_id: str, names: list[str]) -> None:
        self._command(lambda: self._mark_imported(job_id, names))

    def snapshot(self, job_id: str | None = None):
        with self._lock:
            if job_id is not None:
                job = self._jobs.get(job_id)
                return job.to_record() if job else None
            return [job.to_record() for job in self._jobs.values()]

    def fetch_balance(self) -> None:
        """Asks the worker for the account balance; the answer comes as a "balance" event."""
        self._command(self._fetch_balance)

    def _fetch_balance(self) -> None:
        try:
            balance = self.provider.balance()
            payload = {"balance": float(balance.balance), "frozen": float(balance.frozen or 0)}
            self.events.put(JobEvent("balance", "", payload))
        except errors.TripoError as exc:
            self.events.put(JobEvent("balance", "", {}, exc.user_message()))

    def track(self, job: Job) -> str:
        """Follows a task made elsewhere with the same key (the web console, another machine):
        `job` has one step whose task_id is set. Nothing is created, so nothing is validated or
        billed. The worker reads the task (GET /v3/tasks/{id}), takes its type and input from it,
        then polls and downloads it like any other. Such a task is never re-created (we do not
        own its request): its failure is final (`meta["tracked"]`)."""
        if not self.journal.locks.claim(job.job_id):
            raise errors.TripoError(f"Job {job.job_id} is already run by another Blender process.")
        job.meta["tracked"] = True
        job.owner = {**job.owner, **ownership.this_process()}
        job.provider, job.base_url = self.provider_name, self.base_url
        job.out_dir = job.out_dir or str(self.download_dir / job.job_id)
        job.state = QUEUED
        job.steps[0].state = RUNNING  # after a restart it is simply polled again
        self.journal.save(job.to_record())
        self._command(lambda: self._track(job))
        return job.job_id

    def _track(self, job: Job) -> None:
        self._add(job)
        step = job.steps[0]
        try:
            task = self.provider.get_task(step.task_id)
        except errors.TripoError as exc:
            self._fail(job, exc)
            return
        inputs = {k: v for k, v in (task.input or {}).items() if v is not None}
        step.task_type = task.type or step.task_type
        step.params = inputs
        step.submitted_at = step.submitted_at or self._clock()
        prompt = str(inputs.get("prompt") or "")
        job.meta.setdefault("prompt", prompt)
        fallback = f"Tripo task {step.task_id[:8]}"
        kind = ANALYSIS_KIND_OF_TASK.get(step.task_type)
        if kind is not None:
            # A splat or depth map: its own output and import, as a job made here would have.
            job.meta.setdefault("kind", kind)
            step.downloads = (ANALYSIS_KINDS[kind][1],)
            if inputs.get("input"):
                image = os.path.basename(urlparse(str(inputs["input"])).path)  # token, URL or file
                job.meta.setdefault("images", [image])
            fallback = f"{fallback} {kind}"
        job.meta["name"] = job.meta.get("name") or prompt or fallback
        job.label = job.meta["name"]
        job.state = ACTIVE
        self._save(job)
        self._apply_task(job, task)
        self._emit("update", job)

    def forget(self, job_id: str) -> None:
        """Removes a finished job from the engine and the journal (its files stay on disk)."""
        self._command(lambda: self._forget(job_id))

    def _command(self, fn: Callable[[], None]) -> None:
        self._inbox.put(fn)
        self._wake.set()

    # --- worker -------------------------------------------------------------------------------
    @property
    def provider(self):
        provider = getattr(self._local, "provider", None)
        if provider is None:
            provider = self._local.provider = self._provider_factory()
        return provider

    def _run(self) -> None:
        log.debug("job worker started")
        while not self._stop.is_set():
            try:
                self._drain_inbox()
                self._submit_steps()
                self._reconcile_steps()
                if self._monotonic() >= self._next_poll:
                    self._poll()
                self._collect_downloads()
            except Exception:  # noqa: BLE001 - the worker must survive any single failure
                log.exception("job worker round failed")
                self._next_poll = self._monotonic() + self.poll_max
            self._sleep(self._sleep_time())
            self._wake.clear()
        # Commands that arrived while stopping (e.g. "imported" marks) still reach the journal.
        self._drain_inbox()
        log.debug("job worker stopped")

    def _sleep_time(self) -> float:
        now = self._monotonic()
        deadlines = [self._next_poll] if self._has_running() else []
        deadlines += [t for t in self._retry_at.values() if t > now]  # past ones run this round
        wall = self._clock()
        deadlines += [self._watch_at.get((j.job_id, i, lost["sent_at"]), now)
                      for j in self._jobs.values() for i, st in enumerate(j.steps)
                      for lost in st.lost_creates if lost.get("watch_until", 0) >= wall]
        if self._pending_downloads:
            deadlines.append(now + 0.05)
        if any(j.state == QUEUED or j.current.state == PENDING for j in self._active_jobs()):
            deadlines.append(now + 0.25)
        return max(0.01, min(deadlines, default=now + 1.0) - now)

    def _drain_inbox(self) -> None:
        while True:
            try:
                fn = self._inbox.get_nowait()
            except queue.Empty:
                return
            fn()

    def _add(self, job: Job, resumed: bool = False) -> None:
        with self._lock:
            if job.job_id in self._jobs and resumed:
                return
            self._jobs[job.job_id] = job
        if job.state == READY:
            self._emit("ready", job)
            return
        for index, step in enumerate(job.steps):
            if step.state == SENDING:
                self._retry_at[(job.job_id, index)] = 0.0  # reconcile right away
        self._emit("update", job)

    def _active_jobs(self) -> list[Job]:
        return [j for j in self._jobs.values() if j.state in (QUEUED, ACTIVE)]

    def _has_running(self) -> bool:
        return any(j.current.state == RUNNING for j in self._active_jobs())

    def _tasks_in_flight(self) -> int:
        return sum(1 for j in self._active_jobs() if j.current.state in (SENDING, RUNNING))

    # creates ----------------------------------------------------------------------------------
    def _create_allowed(self) -> bool:
        now = self._monotonic()
        while self._create_times and now - self._create_times[0] > 60:
            self._create_times.popleft()
        return len(self._create_times) < self.creates_per_minute

    def _submit_steps(self) -> None:
        for job in sorted(self._active_jobs(), key=lambda j: j.created_at):
            step = job.current
            if step.state != PENDING:
                continue
            key = (job.job_id, job.current_index)
            if self._retry_at.get(key, 0) > self._monotonic():
                continue
            if self._tasks_in_flight() >= self._slot_cap or not self._create_allowed():
                return
            self._create(job, job.current_index)

    def _request_for(self, job: Job, index: int):
        step = job.steps[index]
        params = dict(step.params)
        if step.input_from is not None:
            params["input"] = job.steps[step.input_from].task_id
        return request_models.build_request(step.task_type, **params)

    def _create(self, job: Job, index: int) -> None:
        step = job.steps[index]
        key = (job.job_id, index)
        try:
            request = self._request_for(job, index)
        except errors.TripoError as exc:
            self._fail(job, exc)
            return
        step.state, step.sent_at, step.attempts = SENDING, self._clock(), step.attempts + 1
        job.state = ACTIVE
        self._save(job)  # journaled BEFORE the request leaves: a crash now means "reconcile"
        self._create_times.append(self._monotonic())
        self.stats["creates"] += 1
        try:
            task_id = self.provider.create_task(request)
        except errors.CreateOutcomeUnknown as exc:
            log.warning("create of %s step %d: outcome unknown (%s); reconciling", job.job_id, index, exc)
            step.checks, step.reached_at = 0, None
            step.reconcile_note = exc.user_message()
            self._save(job)
            self._retry_at[key] = self._monotonic() + 0.5
            self._emit("notice", job, "Connection lost while creating the task; checking with Tripo "
                                      "whether it was created (it will not be sent twice).")
            return
        except (errors.ConcurrencyLimited, errors.RateLimited) as exc:
            # Tripo refused it, so nothing was created or billed: queue it locally and retry.
            step.state = PENDING
            job.state = QUEUED
            if isinstance(exc, errors.ConcurrencyLimited):  # a rate limit says nothing of slots
                self._slot_cap = max(1, self._tasks_in_flight())
            delay = getattr(exc, "retry_after", None) or 2.0
            self._retry_at[key] = self._monotonic() + delay
            self._save(job)
            self._emit("update", job, "Waiting for a free Tripo slot"
                       if isinstance(exc, errors.ConcurrencyLimited)
                       else "Waiting for the service's request rate limit")
            return
        except errors.NetworkError as exc:
            # Raised only when the request certainly did not go out (see the provider).
            if step.attempts >= MAX_UNSENT_ATTEMPTS:
                self._fail(job, exc)
                return
            step.state = PENDING
            self._retry_at[key] = self._monotonic() + min(30.0, 2.0 ** min(step.attempts, 5))
            self._save(job)
            self._emit("notice", job, f"Network problem, will retry: {exc}")
            return
        except errors.TripoError as exc:
            self._fail(job, exc)
            return
        self._retry_at.pop(key, None)
        self._adopt(job, index, task_id)

    def _adopt(self, job: Job, index: int, task_id: str) -> None:
        step = job.steps[index]
        step.task_id, step.state, step.status = task_id, RUNNING, "queued"
        step.submitted_at = self._clock()
        self._save(job)
        self._next_poll = min(self._next_poll, self._monotonic() + self.poll_min)
        self._emit("update", job)

    # reconciliation ---------------------------------------------------------------------------
    def _reconcile_interval(self, step: Step) -> float:
        """Backoff between checks of one unknown create: quick at first (a create cut short is
        usually on the server at once), then slower, a few checks per window at most."""
        cap = min(30.0, max(0.5, self.reconcile_window / 6))
        return min(cap, 0.5 * 2 ** min(step.checks, 8))

    def _known_task_ids(self) -> list[str]:
        known = [s.task_id for j in self._jobs.values() for s in j.steps if s.task_id]
        known += [d["task_id"] for j in self._jobs.values() for d in j.duplicates]
        return known

    def _reconciling(self) -> list[Job]:
        """Jobs whose current create has an unknown outcome, including those waiting for the
        user's decision: a task that shows up is adopted whatever the job waits for."""
        return [j for j in self._jobs.values()
                if j.state in (QUEUED, ACTIVE, NEEDS_DECISION) and j.current.state == SENDING]

    def _reconcile_steps(self) -> None:
        now = self._monotonic()
        for job in self._reconciling():
            index = job.current_index
            key = (job.job_id, index)
            if self._retry_at.get(key, 0) > now:
                continue
            self._reconcile_one(job, index)
        self._watch_lost_creates()

    def _reconcile_one(self, job: Job, index: int) -> None:
        step = job.steps[index]
        key = (job.job_id, index)
        sent_at = step.sent_at or self._clock()
        window_end = sent_at + self.reconcile_window
        checked_at = self._clock()  # the check covers the usage list as of now (or later)
        step.checks += 1
        self.stats["reconciles"] += 1
        try:
            request = self._request_for(job, index)
            task_id = self.provider.reconcile_create(request, sent_at, exclude=self._known_task_ids())
        except errors.CreateOutcomeUnknown as exc:
            # The service answered, but cannot tell (no task list, or candidates whose input
            # is not echoed): waiting shows nothing more once the window has passed.
            step.reached_at, step.reconcile_note = checked_at, exc.user_message()
            cannot_tell = not getattr(self.provider, "can_reconcile", True) or checked_at >= window_end
            if cannot_tell and job.state != NEEDS_DECISION:
                self._needs_decision(job, f"{exc.user_message()} Resubmit (may bill twice) or "
                                          "give up.")
            self._retry_at[key] = self._monotonic() + max(self._reconcile_interval(step), 5.0)
            self._save(job)
            return
        except errors.TripoError as exc:  # the service is unreachable or failing: keep trying
            log.warning("reconcile of %s failed: %s", job.job_id, exc)
            step.reconcile_note = f"could not reach the service: {exc.user_message()}"
            reached_since_sent = step.reached_at is not None and step.reached_at >= sent_at
            if checked_at >= window_end and not reached_since_sent and job.state != NEEDS_DECISION:
                self._needs_decision(job, (
                    "The service could not be reached for {:.0f} s after the create request "
                    "left, so whether it created a task is unknown (last error: {}). Checking goes "
                    "on; a task that shows up is adopted. Resubmit (may bill twice) or give up."
                ).format(checked_at - sent_at, exc.user_message()))
            self._retry_at[key] = self._monotonic() + self._reconcile_interval(step)
            self._save(job)
            return
        step.reached_at = checked_at
        if task_id:
            log.info("adopted task %s for job %s after an unknown create outcome", task_id, job.job_id)
            self._retry_at.pop(key, None)
            self.stats["adopted"] += 1
            step.reconcile_note = f"found task {task_id}"
            job.state, job.error = ACTIVE, None
            self._adopt(job, index, task_id)
            return
        if checked_at >= window_end:
            # The usage list shows every billed task: none for this request, a whole window
            # after it was sent. Submitting again cannot bill twice; the old attempt stays
            # watched in case its task still shows up (then it is a recorded duplicate).
            log.info("job %s: no task %d s after the create; submitting it again", job.job_id,
                     checked_at - sent_at)
            self.stats["resubmitted_after_window"] += 1
            self._resubmit_lost(job, index, "no task was created")
            return
        step.reconcile_note = "no task yet"
        self._retry_at[key] = self._monotonic() + min(self._reconcile_interval(step),
                                                     max(0.05, window_end - checked_at))
        if job.state == NEEDS_DECISION:
            self._save(job)

    def _resubmit_lost(self, job: Job, index: int, reason: str) -> None:
        step = job.steps[index]
        if step.sent_at:
            step.lost_creates.append({"sent_at": step.sent_at,
                                      "watch_until": step.sent_at + LATE_WATCH_SECONDS})
        step.state, step.task_id, step.sent_at = PENDING, None, None
        step.checks, step.reached_at, step.reconcile_note = 0, None, reason
        step.attempts = max(0, step.attempts - 1)  # it created nothing: not a try of the task
        job.state, job.error = QUEUED, None
        self._retry_at.pop((job.job_id, index), None)
        self._save(job)
        self._emit("update", job, f"Submitting again: {reason}")

    def _watch_lost_creates(self) -> None:
        """Looks, now and then, for a late task of each attempt that was resubmitted."""
        now, wall = self._monotonic(), self._clock()
        interval = min(60.0, max(1.0, self.reconcile_window / 2))
        for job in list(self._jobs.values()):
            for index, step in enumerate(job.steps):
                for lost in list(step.lost_creates):
                    if lost.get("watch_until", 0) < wall:
                        continue
                    key = (job.job_id, index, lost["sent_at"])
                    if self._watch_at.get(key, 0) > now:
                        continue
                    self._watch_at[key] = now + interval
                    try:
                        task_id = self.provider.reconcile_create(
                            self._request_for(job, index), lost["sent_at"],
                            exclude=self._known_task_ids())
                    except errors.TripoError as exc:
                        log.debug("watching a lost create of %s: %s", job.job_id, exc)
                        continue
                    if task_id:
                        self._late_task(job, index, lost, task_id)

    def _late_task(self, job: Job, index: int, lost: dict, task_id: str) -> None:
        step = job.steps[index]
        step.lost_creates.remove(lost)
        self._watch_at.pop((job.job_id, index, lost["sent_at"]), None)
        if step.task_id is None and step.state in (PENDING, SENDING) and \
                job.state in (QUEUED, ACTIVE, NEEDS_DECISION, CANCELLED):
            # Not resubmitted yet (or that create is itself unsettled): this task is the step's.
            if step.state == SENDING and step.sent_at:
                step.lost_creates.append({"sent_at": step.sent_at,
                                          "watch_until": step.sent_at + LATE_WATCH_SECONDS})
            log.info("a late task %s showed up for job %s; adopting it", task_id, job.job_id)
            self.stats["adopted"] += 1
            job.state, job.error = ACTIVE, None
            self._adopt(job, index, task_id)
            return
        log.warning("task %s showed up late for job %s, which already has task %s: recorded as a "
                    "duplicate (billed, not imported)", task_id, job.job_id, step.task_id)
        self.stats["duplicates"] += 1
        job.duplicates.append({"step": index, "task_id": task_id, "found_at": self._clock()})
        self._save(job)
        self._emit("notice", job, f"Tripo created task {task_id} late for a request that was "
                                  "already submitted again; it is recorded as a duplicate and "
                                  "not imported.")

    # polling ----------------------------------------------------------------------------------
    def _poll(self) -> None:
        running = {j.current.task_id: j for j in self._active_jobs() if j.current.state == RUNNING}
        if not running:
            self._next_poll = self._monotonic() + self.poll_max
            return
        self.stats["polls"] += 1
        try:
            result = self.provider.poll_tasks(list(running))
        except errors.AuthenticationError as exc:
            self._poll_failures += 1
            self._next_poll = self._monotonic() + 30.0
            for job in running.values():
                self._emit("notice", job, exc.user_message())
            return
        except errors.TripoError as exc:
            self._poll_failures += 1
            self._next_poll = self._monotonic() + min(30.0, self.poll_max * self._poll_failures)
            log.warning("poll failed (%s); retrying", exc)
            return
        self._poll_failures = 0
        for task_id in result.missed:
            job = running[task_id]
            self._fail(job, errors.TaskNotFound(f"Tripo does not know task {task_id} (any more)."))
        for task_id, task in result.tasks.items():
            job = running.get(task_id)
            if job is not None:
                self._apply_task(job, task)
        self._next_poll = self._monotonic() + self._poll_interval()

    def _poll_interval(self) -> float:
        """Fast while a task is about to finish, slow while all are far from it; one request a
        round polls every task, so this bounds the request rate whatever the number of tasks."""
        remaining = []
        for job in self._active_jobs():
            step = job.current
            if step.state != RUNNING or not step.task:
                continue
            left = step.task.get("running_left_time")
            if isinstance(left, (int, float)) and left >= 0:
                remaining.append(float(left))
            elif step.progress and step.submitted_at:
                elapsed = self._clock() - step.submitted_at
                remaining.append(elapsed * (100 - step.progress) / max(step.progress, 1))
            else:
                remaining.append(0.0)  # unknown: assume it may finish soon
        if not remaining or min(remaining) <= 1.0:
            # Tripo reports the time left in whole seconds: "1 s" may mean any moment now.
            return self.poll_min
        return max(self.poll_min, min(self.poll_max, min(remaining) / 2))

    def _apply_task(self, job: Job, task) -> None:
        step = job.current
        record = task.model_dump(mode="json") if hasattr(task, "model_dump") else dict(task)
        before = (step.status, step.progress)
        step.task = record
        step.status = str(record.get("status") or "")
        step.progress = int(record.get("progress") or 0)
        if task.is_success:
            step.progress = 100
            step.state = DOWNLOADING
            step.finished_at = self._clock()
            self._slot_cap = min(self.max_concurrent, self._slot_cap + 1)
            self._save(job)
            self._start_downloads(job, job.current_index)
        elif task.is_finished:
            step.finished_at = self._clock()
            code = record.get("error_code")
            message = record.get("error_message") or f"Task {step.task_id} ended as {step.status}"
            if not job.meta.get("tracked") and self._may_retry(step, code):
                log.info("task %s failed (%s); resubmitting (attempt %d)", step.task_id, code, step.attempts + 1)
                step.state, step.task_id = PENDING, None
                self._save(job)
                self._emit("update", job, f"Retrying after: {message}")
            else:
                self._fail(job, errors.TripoError(message, code=code), step_failed=True)
        if (step.status, step.progress) != before:  # no event (and no snapshot) when nothing moved
            self._emit("update", job)

    def _may_retry(self, step: Step, code) -> bool:
        return step.attempts <= self.max_task_retries and code not in NON_RETRYABLE_CODES

    # downloads --------------------------------------------------------------------------------
    def _start_downloads(self, job: Job, index: int) -> None:
        step = job.steps[index]
        output = (step.task or {}).get("output") or {}
        wanted = [(key, output[key]) for key in step.downloads if output.get(key)]
        multiview = output.get("multiview") or {}
        if "generated_image_url" in step.downloads:
            wanted += [(f"multiview:{view}", url) for view, url in multiview.items() if url]
        stem = step.file_stem or f"{index + 1:02d}_{step.task_type}"
        out_dir = Path(job.out_dir)
        plan = []
        for key, url in wanted:
            ext = Path(urlparse(url).path).suffix or mimetypes.guess_extension("application/octet-stream") or ".bin"
            suffix = "" if key == "model_url" else "_" + key.replace("_url", "").replace(":", "_")
            plan.append((key, url, out_dir / f"{stem}{suffix}{ext}"))
        future = self._downloads.submit(self._download_all, step.task_id, plan)
        self._pending_downloads[(job.job_id, index)] = future

    def _download_all(self, task_id: str, plan: list) -> dict:
        files = {}
        for key, url, dest in plan:
            dest.parent.mkdir(parents=True, exist_ok=True)
            # "multiview:<view>" names one view; the provider refreshes that URL if it expires.
            self.provider.download(url, dest, task_id=task_id, output_key=key,
                                   progress=self._raise_if_stopping)
            files[key] = str(dest)
        return files

    def _raise_if_stopping(self, _written: int, _total) -> None:
        if self._stop.is_set():
            raise DownloadCancelled("the job engine is stopping")

    def _collect_downloads(self) -> None:
        for key, future in list(self._pending_downloads.items()):
            if not future.done():
                continue
            del self._pending_downloads[key]
            job = self._jobs.get(key[0])
            if job is None or job.state in FINAL_STATES:
                continue
            step = job.steps[key[1]]
            try:
                step.files = future.result()
            except errors.TripoError as exc:
                self._fail(job, exc)
                continue
            except OSError as exc:
                self._fail(job, errors.DownloadError(f"Could not save the result: {exc}"))
                continue
            self.stats["downloads"] += 1
            step.state = DONE
            if key[1] + 1 < len(job.steps):
                job.steps[key[1] + 1].state = PENDING
                self._save(job)
                self._emit("update", job)
            else:
                job.state = READY
                self._save(job)
                self._emit("ready", job)

    # state changes ----------------------------------------------------------------------------
    def _fail(self, job: Job, exc: errors.TripoError, step_failed: bool = True) -> None:
        step = job.current
        if step_failed:
            step.state = STEP_FAILED
        job.state = FAILED
        job.error = {"type": type(exc).__name__, "code": getattr(exc, "code", None),
                     "message": exc.user_message() if hasattr(exc, "user_message") else str(exc)}
        step.error = job.error
        self._save(job)
        self._emit("failed", job, job.error["message"])

    def _needs_decision(self, job: Job, message: str) -> None:
        job.state = NEEDS_DECISION
        job.error = {"type": "CreateOutcomeUnknown", "code": None, "message": message}
        self._save(job)
        self._emit("needs_decision", job, message)

    def _cancel(self, job_id: str) -> None:
        job = self._jobs.get(job_id)
        if job is None or job.state in FINAL_STATES:
            return
        step = job.current
        if step.state == SENDING and step.sent_at:
            # Its create may still show up: watched, and adopted if it does (a paid result).
            step.lost_creates.append({"sent_at": step.sent_at,
                                      "watch_until": step.sent_at + LATE_WATCH_SECONDS})
            step.state, step.sent_at = PENDING, None
            self._retry_at.pop((job_id, job.current_index), None)
        job.state = CANCELLED
        self._save(job)
        self._emit("cancelled", job, "Stopped tracking. Tripo has no server-side cancel: a task "
                                     "already running finishes there and is billed.")

    def _retry(self, job_id: str) -> None:
        job = self._jobs.get(job_id)
        if job is None or job.state not in (FAILED, CANCELLED):
            return
        step = job.current
        if step.state == SENDING:
            # Its create may have reached Tripo: reconcile it again, never send it blindly.
            self._retry_at[(job_id, job.current_index)] = 0.0
        elif step.state in (STEP_FAILED, PENDING) or step.task_id is None:
            step.state, step.task_id, step.error = PENDING, None, None
        job.state, job.error = QUEUED, None
        self._save(job)
        self._emit("update", job)

    def _decide(self, job_id: str, resubmit: bool) -> None:
        job = self._jobs.get(job_id)
        if job is None or job.state != NEEDS_DECISION:
            return
        if resubmit:
            # The user's call: the unsettled attempt stays watched; a task that shows up for it
            # later is recorded as a duplicate, not imported.
            self._resubmit_lost(job, job.current_index, "resubmitted by the user")
        else:
            self._cancel(job_id)

    def _mark_imported(self, job_id: str, names: list[str]) -> None:
        job = self._jobs.get(job_id)
        if job is None:
            return
        job.state, job.imported = IMPORTED, list(names)
        self._save(job)
        self._emit("update", job)

    def _forget(self, job_id: str) -> None:
        with self._lock:
            job = self._jobs.pop(job_id, None)
        if job is not None:
            self.journal.delete(job_id)

    def _save(self, job: Job) -> None:
        job.updated_at = self._clock()
        if job.state not in FINAL_STATES:
            self.journal.locks.claim(job.job_id)  # e.g. a retry: the job is ours again
        self.journal.save(job.to_record())
        if job.state in FINAL_STATES:
            self.journal.locks.release(job.job_id)

    def _emit(self, kind: str, job: Job, message: str = "") -> None:
        with self._lock:
            snapshot = job.to_record()
        self.events.put(JobEvent(kind, job.job_id, snapshot, message))
