"""The main-thread runtime as the UI runs it: the timer's tick, landing rules, ownership.

The bpy module has no event loop (timers never fire), so these tests call the timer function,
`ui.timer.tick(context)`, directly: the same code a real window runs every 0.2-1 s.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import types

import addon_utils
import bpy
import pytest

from conftest import PACKAGE, our_handlers, our_threads
from test_ui_draw import draw_all, labels

MODEL = "v3.1-20260211"


def wait_ready(runtime, job_id: str, timeout: float = 60.0) -> dict:
    """Drains the engine (no landing) until the job's result is on disk."""
    import time
    deadline = time.monotonic() + timeout
    while runtime.jobs.get(job_id, {}).get("state") != "ready":
        assert runtime.jobs.get(job_id, {}).get("state") not in ("failed", "needs_decision"), runtime.jobs[job_id]
        assert time.monotonic() < deadline, f"job not ready: {runtime.jobs.get(job_id)}"
        try:
            event = runtime.engine.events.get(timeout=0.2)  # waits for the emulator, not a sleep
        except Exception:  # queue.Empty
            continue
        runtime._handle(bpy.context, event)
    return runtime.jobs[job_id]


def cube(name: str):
    bpy.ops.mesh.primitive_cube_add()
    obj = bpy.context.active_object
    obj.name = name
    return obj


def selected_names() -> set[str]:
    return {o.name for o in bpy.context.view_layer.objects if o.select_get()}


def tripo_objects() -> list:
    return [o for o in bpy.data.objects if "tripo" in o]


@pytest.fixture
def rt(tmod):
    return types.SimpleNamespace(module=tmod("blender.runtime"), timer=tmod("ui.timer"),
                                 api=tmod("api"), journal=tmod("core.engine.journal"),
                                 recipes=tmod("core.engine.recipes"))


def test_result_waits_while_in_edit_mode_then_lands_keeping_mode_selection_and_active(connected, rt):
    other = cube("Other")
    work = cube("Work")
    other.select_set(True)  # the user's selection: both, Work active
    bpy.ops.object.mode_set(mode="EDIT")
    job_id = rt.api.generate("a desk lamp", wait_for_result=False)
    runtime = rt.module.get_runtime()
    wait_ready(runtime, job_id)

    assert rt.timer.tick(bpy.context) == rt.timer.ACTIVE_INTERVAL  # comes back soon to land it
    assert runtime.jobs[job_id]["state"] == "ready"
    assert work.mode == "EDIT" and bpy.context.view_layer.objects.active is work
    assert selected_names() == {"Other", "Work"}
    assert not tripo_objects()
    assert runtime.waiting[job_id].startswith("Waiting for Object Mode")
    log = draw_all(bpy.context)
    assert ("operator", "tripo.job_import_now", True) in log
    assert any(text.startswith("Waiting for Object Mode") for text in labels(log))
    with pytest.raises(RuntimeError, match="Object Mode"):  # Import now refuses, never switches
        bpy.ops.tripo.job_import_now(job_id=job_id)
    assert work.mode == "EDIT" and runtime.jobs[job_id]["state"] == "ready"

    bpy.ops.object.mode_set(mode="OBJECT")
    rt.timer.tick(bpy.context)
    assert runtime.jobs[job_id]["state"] == "imported"
    assert len({o["tripo"]["job_id"] for o in tripo_objects()}) == 1
    # Landed by itself: the user's selection and active object are as they were.
    assert selected_names() == {"Other", "Work"}
    assert bpy.context.view_layer.objects.active is work
    assert rt.timer.tick(bpy.context) == rt.timer.IDLE_INTERVAL
    assert rt.timer.tick(bpy.context) == rt.timer.IDLE_INTERVAL  # nothing left: idle, status cleared
    assert rt.timer._status_text is None


def test_import_now_lands_at_once_and_selects_the_result(connected, rt):
    cube("Work")
    job_id = rt.api.generate("a clay pot", wait_for_result=False)
    runtime = rt.module.get_runtime()
    wait_ready(runtime, job_id)
    assert bpy.ops.tripo.job_import_now(job_id=job_id) == {"FINISHED"}
    assert runtime.jobs[job_id]["state"] == "imported"
    root = runtime.results[job_id].root
    assert bpy.context.view_layer.objects.active is root and root.select_get()
    assert "Work" not in selected_names()
    with pytest.raises(RuntimeError):  # once imported there is nothing to import again
        bpy.ops.tripo.job_import_now(job_id=job_id)
    assert len({o["tripo"]["job_id"] for o in tripo_objects()}) == 1


