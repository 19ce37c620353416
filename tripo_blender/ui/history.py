"""History (3D Viewport > Sidebar > Tripo > History): every task this machine knows, searchable,
with its preview and credits; re-import one, or import a task by its id.

The list lives in memory (blender/history.py). Drawing reads it and never touches the disk:
opening the panel asks the UI timer for a scan, Refresh rescans, and a new import makes the timer
rescan. Previews load lazily through a bpy.utils.previews collection filled at scan time.
"""

from __future__ import annotations

import logging

import bpy
import bpy.utils.previews
from bpy.props import StringProperty

from ..blender import history as blender_history
from ..blender.runtime import get_runtime
from ..blender.settings import OfflineError
from ..core.protocol import errors, vocabulary
from .panels import SidebarPanel
from .operators import finish_synchronously, not_in_object_mode, user_message

log = logging.getLogger(__name__)

ROWS_SHOWN = 15
_previews = None  # bpy.utils.previews collection: task id -> the preview's icon


def _load_previews(entries) -> None:
    global _previews
    if _previews is None:
        _previews = bpy.utils.previews.new()
    for entry in entries:
        if entry.preview and entry.task_id not in _previews:
            try:
                _previews.load(entry.task_id, entry.preview, "IMAGE")  # read when first drawn
            except (KeyError, RuntimeError) as exc:
                log.debug("no preview for %s: %s", entry.task_id, exc)


def refresh(context=None) -> None:
    entries = blender_history.get_history().refresh(context)
    _load_previews(entries)


def refresh_if_wanted(context=None) -> bool:
    """For the UI timer: True when the list was rescanned (the panel needs a redraw)."""
    history = blender_history.get_history()
    if not history.refresh_if_wanted(context):
        return False
    _load_previews(history.entries)
    return True


class TRIPO_PT_history(SidebarPanel, bpy.types.Panel):
    bl_label = "History"
    bl_parent_id = "TRIPO_PT_generate"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        history = blender_history.get_history()
        history.want()  # the first look asks the timer for a scan
        row = layout.row(align=True)
        row.prop(context.window_manager, "tripo_history_search", text="", icon="VIEWZOOM")
        row.operator("tripo.history_refresh", text="", icon="FILE_REFRESH")
        layout.operator("tripo.import_task", icon="IMPORT")
        if not history.loaded:
            layout.label(text="Reading the task history…")
            return
        found = history.search(context.window_manager.tripo_history_search)
        if not found:
            layout.label(text="No tasks" if not history.entries else "No task matches the search")
        for entry in found[:ROWS_SHOWN]:
            box = layout.box()
            row = box.row()
            icon = _previews.get(entry.task_id) if _previews is not None else None
            if icon is not None:
                row.template_icon(icon_value=icon.icon_id, scale=3)
            column = row.column(align=True)
            column.label(text=(entry.prompt or entry.label or entry.task_id)[:60])
            credits = f" · {entry.credits:g} credits" if entry.credits else ""
            made = entry.created_at[:16].replace("T", " ")
            column.label(text=f"{vocabulary.task_label(entry.task_type)} · {made}{credits}")
            column.label(text=f"{entry.task_id} · {entry.state}")
            if blender_history.can_reimport(entry):
                column.operator("tripo.history_reimport", icon="IMPORT").task_id = entry.task_id
        if len(found) > ROWS_SHOWN:
            layout.label(text=f"{len(found) - ROWS_SHOWN} more: refine the search")


class TRIPO_OT_history_refresh(bpy.types.Operator):
    """Read the task history again (journals and the task files beside the downloads)"""

    bl_idname = "tripo.history_refresh"
    bl_label = "Refresh History"

    def execute(self, context):
        refresh(context)
        self.report({"INFO"}, f"{len(blender_history.get_history().entries)} task(s) in the history")
        return {"FINISHED"}


class TRIPO_OT_history_reimport(bpy.types.Operator):
    """Import this task's downloaded model again, at the 3D cursor (no network)"""

    bl_idname = "tripo.history_reimport"
    bl_label = "Re-import"
    bl_options = {"REGISTER", "UNDO"}

    task_id: StringProperty(options={"HIDDEN", "SKIP_SAVE"})

    def execute(self, context):
        history = blender_history.get_history()
        entry = history.get(self.task_id) or (history.refresh(context) and history.get(self.task_id))
        if entry is None:
            self.report({"ERROR"}, f"Task {self.task_id} is not in the history.")
            return {"CANCELLED"}
        problem = not_in_object_mode(context)
        if problem:
            self.report({"ERROR"}, problem)
            return {"CANCELLED"}
        try:
            result = blender_history.reimport(context, entry)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            self.report({"ERROR"}, f"Import failed: {exc}")
            return {"CANCELLED"}
        if result.root is None:
            self.report({"ERROR"}, f"Task {self.task_id} has no model to import.")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Imported {result.root.name}")
        return {"FINISHED"}


class TRIPO_OT_import_task(bpy.types.Operator):
    """Import a task made elsewhere with the same API key (the web console, another machine) by
    its task id: it is fetched, downloaded and imported with its metadata. Nothing is billed"""

    bl_idname = "tripo.import_task"
    bl_label = "Import by Task ID"
    bl_options = set()  # a network action: nothing to repeat

    task_id: StringProperty(name="Task ID", description="The task's id, as Tripo shows it",
                            options={"SKIP_SAVE"})

    def invoke(self, context, event):
        return context.window_manager.invoke_props_dialog(self)

    def execute(self, context):
        runtime = get_runtime()
        try:
            job_id = runtime.import_task(self.task_id, context)
        except (errors.TripoError, OfflineError) as exc:
            self.report({"ERROR"}, user_message(exc))
            return {"CANCELLED"}
        if bpy.app.background:
            return finish_synchronously(self, context, [job_id])
        self.report({"INFO"}, f"Fetching task {self.task_id.strip()}")
        return {"FINISHED"}


CLASSES = (TRIPO_PT_history, TRIPO_OT_history_refresh, TRIPO_OT_history_reimport, TRIPO_OT_import_task)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(CLASSES)


def register() -> None:
    _register_classes()
    bpy.types.WindowManager.tripo_history_search = StringProperty(
        name="Search", options={"TEXTEDIT_UPDATE"},
        description="Words to find in the prompt, task id, date (YYYY-MM-DD), type or state")


def unregister() -> None:
    global _previews
    del bpy.types.WindowManager.tripo_history_search
    _unregister_classes()
    if _previews is not None:
        bpy.utils.previews.remove(_previews)
        _previews = None
