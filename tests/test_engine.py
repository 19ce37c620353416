"""The job engine on its own (no Blender data): journal, crash recovery, retries, limits.

It talks to the emulator over real HTTP through the real provider. The engine's worker runs on a
fake clock: its polls, backoff and reconcile windows pass without real waiting, while the
emulator's tasks take their real time."""

from __future__ import annotations

import json
import time

import pytest

from fake_time import FakeClock
from provider_helpers import core  # noqa: F401 - a fixture

#: The reconcile window of these tests: a minute, which the fake clock passes at once (each check
#: in it is still a real request to the emulator, hence not the ten minutes of the default).
WINDOW = 60.0


def make_engine(core, emulator, tmp_path, retry=None, clock=None, **options):
    """A started engine on the emulator whose worker runs on ``clock`` (a new FakeClock unless
    given)."""
    def provider():
        extra = {"retry": retry} if retry is not None else {}
        return core.v3.TripoV3Provider(emulator.api_key, emulator.base_url,
                                       proxy=core.http.ProxyConfig(mode="none"), create_attempts=1,
                                       **extra)
    clock = clock or FakeClock()
    engine = core.jobs.JobEngine(provider, core.journal.Journal(tmp_path / "journal"), tmp_path / "dl",
                                 base_url=emulator.base_url, sleep=clock.sleep, clock=clock.time,
                                 monotonic=clock.monotonic, **options)
    return engine.start()


