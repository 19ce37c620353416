"""The sidebar panel (3D Viewport > N panel > Tripo): generate, jobs, account.

Draw code runs on every redraw: it reads what the runtime keeps in memory (its jobs and its
cached list of the journal's jobs) and creates no folder and reads no file.
"""

from __future__ import annotations

import functools
import time

import bpy

from ..blender import importer
from ..blender.runtime import get_runtime
from ..blender.settings import configured_provider
from ..core.providers import capabilities
from ..core.protocol import errors, request_models, vocabulary
from ..core.engine import jobs as core_jobs
from ..core.providers.settings import OFFLINE_MESSAGE

def estimate_for(settings, provider: str) -> tuple[str, str]:
    """("≈ 40 credits (estimate)", "") or ("", why it cannot be sent); cached per options."""
    kind = settings.analysis_kind()
    if kind:
        options = {k: v for k, v in settings.analysis_options().items() if v is not None}
        return _estimate_analysis(provider, kind, tuple(sorted(options.items())))
    options = {k: v for k, v in settings.generation_options().items() if v is not None}
    return _estimate(provider, settings.mode, settings.prompt, tuple(sorted(options.items())))


@functools.lru_cache(maxsize=64)
def _estimate_analysis(provider: str, kind: str, option_items: tuple) -> tuple[str, str]:
    task_type = core_jobs.ANALYSIS_KINDS[kind][0]
    unavailable = capabilities.feature_unavailable_reason(provider, task_type, dict(option_items))
    if unavailable:
        return "", unavailable
    try:
        request = request_models.build_request(task_type, input="file_estimate", **dict(option_items))
        return capabilities.estimate(provider, request).describe(), ""
    except errors.TripoError as exc:
        return "", exc.user_message()


# Draw code calls this on every redraw; the options it depends on change far less often.
@functools.lru_cache(maxsize=256)
def _estimate(provider: str, mode: str, prompt: str, option_items: tuple) -> tuple[str, str]:
    options = dict(option_items)
    task_type = {"IMAGE": "image_to_model", "MULTIVIEW": "multiview_to_model",
                 "TEXT_IMAGE": "image_to_model"}.get(mode, "text_to_model")
    unavailable = capabilities.feature_unavailable_reason(
        provider, "text_to_image" if mode == "TEXT_IMAGE" else task_type, options)
    if unavailable:
        return "", unavailable
    params = dict(options)
    # Inputs are checked on submit; a stand-in keeps the estimate independent of them.
    if task_type == "text_to_model":
        params["prompt"] = prompt or "prompt"
    elif task_type == "image_to_model":
        params["input"] = "file_estimate"
    else:
        params["inputs"] = ["file_front", "file_left", None, None]
    try:
        estimate = capabilities.estimate(provider, request_models.build_request(task_type, **params))
        text = estimate.describe()
        if mode == "TEXT_IMAGE":
            concept = request_models.build_request("text_to_image", prompt="x")
            image = capabilities.estimate(provider, concept)
            text = f"{text} + image {image.describe()}"
        return text, ""
    except errors.TripoError as exc:
        return "", exc.user_message()


