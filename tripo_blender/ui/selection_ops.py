"""Actions on the selection (retexture, segment, complete, low poly, rig check, rig, animate,
convert and export, bring to Tripo) and the sidebar panel that offers them.

Every operator reads the selection with `blender.selection.analysis.analyze`, refuses (poll message in the
UI, an ERROR report from scripts) with the reason before anything is sent, builds its jobs from the
panel's settings (`scene.tripo`) and submits them: in the UI it returns at once and the UI timer
applies the result; under `blender -b` it waits and applies it before returning.

The operators spend credits, so they have no REGISTER flag (Repeat Last cannot replay them), and
they write `obj["tripo_uid"]`, so they are undo steps (UNDO works without REGISTER).

Panels and polls read the selection through `cached_analysis`: the analysis looks through the
scene for the asset's members, so it is redone only when the selection or the data changed.
"""

from __future__ import annotations

import logging
import textwrap

import bpy
from bpy.props import BoolProperty

from ..blender.selection import analysis as selection_analysis, jobs as selection_jobs
from ..blender.runtime import get_runtime
from ..blender.settings import OfflineError, configured_provider
from ..core.protocol import errors, vocabulary
from ..core.engine import jobs as core_jobs
from ..core.providers.settings import OFFLINE_MESSAGE
from .operators import finish_synchronously, user_message
from .panels import SidebarPanel

log = logging.getLogger(__name__)


def options_for(action: str, s) -> dict:
    """The action's options from the panel settings (None / defaults are not sent)."""
    if action == "retexture":
        takes_delight = "delight" not in s.retexture_conflicts()
        return {"prompt": s.texture_prompt.strip() or None, "image": s.texture_image_path or None,
                "style_image": s.style_image_path or None, "model": s.retexture_model,
                "texture_quality": s.retexture_quality, "delight": s.retexture_delight if takes_delight else None}
    if action == "segment":
        v2 = s.segment_model != vocabulary.DEFAULT_SEGMENT_MODEL
        return {"model": s.segment_model if v2 else None,
                "segmentation_granularity": s.segment_granularity if v2 else None}
    if action == "lowpoly":
        return {"face_limit": s.lowpoly_face_limit, "quad": s.lowpoly_quad or None,
                "replace": s.lowpoly_replace}
    if action == "rig":
        return {"rig_type": s.rig_type, "spec": s.rig_spec}
    if action == "animate":
        return {"animations": s.animations}
    if action == "convert":
        return {
            "format": s.export_format, "folder": s.export_dir, "per_part": s.export_per_part,
            "flatten_bottom": s.flatten_bottom or None,
            "pivot_to_center_bottom": s.pivot_to_center_bottom or None,
            "pack_uv": s.pack_uv or None,
            "scale_factor": s.scale_factor if abs(s.scale_factor - 1.0) > 1e-9 else None,
            "face_limit": s.export_face_limit or None,
            "texture_size": s.export_texture_size or None,
            "texture_format": None if s.export_texture_format == "DEFAULT" else s.export_texture_format,
            "fbx_preset": s.fbx_preset if s.export_format == "FBX" and s.fbx_preset != "blender" else None,
            "export_orientation": None if s.export_orientation == "+x" else s.export_orientation,
            "with_animation": None if s.with_animation else False,
        }
    return {}


def provider_reason(context, action: str) -> str:
    """Why the configured provider cannot run the action ("" when it can)."""
    try:
        from ..core.providers import capabilities
        provider = configured_provider(context)
        return capabilities.feature_unavailable_reason(provider, selection_analysis.ACTION_TASKS[action]) or ""
    except Exception as exc:  # noqa: BLE001 - a capability lookup must never break the UI
        log.debug("capability check failed: %s", exc)
        return ""


def action_reason(context, sel, action: str) -> str:
    if not bpy.app.online_access:
        return OFFLINE_MESSAGE
    s = getattr(context.scene, "tripo", None)
    per_part = bool(s and s.export_per_part) if action == "convert" else False
    return (sel.reason(action, per_part=per_part) or option_reason(s, action)
            or provider_reason(context, action))