def wait_until(condition, timeout=20.0, what="the engine to get there"):
    """Waits for the worker thread (or the emulator) to make progress in real time."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def wait_notice(engine, job_id, timeout=20.0):
    """Waits for the engine's notice about a job (e.g. an unknown create outcome, which it emits
    once the reconcile check is scheduled); the events before it are dropped."""
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, "timed out waiting for a notice"
        try:
            event = engine.events.get(timeout=0.5)
        except Exception:
            continue
        if event.job_id == job_id and event.kind == "notice":
            return event


def wait_states(engine, job_ids, states=("ready", "failed", "needs_decision", "cancelled"), timeout=60):
    final = {}
    deadline = time.monotonic() + timeout
    while len(final) < len(job_ids):
        assert time.monotonic() < deadline, f"timed out; got {final}"
        try:
            event = engine.events.get(timeout=0.5)
        except Exception:
            continue
        if event.job_id in job_ids and event.job["state"] in states:
            final[event.job_id] = event.job
    return final


def text_job(core, prompt="a wooden crate", downloads=("model_url",)):
    return core.jobs.Job.new(prompt, [core.jobs.Step("text_to_model", {"prompt": prompt,
                                                                       "model": "v3.1-20260211"},
                                                     downloads=downloads)])


def test_journal_records_task_ids_and_files(core, emulator, tmp_path):
    engine = make_engine(core, emulator, tmp_path)
    try:
        job = text_job(core)
        job_id = engine.submit(job)
        final = wait_states(engine, [job_id])[job_id]
    finally:
        engine.stop()
    assert final["state"] == "ready"
    record = json.loads((tmp_path / "journal" / f"{job_id}.json").read_text())
    step = record["steps"][0]
    assert step["task_id"] == next(iter(emulator.tasks()))
    assert step["state"] == "done" and step["sent_at"]
    assert open(step["files"]["model_url"], "rb").read(4) == b"glTF"
    assert not list((tmp_path / "journal").glob(".*.tmp")), "no temporary journal files left"


def test_crash_after_sending_is_reconciled_and_adopted(core, emulator, tmp_path):
    """Blender died after journaling `sending` and sending the create, before the answer."""
    job = text_job(core, "a lost lantern")
    job.steps[0].state, job.steps[0].sent_at, job.state = "sending", time.time(), "active"
    job.provider, job.base_url, job.out_dir = "tripo", emulator.base_url, str(tmp_path / "dl" / job.job_id)
    core.journal.Journal(tmp_path / "journal").save(job.to_record())
    # ... and the create did reach Tripo:
    sender = core.v3.TripoV3Provider(emulator.api_key, emulator.base_url, proxy=core.http.ProxyConfig(mode="none"))
    request = core.request_models.build_request("text_to_model", prompt="a lost lantern",
                                                model="v3.1-20260211")
    created = sender.create_task(request)
    engine = make_engine(core, emulator, tmp_path)
    try:
        resumed = engine.resume_from_journal()
        assert [r["job_id"] for r in resumed] == [job.job_id]
        final = wait_states(engine, [job.job_id])[job.job_id]
    finally:
        engine.stop()
    assert final["state"] == "ready"
    assert final["steps"][0]["task_id"] == created
    assert len(emulator.creates()) == 1, "the resumed job must not create again"


def journal_sending(core, emulator, tmp_path, prompt, sent_at):
    """A job as a crash leaves it: its create journaled as `sending`, at `sent_at`."""
    job = text_job(core, prompt)
    job.steps[0].state, job.steps[0].sent_at, job.state = "sending", sent_at, "active"
    job.provider, job.base_url, job.out_dir = "tripo", emulator.base_url, str(tmp_path / "dl" / job.job_id)
    core.journal.Journal(tmp_path / "journal").save(job.to_record())
    return job


def test_crash_before_sending_is_resubmitted_once_the_window_proves_nothing_was_created(
        core, emulator, tmp_path):
    """Killed between journaling `sending` and the request leaving: no task shows up during the
    reconcile window, so the usage list proves nothing was billed and the step is sent again,
    without asking anyone."""
    clock = FakeClock()
    job = journal_sending(core, emulator, tmp_path, "a never sent vase", clock.time())
    started = clock.monotonic()
    engine = make_engine(core, emulator, tmp_path, clock=clock,
                         reconcile_window=WINDOW)
    try:
        engine.resume_from_journal()
        final = wait_states(engine, [job.job_id])[job.job_id]
    finally:
        engine.stop()
    assert final["state"] == "ready", final
    assert clock.monotonic() - started >= WINDOW  # the whole window, not waited
    assert len(emulator.creates()) == 1 and len(emulator.tasks()) == 1
    assert final["steps"][0]["lost_creates"], "the unsettled attempt stays watched"
    requests, creates = emulator.requests(), emulator.creates()
    usage = [r for r in requests if r["path"] == "/v3/account/usage"]
    first_create = next(r for r in requests if r in creates)
    assert any(r["time"] < first_create["time"] for r in usage), "reconciled before sending"


def test_an_old_sending_step_is_settled_by_one_check(core, emulator, tmp_path):
    """Journaled long ago (beyond the window): one look at the usage list settles it."""
    job = journal_sending(core, emulator, tmp_path, "an old vase", time.time() - 3600)
    engine = make_engine(core, emulator, tmp_path, reconcile_window=600)
    try:
        engine.resume_from_journal()
        final = wait_states(engine, [job.job_id], timeout=30)[job.job_id]
    finally:
        engine.stop()
    assert final["state"] == "ready" and len(emulator.tasks()) == 1


@pytest.mark.parametrize("fault", ["500", "503", "malformed", "reset_before", "reset_after",
                                   "truncate"])
def test_ambiguous_create_answers_never_park_the_job(core, emulator, tmp_path, fault):
    """Whatever the ambiguous answer, the job ends with exactly one task: adopted when the
    create was processed, submitted again after the window when it was not."""
    emulator.set_faults(f"{fault}:create")
    engine = make_engine(core, emulator, tmp_path, reconcile_window=WINDOW)
    try:
        job_id = engine.submit(text_job(core, f"a {fault} lamp"))
        final = wait_states(engine, [job_id])[job_id]
    finally:
        engine.stop()
    assert final["state"] == "ready", final
    assert len(emulator.tasks()) == 1, "exactly one task: no duplicate, none missing"
    assert final["steps"][0]["task_id"] == next(iter(emulator.tasks()))
    assert final["duplicates"] == []


def test_a_late_create_within_the_window_is_adopted(core, emulator, tmp_path):
    """The first check finds nothing; the task reaches Tripo later, still within the window."""
    emulator.configure(late_seconds=1.0)
    emulator.set_faults("late:create")
    clock = FakeClock()
    clock.hold()
    engine = make_engine(core, emulator, tmp_path, clock=clock,
                         reconcile_window=WINDOW)
    try:
        job_id = engine.submit(text_job(core, "a late lantern"))
        assert "checking with Tripo" in wait_notice(engine, job_id).message
        clock.advance(1.0)
        wait_until(lambda: engine.stats["reconciles"] == 1, what="the first check")
        assert emulator.tasks() == {}, "the check came before the late create"
        wait_until(lambda: emulator.tasks(), what="the late create to reach the emulator")
        clock.release()
        final = wait_states(engine, [job_id])[job_id]
    finally:
        engine.stop()
    assert final["state"] == "ready"
    assert len(emulator.creates()) == 1 and len(emulator.tasks()) == 1
    assert final["steps"][0]["task_id"] == next(iter(emulator.tasks()))


def test_a_create_later_than_the_window_is_recorded_as_a_duplicate(core, emulator, tmp_path):
    """The window passed without a task, so the step was sent again; then the first request's
    task shows up after all: recorded as a duplicate, its result not imported."""
    emulator.configure(late_seconds=1.0)
    emulator.set_faults("late:create")
    clock = FakeClock()
    clock.hold()
    engine = make_engine(core, emulator, tmp_path, clock=clock,
                         reconcile_window=WINDOW)
    try:
        job_id = engine.submit(text_job(core, "a very late lantern"))
        assert "checking with Tripo" in wait_notice(engine, job_id).message
        clock.advance(WINDOW + 1)  # before the late create reaches Tripo
        clock.release()
        final = wait_states(engine, [job_id])[job_id]
        wait_until(lambda: engine.snapshot(job_id)["duplicates"], what="the late task to be noticed")
        record = engine.snapshot(job_id)
    finally:
        engine.stop()
    tasks = emulator.tasks()
    assert len(tasks) == 2
    kept = final["steps"][0]["task_id"]
    assert [d["task_id"] for d in record["duplicates"]] == [next(t for t in tasks if t != kept)]
    assert record["state"] == "ready" and record["steps"][0]["task_id"] == kept
    assert engine.stats["duplicates"] == 1


def test_unreachable_for_the_whole_window_asks_then_adopts_when_the_task_shows_up(
        core, emulator, tmp_path):
    """Only an unreachable service makes the job wait for the user, with what is known; the
    checks go on, and the task is adopted when the service answers again."""
    emulator.set_faults("reset_after:create,503:usage:1000")
    engine = make_engine(core, emulator, tmp_path, reconcile_window=WINDOW,
                         retry=core.http.RetryPolicy(max_attempts=1))
    try:
        job_id = engine.submit(text_job(core, "an unreachable urn"))
        asked = wait_states(engine, [job_id])[job_id]
        assert asked["state"] == "needs_decision"
        assert "could not be reached" in asked["error"]["message"]
        emulator.clear_faults()
        final = wait_states(engine, [job_id], states=("ready", "failed"))[job_id]
    finally:
        engine.stop()
    assert final["state"] == "ready"
    assert len(emulator.tasks()) == 1 and len(emulator.creates()) == 1


def test_a_given_up_job_adopts_its_task_when_it_shows_up(core, emulator, tmp_path):
    emulator.set_faults("reset_after:create,503:usage:1000")
    engine = make_engine(core, emulator, tmp_path, reconcile_window=WINDOW,
                         retry=core.http.RetryPolicy(max_attempts=1))
    try:
        job_id = engine.submit(text_job(core, "a forsaken urn"))
        assert wait_states(engine, [job_id])[job_id]["state"] == "needs_decision"
        engine.decide(job_id, resubmit=False)
        assert wait_states(engine, [job_id], states=("cancelled",))[job_id]
        emulator.clear_faults()
        final = wait_states(engine, [job_id], states=("ready",), timeout=30)[job_id]
    finally:
        engine.stop()
    assert final["steps"][0]["task_id"] == next(iter(emulator.tasks()))
    assert len(emulator.creates()) == 1


def test_failed_tasks_retry_only_when_asked_and_safe(core, emulator, tmp_path):
    engine = make_engine(core, emulator, tmp_path, max_task_retries=1)
    try:
        failing = engine.submit(text_job(core, "please failme"))
        final = wait_states(engine, [failing])[failing]
    finally:
        engine.stop()
    assert final["state"] == "failed"
    assert final["error"]["code"] == 1001
    assert len(emulator.creates()) == 2  # the first try and one retry; both refunded by Tripo


def test_content_policy_is_not_retried(core, emulator, tmp_path):
    engine = make_engine(core, emulator, tmp_path, max_task_retries=3)
    try:
        job_id = engine.submit(text_job(core, "something forbidden"))
        final = wait_states(engine, [job_id])[job_id]
    finally:
        engine.stop()
    assert final["state"] == "failed" and final["error"]["code"] == 2008
    assert len(emulator.creates()) == 1


def test_one_poll_request_per_round_whatever_the_number_of_tasks(core, emulator, tmp_path):
    emulator.configure(task_seconds=2.0, concurrency_limit=20)
    clock = FakeClock()
    engine = make_engine(core, emulator, tmp_path, clock=clock, max_concurrent=20)
    try:
        ids = [engine.submit(text_job(core, "a wooden crate", downloads=())) for _ in range(12)]
        started = clock.monotonic()
        wait_states(engine, ids)
        elapsed = clock.monotonic() - started  # on the engine's clock
    finally:
        engine.stop()
    polls = [r for r in emulator.requests() if r["path"] == "/v3/tasks/list"]
    single = [r for r in emulator.requests() if r["method"] == "GET" and r["path"].startswith("/v3/tasks/")]
    assert single == []
    assert len(polls) <= elapsed / engine.poll_min + 2  # never more than one poll per poll_min
    assert max(len(r["json"]["task_ids"]) for r in polls) == 12  # all tasks in one request


def test_cancel_stops_tracking_without_import(core, emulator, tmp_path):
    emulator.configure(task_seconds=1.0)  # the engine cancels long before: its clock is fake
    engine = make_engine(core, emulator, tmp_path)
    try:
        job_id = engine.submit(text_job(core))
        wait_until(lambda: (engine.snapshot(job_id) or {}).get("steps", [{}])[0].get("task_id"),
                   what="the task id")
        task_id = engine.snapshot(job_id)["steps"][0]["task_id"]
        engine.cancel(job_id)
        final = wait_states(engine, [job_id])[job_id]
        # The task then finishes on Tripo's side (the emulator's clock, not a guessed sleep);
        # the engine must not pick it up.
        wait_until(lambda: emulator.tasks()[task_id]["status"] == "success",
                   what="the task to finish on the emulator")
        assert engine.snapshot(job_id)["state"] == "cancelled"
    finally:
        engine.stop()
    assert final["state"] == "cancelled"
    assert not (tmp_path / "dl" / job_id).exists()


def test_invalid_chain_is_refused_before_anything_is_sent(core, emulator, tmp_path):
    engine = make_engine(core, emulator, tmp_path)
    job = core.jobs.Job.new("bad chain", [
        core.jobs.Step("text_to_model", {"prompt": "a cat", "model": "v3.1-20260211"}),
        core.jobs.Step("animate_retarget", {"animations": ["preset:walk"]}, input_from=0),
    ])
    try:
        with pytest.raises(core.errors.ValidationError, match="(?i)rig"):
            engine.submit(job)
    finally:
        engine.stop()
    assert emulator.creates() == []
    assert not (tmp_path / "journal" / f"{job.job_id}.json").exists()