def test_a_running_modal_tool_holds_the_landing(rt):
    operator = types.SimpleNamespace(name="Move", bl_idname="TRANSFORM_OT_translate")
    window = types.SimpleNamespace(modal_operators=[operator])
    context = types.SimpleNamespace(
        window_manager=types.SimpleNamespace(is_interface_locked=False, windows=[window]),
        view_layer=bpy.context.view_layer)
    assert rt.module.landing_blocker(context) == "Waiting for Move to finish"
    window.modal_operators = []
    assert rt.module.landing_blocker(context) == ""
    context.window_manager.is_interface_locked = True
    assert "busy" in rt.module.landing_blocker(context)


def test_a_result_from_another_file_waits_for_import_here(connected, rt):
    job_id = rt.api.generate("a tin cup", wait_for_result=False)
    runtime = rt.module.get_runtime()
    wait_ready(runtime, job_id)
    bpy.ops.wm.read_homefile(use_empty=True)  # another file is open now
    rt.timer.tick(bpy.context)
    assert runtime.jobs[job_id]["state"] == "ready" and not tripo_objects()
    assert runtime.waiting[job_id].startswith("From another file")
    log = draw_all(bpy.context)
    assert ("operator", "tripo.job_import_now", True) in log
    assert bpy.ops.tripo.job_import_now(job_id=job_id) == {"FINISHED"}
    assert len(tripo_objects()) == 1


# --- ownership -------------------------------------------------------------------------------------

def journal_job(rt, emulator, prompt: str, owner: dict) -> dict:
    """A queued job in the user's journal, as another process would have left it."""
    job = rt.recipes.generation_job(prompt=prompt, options={"model": MODEL})
    job.provider, job.base_url = "tripo", emulator.base_url
    job.owner = owner
    runtime = rt.module.get_runtime()
    job.out_dir = os.path.join(runtime.journal_dir(), "..", "downloads", job.job_id)
    rt.journal.Journal(runtime.journal_dir()).save(job.to_record())
    return job.to_record()


LOCK_HOLDER = """
import fcntl, sys
handle = open(sys.argv[1], "a")
fcntl.flock(handle, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()  # holds the lock until the test closes our stdin
"""


@pytest.mark.skipif(sys.platform == "win32", reason="the lock holder uses fcntl")
def test_a_job_owned_by_another_live_process_is_left_to_it(connected, rt):
    runtime = rt.module.get_runtime()
    record = journal_job(rt, connected, "someone else's chair", {})
    lock_path = os.path.join(runtime.journal_dir(), f"{record['job_id']}.lock")
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, lock_path], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert runtime.resume_journal() == []
        assert record["job_id"] not in runtime.jobs
        assert runtime.engine.snapshot(record["job_id"]) is None
        assert record["job_id"] in runtime.foreign
        assert any("run by another Blender" in text for text in labels(draw_all(bpy.context)))
    finally:
        holder.stdin.close()
        holder.wait(10)
    # Its owner is gone: the next resume adopts it, and it lands once.
    runtime.refresh_journal_view(force=True)
    assert record["job_id"] not in runtime.foreign
    assert [r["job_id"] for r in runtime.resume_journal()] == [record["job_id"]]
    final = runtime.wait([record["job_id"]], timeout=60)[record["job_id"]]
    assert final["state"] == "imported"
    assert len(connected.creates()) == 1


def test_a_job_whose_owner_died_is_adopted(connected, rt):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(10)
    runtime = rt.module.get_runtime()
    record = journal_job(rt, connected, "an orphaned stool",
                         {"pid": dead.pid, "token": "gone", "host": "here", "blend": ""})
    adopted = runtime.resume_journal()
    assert [r["job_id"] for r in adopted] == [record["job_id"]]
    owner = adopted[0]["owner"]
    assert owner["pid"] == os.getpid() and owner["adopted_from"] == dead.pid
    final = runtime.wait([record["job_id"]], timeout=60)[record["job_id"]]
    assert final["state"] == "imported"
    assert runtime.resume_journal() == []  # imported: nothing left to adopt