def option_reason(s, action: str) -> str:
    """Why the panel's options for the action would be refused ("" when they would not)."""
    if action == "retexture" and s is not None:
        conflict = s.retexture_conflicts().get("texture_quality")
        return f"Retexture: {conflict}." if conflict else ""
    return ""


def submit_jobs(operator, context, jobs: list, wait: bool = False) -> set[str]:
    """Validates every job first (nothing is sent if one is refused), submits them all, and in
    background mode waits until they are applied."""
    try:
        for job in jobs:
            core_jobs.validate_chain(job)
    except errors.TripoError as exc:
        operator.report({"ERROR"}, user_message(exc))
        return {"CANCELLED"}
    runtime = get_runtime()
    ids = []
    for job in jobs:
        try:
            ids.append(runtime.submit(job, context))
        except (errors.TripoError, OfflineError) as exc:
            operator.report({"ERROR"}, user_message(exc))
            if not ids:
                return {"CANCELLED"}
            break
    if bpy.app.background or wait:
        status = finish_synchronously(operator, context, ids)
        if status == {"FINISHED"}:
            report_outcome(operator, [runtime.jobs.get(i) or {} for i in ids])
        return status
    operator.report({"INFO"}, f"Submitted {len(ids)} job(s): {', '.join(j.label for j in jobs[:3])}")
    folders = sorted({j.meta["export_folder"] for j in jobs if j.meta.get("export_folder")})
    if folders:
        operator.report({"INFO"}, f"Exporting into {', '.join(folders)}")
    return {"FINISHED"}


def report_outcome(operator, jobs: list[dict]) -> None:
    for job in jobs:
        kind = (job.get("meta") or {}).get("kind", "")
        if kind == selection_analysis.KIND_PREFIX + "convert":
            for path in selection_jobs.export_files(job):
                operator.report({"INFO"}, f"Exported {path}")
        elif kind == selection_analysis.KIND_PREFIX + "rig_check":
            output = ((job.get("steps") or [{}])[-1].get("task") or {}).get("output") or {}
            riggable = output.get("riggable")
            operator.report({"INFO"}, f"Riggable: {'yes' if riggable else 'no'}"
                                      f" (rig type {output.get('rig_type') or 'unknown'})")


# --- the selection analysis, cached between redraws -------------------------------------------
_data_generation = 0
_analysis_cache: tuple = ((), None)


@bpy.app.handlers.persistent
def _data_changed(*_args) -> None:
    global _data_generation
    _data_generation += 1


_DATA_HANDLERS = ("depsgraph_update_post", "undo_post", "redo_post", "load_post")


def cached_analysis(context):
    """The analysis (blender.selection.analysis) of the context's selection, reused while nothing changed."""
    global _analysis_cache
    selected = list(getattr(context, "selected_objects", None) or [])
    if bpy.app.background:  # no redraws to save, and no depsgraph updates to trust
        return selection_analysis.analyze(selected, context.scene)
    key = (_data_generation, context.scene.as_pointer() if context.scene else 0,
           tuple(o.as_pointer() for o in selected))
    if _analysis_cache[0] != key:
        _analysis_cache = (key, selection_analysis.analyze(selected, context.scene))
    return _analysis_cache[1]


class _SelectionAction:
    action = ""
    bl_options = {"UNDO"}  # an undo step (it writes tripo_uid); no REGISTER: it spends credits

    wait: BoolProperty(name="Wait", default=False, options={"SKIP_SAVE"},
                       description="Return only once the result is applied (always so in background mode)")

    @classmethod
    def poll(cls, context):
        sel = cached_analysis(context)
        reason = action_reason(context, sel, cls.action)
        if reason:
            cls.poll_message_set(reason)
            return False
        return True

    def execute(self, context):
        sel = selection_analysis.analyze(list(context.selected_objects), context.scene)
        try:
            jobs = selection_jobs.build_jobs(self.action, sel, **options_for(self.action, context.scene.tripo))
        except errors.TripoError as exc:
            self.report({"ERROR"}, user_message(exc))
            return {"CANCELLED"}
        return submit_jobs(self, context, jobs, self.wait)