class SidebarPanel:
    """Where every Tripo panel lives: the 3D view's sidebar, in the Tripo tab."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Tripo"


def prop_with_reason(layout, settings, prop: str, reasons: dict, **kwargs):
    row = layout.row()
    row.enabled = prop not in reasons
    row.prop(settings, prop, **kwargs)
    return row


def draw_submit(context, layout, s):
    """The provider, the cost estimate and the Generate button."""
    provider = configured_provider(context)
    if provider != "tripo":
        layout.label(text=f"Provider: {capabilities.PROVIDER_LABELS.get(provider, provider)}", icon="WORLD")
    estimate, problem = estimate_for(s, provider)
    if problem:
        layout.label(text=problem, icon="ERROR")
    else:
        layout.label(text=estimate, icon="FUND")
    row = layout.row()
    row.scale_y = 1.4
    row.enabled = bpy.app.online_access
    row.operator("tripo.generate", icon="PLAY")


class TRIPO_PT_generate(SidebarPanel, bpy.types.Panel):
    bl_label = "Tripo Generate"

    def draw(self, context):
        layout = self.layout
        s = context.scene.tripo
        if not bpy.app.online_access:
            box = layout.box()
            box.label(text="Online access is off", icon="ERROR")
            box.label(text="Preferences > System > Network, or --online-mode")
        layout.row().prop(s, "mode", expand=True)
        if s.mode in ("TEXT", "TEXT_IMAGE"):
            layout.prop(s, "prompt", text="Prompt")
        elif s.mode == "IMAGE":
            layout.prop(s, "image_path")
            layout.template_ID(s, "image", open="image.open")
            layout.prop(s, "prompt", text="Note")
            layout.row().prop(s, "image_output", expand=True)
        else:
            col = layout.column(align=True)
            for view in ("front_path", "left_path", "back_path", "right_path"):
                col.prop(s, view)
        if s.analysis_kind():
            # A splat or a depth map takes none of the model options below.
            layout.prop(s, "name")
            if s.analysis_kind() == "depth":
                layout.prop(s, "depth_kind")
                layout.prop(s, "depth_process_res")
            else:
                layout.prop(s, "model_seed")
            draw_submit(context, layout, s)
            return
        layout.prop(s, "negative_prompt")
        layout.prop(s, "name")
        layout.prop(s, "model_version")

        reasons = s.option_conflicts()
        col = layout.column(align=True)
        row = col.row(align=True)
        row.enabled = "texture" not in reasons or s.texture
        row.prop(s, "texture", toggle=True)
        sub = row.row(align=True)
        sub.enabled = "pbr" not in reasons or s.pbr
        sub.prop(s, "pbr", toggle=True)
        prop_with_reason(col, s, "texture_quality", reasons)
        prop_with_reason(col, s, "geometry_quality", reasons)
        col.prop(s, "face_limit")
        row = col.row(align=True)
        sub = row.row(align=True)
        sub.enabled = "quad" not in reasons or s.quad
        sub.prop(s, "quad", toggle=True)
        sub = row.row(align=True)
        sub.enabled = "smart_low_poly" not in reasons
        sub.prop(s, "smart_low_poly", toggle=True)
        sub = row.row(align=True)
        sub.enabled = "generate_parts" not in reasons or s.generate_parts
        sub.prop(s, "generate_parts", toggle=True)
        # Why something is greyed out (Blender has no per-state tooltips for properties).
        for reason in sorted(set(reasons.values())):
            col.label(text=reason, icon="INFO")

        layout.prop(s, "show_advanced", icon="TRIA_DOWN" if s.show_advanced else "TRIA_RIGHT", emboss=False)
        if s.show_advanced:
            box = layout.box()
            box.prop(s, "auto_size")
            box.prop(s, "asset_project")
            box.prop(s, "model_seed")
            box.prop(s, "texture_seed")
            if s.mode in ("IMAGE", "MULTIVIEW", "TEXT_IMAGE"):
                box.prop(s, "orientation")
                box.prop(s, "texture_alignment")
            else:
                box.prop(s, "image_seed")

        draw_submit(context, layout, s)

class TRIPO_PT_jobs(SidebarPanel, bpy.types.Panel):
    bl_label = "Jobs"
    bl_parent_id = "TRIPO_PT_generate"

    def draw(self, context):
        layout = self.layout
        runtime = get_runtime()
        unowned = runtime.unowned_jobs()
        if runtime.resume_problem or any(j["job_id"] not in runtime.foreign for j in unowned):
            box = layout.box()
            if runtime.resume_problem:
                box.label(text=f"Could not resume: {runtime.resume_problem}"[:120], icon="ERROR")
            box.operator("tripo.job_resume", icon="FILE_REFRESH")
        if not runtime.jobs and not unowned:
            layout.label(text="No jobs yet")
        now = time.time()
        for job in sorted(runtime.jobs.values(), key=lambda j: -j.get("created_at", 0))[:20]:
            _draw_job(layout.box(), runtime, job, now)
        for job in sorted(unowned, key=lambda j: -j.get("created_at", 0))[:20]:
            box = layout.box()
            box.label(text=job.get("label", ""), icon=_state_icon(job.get("state", "")))
            owner = job.get("owner") or {}
            if job["job_id"] in runtime.foreign:
                box.label(text=f"{job.get('state')} · run by another Blender (pid {owner.get('pid', '?')})")
            else:
                box.label(text=f"{job.get('state')} · not resumed yet")


def _draw_job(box, runtime, job: dict, now: float) -> None:
    steps = job.get("steps") or []
    step = steps[core_jobs.current_step_index(job)] if steps else {}
    state = job.get("state")
    head = box.row()
    head.label(text=job.get("label", ""), icon=_state_icon(state or ""))
    head.label(text=f"{int(now - job.get('created_at', now))} s")
    progress = core_jobs.record_progress(job)
    shown_state = "ready to import" if state == "ready" else state
    text = f"{vocabulary.task_label(step.get('task_type'))} · {shown_state}"
    if hasattr(box, "progress"):
        box.progress(factor=progress, type="BAR", text=text)
    else:  # Blender < 4.0 has no progress widget
        box.label(text=f"{text} {int(progress * 100)}%")
    credits = core_jobs.record_credits(job)
    if credits:
        box.label(text=f"{credits:g} credits")
    if job.get("error"):
        box.label(text=job["error"].get("message", "")[:120], icon="ERROR")
    waiting = runtime.waiting.get(job["job_id"]) if state == "ready" else None
    if waiting:
        box.label(text=waiting[:120], icon="INFO")
    preview = _preview_image(job) if state == "imported" else None
    if preview is not None:
        box.template_icon(icon_value=preview.preview.icon_id, scale=5)
    row = box.row(align=True)
    if state in ("queued", "active"):
        row.operator("tripo.job_cancel", icon="X").job_id = job["job_id"]
    if state in ("failed", "cancelled"):
        row.operator("tripo.job_retry", icon="FILE_REFRESH").job_id = job["job_id"]
    if state == "needs_decision":
        op = row.operator("tripo.job_retry", text="Resubmit (may bill twice)", icon="ERROR")
        op.job_id, op.resubmit_unknown = job["job_id"], True
        row.operator("tripo.job_cancel", text="Give Up", icon="X").job_id = job["job_id"]
    if state == "ready":
        here = runtime.lands_here(job)
        row.operator("tripo.job_import_now", text="Import now" if here else "Import here",
                     icon="IMPORT").job_id = job["job_id"]
    if state == "imported":
        row.operator("tripo.job_reimport", icon="IMPORT").job_id = job["job_id"]
    row.operator("tripo.job_open_folder", text="", icon="FILE_FOLDER").job_id = job["job_id"]
    if state in ("imported", "failed", "cancelled"):
        row.operator("tripo.job_forget", text="", icon="TRASH").job_id = job["job_id"]


def _preview_image(job: dict):
    """The packed preview of an imported job, looked up by name (no stored bpy references: they
    would not survive undo)."""
    image = bpy.data.images.get(f"{importer.asset_name(job)} preview")
    if image is None:
        return None
    image.preview_ensure()
    return image


def _state_icon(state: str) -> str:
    return {"imported": "CHECKMARK", "failed": "ERROR", "cancelled": "CANCEL",
            "needs_decision": "QUESTION", "ready": "IMPORT"}.get(state, "TIME")


class TRIPO_PT_account(SidebarPanel, bpy.types.Panel):
    bl_label = "Account"
    bl_parent_id = "TRIPO_PT_generate"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        balance = get_runtime().balance
        row = layout.row()
        if balance and balance.get("error"):
            row.label(text=balance["error"][:100], icon="ERROR")
        elif balance:
            row.label(text=f"Balance: {balance.get('balance', 0):g} credits "
                           f"({balance.get('frozen', 0):g} held)")
        else:
            row.label(text="Balance: unknown")
        row.operator("tripo.refresh_balance", text="", icon="FILE_REFRESH")
        if not bpy.app.online_access:
            layout.label(text=OFFLINE_MESSAGE[:60], icon="ERROR")


CLASSES = (TRIPO_PT_generate, TRIPO_PT_jobs, TRIPO_PT_account)

register, unregister = bpy.utils.register_classes_factory(CLASSES)