def test_pending_journal_job_is_listed_with_the_reason_and_resume_button(connected, rt):
    runtime = rt.module.get_runtime()
    record = journal_job(rt, connected, "a forgotten kite", {})
    bpy.context.preferences.system.use_online_access = False
    runtime.resume_pending()  # what the first tick of an interactive start-up does
    assert runtime.engine is None and runtime.resume_problem
    log = draw_all(bpy.context)
    texts = labels(log)
    assert "No jobs yet" not in texts
    assert any(t.startswith("Could not resume") for t in texts)
    assert any(record["label"] in t for t in texts)
    assert ("operator", "tripo.job_resume", True) in log
    bpy.context.preferences.system.use_online_access = True
    assert bpy.ops.tripo.job_resume() == {"FINISHED"}
    assert runtime.resume_problem == ""
    assert runtime.wait([record["job_id"]], timeout=60)[record["job_id"]]["state"] == "imported"


def test_background_blender_does_not_adopt_journal_jobs_on_its_own(connected, rt, tmod):
    record = journal_job(rt, connected, "a lonely lamp", {})
    addon_utils.disable(PACKAGE)
    addon_utils.enable(PACKAGE, default_set=True)
    runtime_module = tmod("blender.runtime")
    bpy.ops.wm.read_homefile(use_empty=True)  # load_post, too, leaves it alone
    assert runtime_module.take_resume_request() is False
    assert runtime_module.current_runtime() is None or runtime_module.current_runtime().engine is None
    assert connected.creates() == []
    results = tmod("api").wait_all(timeout=60)  # the script asks for it: now it is adopted
    assert [r.job["job_id"] for r in results] == [record["job_id"]]


# --- clean stop ----------------------------------------------------------------------------------

def test_disable_mid_job_leaves_no_timer_thread_handler_or_part(connected, rt, tmod, tmp_path):
    connected.configure(task_seconds=2.0)
    rt.timer.start_timer(force=True)  # as register() does in a real window
    timer_function = rt.timer._timer
    assert bpy.app.timers.is_registered(timer_function)
    job_id = rt.api.generate("a half-made vase", wait_for_result=False)
    assert our_threads() and our_handlers()
    addon_utils.disable(PACKAGE)
    try:
        assert not bpy.app.timers.is_registered(timer_function)
        assert our_handlers() == []
        assert our_threads() == [], our_threads()
        assert not list(tmp_path.rglob("*.part"))
    finally:
        addon_utils.enable(PACKAGE, default_set=True)
    results = tmod("api").wait_all(timeout=60)  # enabling again resumes it
    assert [r.job["job_id"] for r in results] == [job_id]
    assert len(connected.creates()) == 1


def test_a_cancelled_download_stops_between_chunks_and_removes_its_part(tmod, tmp_path):
    """What an engine that stops does to its downloads (JobEngine passes a progress callback
    that raises DownloadCancelled once its stop event is set)."""
    download = tmod("core.providers.download")
    chunks = []

    class SlowBody:
        status_code = 200
        headers = {"Content-Length": str(10 * 1024)}

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def iter_content(self, chunk_size):
            for _ in range(10):
                chunks.append(1)
                yield b"x" * 1024

    class Session:
        def get(self, *args, **kwargs):
            return SlowBody()

    def progress(written, total):
        if written >= 2048:
            raise download.DownloadCancelled("stopping")

    dest = tmp_path / "model.glb"
    with pytest.raises(download.DownloadCancelled):
        download.download_file(Session(), "http://127.0.0.1:1/model.glb", dest, progress=progress)
    assert len(chunks) == 2, "stopped at the next chunk"
    assert not dest.exists() and not (tmp_path / "model.glb.part").exists()