#: One operator per action, alike but for what they send: action -> (label, tooltip).
ACTION_OPERATORS = {
    "retexture": ("Retexture", "Texture the selected parts (or the whole asset) again with the "
                  "texture prompt, reference image or style image; other parts keep their materials"),
    "segment": ("Segment", "Split the asset into named parts (the original is hidden, not deleted)"),
    "complete": ("Complete Parts", "Complete the selected parts of a segmented asset (fill the "
                 "holes left by segmentation)"),
    "lowpoly": ("Low Poly", "Make a low-poly version (of the selected parts), beside the original "
                "or replacing it"),
    "rig_check": ("Check Rig", "Ask Tripo whether the asset can be rigged and which rig type it "
                  "detects"),
    "rig": ("Rig", "Rig the asset with the chosen rig type and skeleton (the original is hidden)"),
    "animate": ("Animate", "Add the preset animations (up to 5 per task) as named actions on the "
                "asset's armature"),
    "convert": ("Convert & Export", "Convert and export the asset (or one file per selected part) "
                "into the export folder"),
    "bring_to_tripo": ("Bring to Tripo", "Upload the selected mesh(es) to Tripo (import_model) so "
                       "that every Tripo action works on them; the mesh is not changed"),
}


def _action_operator(action: str, label: str, tooltip: str) -> type:
    return type(f"TRIPO_OT_{action}", (_SelectionAction, bpy.types.Operator), {
        "__doc__": tooltip, "bl_idname": f"tripo.{action}", "bl_label": label, "action": action})


ACTION_OPERATOR_CLASSES = tuple(_action_operator(action, *text) for action, text in ACTION_OPERATORS.items())


# =========================================================================== panel

def _wrapped(layout, text: str, icon: str = "INFO", width: int = 42) -> None:
    lines = textwrap.wrap(text, width) or [""]
    col = layout.column(align=True)
    for number, line in enumerate(lines):
        col.label(text=line, icon=icon if number == 0 else "BLANK1")


def _button(layout, context, sel, action: str, icon: str, text: str | None = None) -> None:
    reason = action_reason(context, sel, action)
    row = layout.row()
    row.enabled = not reason
    row.operator(f"tripo.{action}", icon=icon, **({"text": text} if text else {}))
    if reason and reason != OFFLINE_MESSAGE:
        _wrapped(layout, reason)


def _analysis(context):
    return cached_analysis(context)


class _SelectionSubPanel(SidebarPanel):
    bl_parent_id = "TRIPO_PT_selection"
    bl_options = {"DEFAULT_CLOSED"}


class TRIPO_PT_selection(SidebarPanel, bpy.types.Panel):
    bl_label = "Tripo Selection"

    def draw(self, context):
        layout = self.layout
        sel = _analysis(context)
        if not bpy.app.online_access:
            _wrapped(layout, "Online access is off: Preferences > System > Network", icon="ERROR")
        box = layout.box()
        for number, line in enumerate(sel.summary()):
            box.label(text=line, icon="OBJECT_DATA" if number == 0 else "BLANK1")
        if sel.foreign or sel.unusable:
            _button(layout, context, sel, "bring_to_tripo", "IMPORT")


class TRIPO_PT_selection_texture(_SelectionSubPanel, bpy.types.Panel):
    bl_label = "Texture"
    bl_options = set()  # open, unlike the other action panels

    def draw(self, context):
        layout, s = self.layout, context.scene.tripo
        sel = _analysis(context)
        layout.prop(s, "texture_prompt", text="")
        layout.prop(s, "texture_image_path")
        layout.prop(s, "style_image_path")
        reasons = s.retexture_conflicts()
        col = layout.column(align=True)
        col.prop(s, "retexture_model")
        col.prop(s, "retexture_quality")
        row = col.row()
        row.enabled = "delight" not in reasons
        row.prop(s, "retexture_delight")
        what = f"Retexture {len(sel.part_names)} Part(s)" if sel.part_names else "Retexture"
        _button(layout, context, sel, "retexture", "BRUSH_DATA", what)


