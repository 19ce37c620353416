"""The UI's one main-thread timer: drains the job engine, lands results, reports, redraws.

A persistent `bpy.app.timers` function (`_timer`, which calls `tick`) replaces any modal
operator: Blender postpones autosave while a modal operator runs, and the user's own modal tools
must not compete with ours. It is registered in `register()` (never in background mode, where
no event loop would run it: scripts use `Runtime.wait`) and removed in `unregister()`.

`tick(context)` is a plain function (the tests call it directly) and is cheap when idle: no
runtime means nothing to do, and otherwise one stat of the journal folder. It comes back every
ACTIVE_INTERVAL seconds while work is under way and every IDLE_INTERVAL seconds otherwise. The
status-bar text is set only when it changes and cleared when no job runs; panels are redrawn
only when something they show changed.
"""

from __future__ import annotations

import logging

import bpy

from ..blender import runtime as runtime_module
from . import history as history_ui
from .redraw import redraw_tripo_panels

log = logging.getLogger(__name__)

ACTIVE_INTERVAL = 0.2
IDLE_INTERVAL = 1.0

_status_text: str | None = None  # what we last put in the status bar (None: nothing of ours)


def tick(context) -> float:
    """One round of main-thread work; returns the seconds until the next round."""
    wm = context.window_manager
    if wm is None:
        return IDLE_INTERVAL
    if wm.is_interface_locked:  # a render holds the data: change nothing now
        return ACTIVE_INTERVAL
    history_changed = history_ui.refresh_if_wanted(context)  # a scan only when asked or stale
    resume = runtime_module.take_resume_request()
    runtime = runtime_module.get_runtime() if resume else runtime_module.current_runtime()
    if runtime is None:
        set_status(context, None)
        if history_changed:
            redraw_tripo_panels(context)
        return IDLE_INTERVAL
    changed = history_changed
    if resume:
        runtime.resume_pending(context)
        changed = True
    changed |= runtime.tick(context)
    changed |= runtime.land_ready(context)
    changed |= runtime.refresh_journal_view()
    report_notices(runtime)
    set_status(context, status_text(runtime))
    if changed:
        redraw_tripo_panels(context)
    return ACTIVE_INTERVAL if runtime.busy() else IDLE_INTERVAL


def status_text(runtime) -> str | None:
    running, ready = len(runtime.running_jobs()), len(runtime.ready_jobs())
    if not running and not ready:
        return None
    parts = [f"{running} job(s) running"] if running else []
    if ready:
        parts.append(f"{ready} result(s) ready to import")
    return "Tripo: " + ", ".join(parts)


def set_status(context, text: str | None) -> None:
    """Sets our status-bar text only when it changes (Blender's own hints stay visible
    otherwise), and clears it once, when nothing of ours runs."""
    global _status_text
    if text == _status_text:
        return
    workspace = getattr(context, "workspace", None)
    if workspace is None:
        return
    workspace.status_text_set(text)
    _status_text = text


def report_notices(runtime) -> None:
    """Failures and imports go to the status bar and the Info log, through an operator (only
    an operator can report from a timer)."""
    while runtime.unreported:
        notice = runtime.unreported.popleft()
        try:
            bpy.ops.tripo.notify(level=notice.level, message=notice.text)
        except RuntimeError:  # bpy.ops raises for an ERROR report, after showing it
            pass
        except AttributeError as exc:  # the operator is gone (disabling): the log has it
            log.debug("could not report %r: %s", notice.text, exc)


def _timer() -> float:
    try:
        return tick(bpy.context)
    except Exception:  # noqa: BLE001 - a failing round must not stop the timer for good
        log.exception("Tripo timer round failed")
        return IDLE_INTERVAL


def start_timer(force: bool = False) -> None:
    """Registers the timer (not in background mode unless `force`d, as tests do)."""
    if (bpy.app.background and not force) or bpy.app.timers.is_registered(_timer):
        return
    bpy.app.timers.register(_timer, first_interval=ACTIVE_INTERVAL, persistent=True)


def stop_timer() -> None:
    global _status_text
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)
    if _status_text is not None:
        try:
            workspace = bpy.context.workspace
            if workspace is not None:
                workspace.status_text_set(None)
        except AttributeError:  # a restricted context (Blender quitting)
            pass
        _status_text = None


def register() -> None:
    start_timer()


def unregister() -> None:
    stop_timer()