@pytest.mark.parametrize("second", ["ignores_range", "wrong_range"])
def test_a_resume_the_server_does_not_honour_starts_over(tmod, tmp_path, second):
    """Bytes are appended only when the answer is the range asked for; otherwise the file is
    fetched from its first byte again, and never spliced."""
    import requests

    download = tmod("core.providers.download")
    body = bytes(range(256)) * 40
    asked = []

    class Answer:
        def __init__(self, status, headers, data, cut=False):
            self.status_code, self.headers, self._data, self._cut = status, headers, data, cut

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def iter_content(self, chunk_size):
            yield self._data
            if self._cut:
                raise requests.exceptions.ChunkedEncodingError("cut")

    class Session:
        def get(self, url, **kwargs):
            asked.append(kwargs["headers"].get("Range"))
            full = {"Content-Length": str(len(body)), "Accept-Ranges": "bytes"}
            if len(asked) == 1:
                return Answer(200, full, body[:1000], cut=True)
            if len(asked) == 2 and second == "ignores_range":
                return Answer(200, full, body)
            if len(asked) == 2:  # a 206, but not from the byte asked for
                return Answer(206, {"Content-Length": str(len(body) - 10),
                                    "Content-Range": f"bytes 10-{len(body) - 1}/{len(body)}"}, body[10:])
            return Answer(200, full, body)

    dest = tmp_path / "model.glb"
    download.download_file(Session(), "http://127.0.0.1:1/model.glb", dest, sleep=lambda s: None)
    assert dest.read_bytes() == body
    assert asked[:2] == [None, "bytes=1000-"]
    assert len(asked) == (2 if second == "ignores_range" else 3)
    assert not (tmp_path / "model.glb.part").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="the .part lock uses fcntl")
def test_two_downloads_of_one_file_never_overlap(tmod, tmp_path):
    download = tmod("core.providers.download")
    dest = tmp_path / "model.glb"
    part = tmp_path / "model.glb.part"
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(part)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        sleeps = []

        def sleep(seconds):  # the waiting download gives up instead of sleeping for real
            sleeps.append(seconds)
            if len(sleeps) > 3:
                raise download.DownloadCancelled("gave up waiting")

        with pytest.raises(download.DownloadCancelled):
            download.download_file(object(), "http://127.0.0.1:1/model.glb", dest, sleep=sleep)
        assert sleeps, "the second download waited for the first"
    finally:
        holder.stdin.close()
        holder.wait(10)


# --- undo and Repeat Last ------------------------------------------------------------------------

def test_paid_operators_cannot_be_repeated_and_selection_actions_are_undo_steps(tripo):
    paid = ["TRIPO_OT_generate", "TRIPO_OT_job_retry", "TRIPO_OT_retexture", "TRIPO_OT_segment",
            "TRIPO_OT_complete", "TRIPO_OT_lowpoly", "TRIPO_OT_rig_check", "TRIPO_OT_rig",
            "TRIPO_OT_animate", "TRIPO_OT_convert", "TRIPO_OT_bring_to_tripo"]
    for name in paid:
        assert "REGISTER" not in getattr(bpy.types, name).bl_options, name
    for name in paid[2:]:
        assert "UNDO" in getattr(bpy.types, name).bl_options, name
    assert "UNDO" in bpy.types.TRIPO_OT_job_import_now.bl_options
    assert not hasattr(bpy.types, "TRIPO_OT_job_monitor")


def test_timer_tick_is_cheap_when_idle(rt):
    assert rt.module.current_runtime() is None or not rt.module.current_runtime().busy()
    assert rt.timer.tick(bpy.context) == rt.timer.IDLE_INTERVAL


def test_a_settings_change_restarts_the_engine_and_continues_its_jobs_once(connected, rt, prefs, tmp_path):
    connected.configure(task_seconds=1.0)
    job_id = rt.api.generate("a brass bell", wait_for_result=False)
    runtime = rt.module.get_runtime()
    old_engine = runtime.engine
    prefs.download_dir = str(tmp_path / "elsewhere")  # a new engine key: restart
    assert runtime.ensure_engine() is not old_engine
    assert not old_engine.running
    final = runtime.wait([job_id], timeout=60)[job_id]
    assert final["state"] == "imported"
    assert len(connected.creates()) == 1
    assert not list(tmp_path.rglob("*.part"))


def test_results_finishing_together_land_one_per_tick(connected, rt):
    """Each tick imports at most one result, so a burst never freezes the UI for many imports."""
    ids = [rt.api.generate(f"a burst prop {i}", wait_for_result=False) for i in range(3)]
    runtime = rt.module.get_runtime()
    for job_id in ids:
        wait_ready(runtime, job_id)
    imported, intervals = [], []
    for _ in range(3):
        intervals.append(rt.timer.tick(bpy.context))
        imported.append(sum(runtime.jobs[j]["state"] == "imported" for j in ids))
    assert imported == [1, 2, 3]
    assert intervals[:2] == [rt.timer.ACTIVE_INTERVAL] * 2, "comes back soon for the next one"
    assert len({o["tripo"]["job_id"] for o in tripo_objects()}) == 3