class TRIPO_PT_selection_mesh(_SelectionSubPanel, bpy.types.Panel):
    bl_label = "Mesh"

    def draw(self, context):
        layout, s = self.layout, context.scene.tripo
        sel = _analysis(context)
        col = layout.column(align=True)
        col.prop(s, "segment_model")
        row = col.row()
        row.enabled = s.segment_model != vocabulary.DEFAULT_SEGMENT_MODEL
        row.prop(s, "segment_granularity")
        _button(layout, context, sel, "segment", "MOD_EXPLODE")
        _button(layout, context, sel, "complete", "MOD_SOLIDIFY")
        layout.separator()
        col = layout.column(align=True)
        col.prop(s, "lowpoly_face_limit")
        row = col.row(align=True)
        row.prop(s, "lowpoly_quad", toggle=True)
        row.prop(s, "lowpoly_replace", toggle=True)
        _button(layout, context, sel, "lowpoly", "MOD_DECIM")


class TRIPO_PT_selection_rig(_SelectionSubPanel, bpy.types.Panel):
    bl_label = "Rig & Animate"

    def draw(self, context):
        layout, s = self.layout, context.scene.tripo
        sel = _analysis(context)
        meta = sel.root_meta
        if "riggable" in meta:
            layout.label(text=f"Riggable: {'yes' if meta['riggable'] else 'no'}"
                              f" ({meta.get('rig_type_detected') or 'unknown type'})",
                         icon="CHECKMARK" if meta["riggable"] else "ERROR")
        _button(layout, context, sel, "rig_check", "VIEWZOOM")
        col = layout.column(align=True)
        col.prop(s, "rig_type")
        col.prop(s, "rig_spec")
        _button(layout, context, sel, "rig", "ARMATURE_DATA")
        layout.prop(s, "animations")
        _button(layout, context, sel, "animate", "ACTION")
        armature = next((o for o in [sel.root] if o is not None and o.type == "ARMATURE"), None)
        if armature is not None and armature.animation_data is not None:
            tracks = [t.name for t in armature.animation_data.nla_tracks]
            if tracks:
                _wrapped(layout, "Actions: " + ", ".join(tracks), icon="NLA")


class TRIPO_PT_selection_export(_SelectionSubPanel, bpy.types.Panel):
    bl_label = "Convert & Export"

    def draw(self, context):
        layout, s = self.layout, context.scene.tripo
        sel = _analysis(context)
        col = layout.column(align=True)
        col.prop(s, "export_format")
        col.prop(s, "export_dir")
        col.prop(s, "export_per_part")
        col = layout.column(align=True)
        col.prop(s, "flatten_bottom")
        col.prop(s, "pivot_to_center_bottom")
        col.prop(s, "pack_uv")
        col.prop(s, "scale_factor")
        col.prop(s, "export_face_limit")
        col.prop(s, "export_texture_size")
        col.prop(s, "export_texture_format")
        row = col.row()
        row.enabled = s.export_format == "FBX"
        row.prop(s, "fbx_preset")
        col.prop(s, "export_orientation")
        col.prop(s, "with_animation")
        _button(layout, context, sel, "convert", "EXPORT")


CLASSES = (
    *ACTION_OPERATOR_CLASSES,
    TRIPO_PT_selection,
    TRIPO_PT_selection_texture,
    TRIPO_PT_selection_mesh,
    TRIPO_PT_selection_rig,
    TRIPO_PT_selection_export,
)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(CLASSES)


def register() -> None:
    _register_classes()
    for name in _DATA_HANDLERS:
        getattr(bpy.app.handlers, name).append(_data_changed)


def unregister() -> None:
    global _analysis_cache
    for name in _DATA_HANDLERS:
        handlers = getattr(bpy.app.handlers, name)
        while _data_changed in handlers:
            handlers.remove(_data_changed)
    _analysis_cache = ((), None)  # holds Blender objects: drop it
    _unregister_classes()
