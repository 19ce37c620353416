"""Runs inside a real Blender with a window (`blender --python tests/gui/blender_driver.py`).

The GUI tests drive Blender from outside, as a person would, through two channels:
- X input (xdotool): keys and clicks go through Blender's own event loop;
- this driver: a `bpy.app.timers` function that picks up command files from
  $TRIPO_GUI_CONTROL_DIR, runs each on the main thread (as an operator the user invokes would
  run), and writes the answer beside it. Commands are short Python snippets that set `result`.

A timer, unlike a modal operator, never holds back Blender's autosave, so the instrument does not
change what it measures. Nothing here imports the extension: tests reach it by its module name.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path

import bpy

CONTROL_DIR = Path(os.environ["TRIPO_GUI_CONTROL_DIR"])
PACKAGE = "bl_ext.user_default.tripo_blender"
OPERATOR_ERRORS: list[str] = []


def view3d_sidebar() -> dict:
    """The context override of the 3D view's sidebar region (where the Tripo panels live)."""
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                region = next(r for r in area.regions if r.type == "UI")
                return {"window": window, "screen": window.screen, "area": area, "region": region}
    raise RuntimeError("no 3D view")


def view3d_main() -> dict:
    override = view3d_sidebar()
    override["region"] = next(r for r in override["area"].regions if r.type == "WINDOW")
    return override


def invoke(idname: str, **properties):
    """Calls an operator as a click on its button does: INVOKE_DEFAULT in the sidebar."""
    group, name = idname.split(".")
    with bpy.context.temp_override(**view3d_sidebar()):
        try:
            # undo=True: a button click pushes the operator's undo step, a plain Python call not.
            return sorted(getattr(getattr(bpy.ops, group), name)("INVOKE_DEFAULT", True, **properties))
        except RuntimeError as exc:  # the operator reported an error: keep its text
            OPERATOR_ERRORS.append(str(exc))
            return ["CANCELLED"]


def run_in(override: dict, fn, *args, **kwargs):
    with bpy.context.temp_override(**override):
        return fn(*args, **kwargs)


def reports() -> list[str]:
    """The error reports of the operators invoked through `invoke` (Blender shows the same text
    in the status bar and the Info log; Python receives it as the RuntimeError's message)."""
    return list(OPERATOR_ERRORS)


def modal_operator_names() -> list[str]:
    return [op.bl_idname for w in bpy.context.window_manager.windows
            for op in getattr(w, "modal_operators", ())]


def tripo_objects() -> list[dict]:
    found = []
    for obj in bpy.data.objects:
        meta = obj.get("tripo")
        if meta is not None:
            meta = meta.to_dict() if hasattr(meta, "to_dict") else dict(meta)
            found.append({"name": obj.name, "type": obj.type, "parent": obj.parent.name if obj.parent else "",
                          "location": list(obj.location), "job_id": meta.get("job_id", ""),
                          "role": meta.get("role", ""), "task_type": meta.get("task_type", "")})
    return found


def setup_view() -> None:
    """Open the sidebar (N), as an artist would before generating; the harness then picks the
    Tripo tab with the mouse (the active tab is read-only to Python)."""
    override = view3d_sidebar()
    override["area"].spaces.active.show_region_ui = True
    override["area"].tag_redraw()


NAMESPACE = {
    "bpy": bpy, "invoke": invoke, "run_in": run_in, "view3d_sidebar": view3d_sidebar,
    "view3d_main": view3d_main, "reports": reports, "modal_operator_names": modal_operator_names,
    "tripo_objects": tripo_objects, "setup_view": setup_view, "PACKAGE": PACKAGE, "time": time,
}


def _answer(command: Path, payload: dict) -> None:
    answer = command.with_suffix(".answer")
    temporary = answer.with_suffix(".tmp")
    temporary.write_text(json.dumps(payload, default=str))
    os.replace(temporary, answer)


def poll_commands():
    for command in sorted(CONTROL_DIR.glob("*.command")):
        code = command.read_text()
        command.unlink()
        namespace = dict(NAMESPACE, result=None)
        try:
            exec(compile(code, command.name, "exec"), namespace)
            _answer(command, {"ok": True, "result": namespace["result"]})
        except Exception:  # noqa: BLE001 - the test gets the traceback
            _answer(command, {"ok": False, "error": traceback.format_exc()})
    return 0.05


def _started():
    setup_view()
    (CONTROL_DIR / "ready").write_text(str(os.getpid()))
    return None


CONTROL_DIR.mkdir(parents=True, exist_ok=True)
bpy.app.timers.register(poll_commands, first_interval=0.2, persistent=True)
bpy.app.timers.register(_started, first_interval=0.5)
