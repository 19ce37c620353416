"""Operators: Generate, job actions (import now, resume, retry, ...) and the account balance.

In the UI, Generate submits the job and returns at once; the UI timer (ui/timer.py) lands the
result when the worker reports it. Under `blender -b` there is no event loop, so the same
operators run to completion synchronously (the job is imported, or an error reported, before
they return).

Repeat Last (Shift+R) replays the last operator registered with REGISTER. Operators that spend
credits (Generate, Retry) therefore have no REGISTER flag; those that change data still make an
undo step (the UNDO flag works without REGISTER).
"""

from __future__ import annotations

import logging
import os

import bpy
from bpy.props import BoolProperty, StringProperty

from ..blender import importer, landing
from ..blender.runtime import describe, get_runtime
from ..blender.settings import OfflineError, user_data_dir
from ..core.protocol import errors
from ..core.engine import recipes
from .redraw import redraw_tripo_panels

log = logging.getLogger(__name__)


def image_file_of(image) -> str:
    """A file path for a Blender image: its own file, or a PNG written for upload."""
    if image.filepath and not image.packed_file and os.path.isfile(bpy.path.abspath(image.filepath)):
        return bpy.path.abspath(image.filepath)
    folder = user_data_dir("uploads")
    path = os.path.join(folder, f"{bpy.path.clean_name(image.name)}.png")
    image.save_render(path) if image.type == "RENDER_RESULT" else _save_copy(image, path)
    return path


def _save_copy(image, path: str) -> None:
    copy = image.copy()
    try:
        copy.filepath_raw = path
        copy.file_format = "PNG"
        copy.save()
    finally:
        bpy.data.images.remove(copy)


def job_from_settings(settings, prompt: str | None = None):
    """The generation Job for the panel's current settings (validated later by the engine)."""
    prompt = prompt if prompt is not None else settings.prompt
    options = settings.generation_options()
    name = settings.name or None
    if settings.mode == "IMAGE":
        path = bpy.path.abspath(settings.image_path) if settings.image_path else (
            image_file_of(settings.image) if settings.image else "")
        if not path:
            raise errors.ValidationError("Choose a reference image (a file or an image in Blender).")
        if settings.analysis_kind():
            return recipes.analysis_job(settings.analysis_kind(), path, name=name,
                                              options=settings.analysis_options(),
                                              prompt=prompt or None)
        return recipes.generation_job(prompt=prompt or None, image=path, options=options, name=name)
    if settings.mode == "MULTIVIEW":
        views = [bpy.path.abspath(p) if p else None for p in
                 (settings.front_path, settings.left_path, settings.back_path, settings.right_path)]
        return recipes.generation_job(prompt=prompt or None, multiview=views, options=options, name=name)
    return recipes.generation_job(prompt=prompt, text_to_image=settings.mode == "TEXT_IMAGE",
                                  options=options, name=name)


def user_message(exc: BaseException) -> str:
    if isinstance(exc, errors.TripoError):
        return exc.user_message()
    return str(exc)


def submit_and_follow(operator, context, job, wait: bool = False) -> set[str]:
    """Submits a job; in the UI the timer follows it, in background mode this waits for the import."""
    runtime = get_runtime()
    try:
        job_id = runtime.submit(job, context)
    except (errors.TripoError, OfflineError) as exc:
        operator.report({"ERROR"}, user_message(exc))
        return {"CANCELLED"}
    if bpy.app.background or wait:
        return finish_synchronously(operator, context, [job_id])
    operator.report({"INFO"}, f"Submitted {job.label}")
    # Show the new job at once, however the operator was called (button, F3 search, a script).
    redraw_tripo_panels(context)
    return {"FINISHED"}


def finish_synchronously(operator, context, job_ids: list[str]) -> set[str]:
    runtime = get_runtime()
    finals = runtime.wait(job_ids, context)
    failed = [j for j in finals.values() if j.get("state") != "imported"]
    for job in failed:
        message = (job.get("error") or {}).get("message") or describe(job)
        operator.report({"ERROR"}, f"{job.get('label')}: {message}")
    if failed:
        return {"CANCELLED"}
    for job_id in job_ids:
        result = runtime.results.get(job_id)
        if result is not None:
            operator.report({"INFO"}, f"Imported {result.root.name if result.root else job_id}")
    return {"FINISHED"}


class TRIPO_OT_generate(bpy.types.Operator):
    """Generate a 3D model with Tripo from the panel's prompt or images"""

    bl_idname = "tripo.generate"
    bl_label = "Generate"
    bl_options = set()  # no REGISTER: Repeat Last must not pay again

    prompt: StringProperty(name="Prompt", description="Overrides the panel's prompt",
                           options={"SKIP_SAVE"})
    wait: BoolProperty(name="Wait", description="Return only once the model is imported "
                       "(always so in background mode)", default=False, options={"SKIP_SAVE"})

    def execute(self, context):
        try:
            job = job_from_settings(context.scene.tripo, self.prompt or None)
        except errors.TripoError as exc:
            self.report({"ERROR"}, user_message(exc))
            return {"CANCELLED"}
        return submit_and_follow(self, context, job, self.wait)


class _JobOperator:
    bl_options = set()  # panel buttons: nothing to repeat
    job_id: StringProperty(options={"HIDDEN", "SKIP_SAVE"})

    def job(self):
        return get_runtime().jobs.get(self.job_id)


class TRIPO_OT_job_cancel(_JobOperator, bpy.types.Operator):
    """Stop tracking this job. Tripo has no server-side cancel: a running task still finishes
    (and is billed) on Tripo's side"""

    bl_idname = "tripo.job_cancel"
    bl_label = "Stop Tracking"

    def execute(self, context):
        runtime = get_runtime()
        if runtime.engine is None or self.job() is None:
            return {"CANCELLED"}
        runtime.engine.cancel(self.job_id)
        self.report({"INFO"}, "Stopped tracking; Tripo has no cancel, so a running task still finishes there.")
        return {"FINISHED"}


class TRIPO_OT_job_retry(_JobOperator, bpy.types.Operator):
    """Submit the failed step of this job again"""

    bl_idname = "tripo.job_retry"
    bl_label = "Retry"
    bl_options = set()  # sends a create again: never replayed by Repeat Last

    resubmit_unknown: BoolProperty(default=False, options={"SKIP_SAVE"},
                                   description="For a create whose outcome is unknown: send it again (may bill twice)")

    def execute(self, context):
        runtime = get_runtime()
        job = self.job()
        if runtime.engine is None or job is None:
            return {"CANCELLED"}
        if job["state"] == "needs_decision":
            runtime.engine.decide(self.job_id, resubmit=self.resubmit_unknown)
        else:
            runtime.engine.retry(self.job_id)
        if bpy.app.background:
            return finish_synchronously(self, context, [self.job_id])
        return {"FINISHED"}


class TRIPO_OT_job_reimport(_JobOperator, bpy.types.Operator):
    """Import this job's downloaded result again"""

    bl_idname = "tripo.job_reimport"
    bl_label = "Re-import"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        job = self.job()
        if job is None or not (landing.is_image_result(job) or importer.model_file(job)):
            self.report({"ERROR"}, "This job has no downloaded model to import.")
            return {"CANCELLED"}
        try:
            result = landing.land_again(context, job)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            self.report({"ERROR"}, f"Import failed: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Imported {result.root.name}")
        return {"FINISHED"}


def not_in_object_mode(context) -> str:
    """Why an import cannot run now ("" when it can): the glTF importer would end the mode."""
    active = context.view_layer.objects.active if context.view_layer else None
    if active is not None and active.mode != "OBJECT":
        return (f"Switch to Object Mode to import ({active.name} is in "
                f"{active.mode.replace('_', ' ').title()} Mode)")
    return ""


class TRIPO_OT_job_import_now(_JobOperator, bpy.types.Operator):
    """Import this finished result now, into this file, and select it"""

    bl_idname = "tripo.job_import_now"
    bl_label = "Import Now"
    bl_options = {"UNDO"}  # one undo step; no REGISTER: the job is imported once

    def execute(self, context):
        runtime = get_runtime()
        job = self.job()
        if job is None or job.get("state") != "ready":
            self.report({"ERROR"}, "This job has no finished result waiting to be imported.")
            return {"CANCELLED"}
        problem = not_in_object_mode(context)
        if problem:
            self.report({"ERROR"}, problem)
            return {"CANCELLED"}
        result = runtime.land(context, self.job_id, select=True, push_undo=False)
        if job.get("state") != "imported":
            self.report({"ERROR"}, runtime.waiting.get(self.job_id) or "The import failed.")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Imported {result.root.name if result and result.root else job['label']}")
        return {"FINISHED"}


class TRIPO_OT_job_resume(bpy.types.Operator):
    """Resume the unfinished jobs of the journal that no running Blender owns"""

    bl_idname = "tripo.job_resume"
    bl_label = "Resume"
    bl_options = set()

    def execute(self, context):
        runtime = get_runtime()
        try:
            records = runtime.resume_journal(context)
        except (errors.TripoError, OfflineError) as exc:
            self.report({"ERROR"}, user_message(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Resumed {len(records)} job(s)")
        return {"FINISHED"}


class TRIPO_OT_notify(bpy.types.Operator):
    """Shows a message of the Tripo jobs in the status bar and the Info log"""

    bl_idname = "tripo.notify"
    bl_label = "Tripo Message"
    bl_options = {"INTERNAL"}

    level: StringProperty(default="INFO", options={"SKIP_SAVE"})
    message: StringProperty(options={"SKIP_SAVE"})

    def execute(self, context):
        self.report({self.level if self.level in ("INFO", "WARNING", "ERROR") else "INFO"}, self.message)
        return {"FINISHED"}


class TRIPO_OT_job_open_folder(_JobOperator, bpy.types.Operator):
    """Open the folder with this job's downloaded files"""

    bl_idname = "tripo.job_open_folder"
    bl_label = "Open Folder"

    def execute(self, context):
        job = self.job()
        if job is None or not os.path.isdir(job.get("out_dir", "")):
            self.report({"ERROR"}, "Nothing downloaded for this job yet.")
            return {"CANCELLED"}
        bpy.ops.wm.path_open(filepath=job["out_dir"])
        return {"FINISHED"}


class TRIPO_OT_job_forget(_JobOperator, bpy.types.Operator):
    """Remove this finished job from the list (its files stay on disk)"""

    bl_idname = "tripo.job_forget"
    bl_label = "Remove from List"

    def execute(self, context):
        runtime = get_runtime()
        if runtime.engine is not None:
            runtime.engine.forget(self.job_id)
        runtime.jobs.pop(self.job_id, None)
        return {"FINISHED"}


class TRIPO_OT_refresh_balance(bpy.types.Operator):
    """Ask Tripo for the account balance (answered in the background)"""

    bl_idname = "tripo.refresh_balance"
    bl_label = "Refresh Balance"

    def execute(self, context):
        runtime = get_runtime()
        try:
            engine = runtime.ensure_engine(context)
        except (errors.TripoError, OfflineError) as exc:
            self.report({"ERROR"}, user_message(exc))
            return {"CANCELLED"}
        runtime.balance_pending = True
        engine.fetch_balance()
        if bpy.app.background:
            runtime.wait_for_balance(context, timeout=60)
        return {"FINISHED"}


CLASSES = (
    TRIPO_OT_generate,
    TRIPO_OT_job_cancel,
    TRIPO_OT_job_retry,
    TRIPO_OT_job_reimport,
    TRIPO_OT_job_open_folder,
    TRIPO_OT_job_forget,
    TRIPO_OT_refresh_balance,
    TRIPO_OT_job_import_now,
    TRIPO_OT_job_resume,
    TRIPO_OT_notify,
)

register, unregister = bpy.utils.register_classes_factory(CLASSES)
