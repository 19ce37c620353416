"""The panels' draw code, run against a recording layout (background mode has no UI to draw in).

Every `prop` must name a real property of its data and every `operator` a registered operator,
so a renamed property or operator fails here instead of in an artist's sidebar."""

from __future__ import annotations

import bpy
import pytest

from conftest import PACKAGE


class RecordingLayout:
    """Stands in for bpy.types.UILayout: checks what it is asked to draw and records it."""

    def __init__(self, log):
        self.log = log
        self.enabled = True
        self.active = True
        self.scale_y = 1.0
        self.alert = False

    def _child(self, *args, **kwargs):
        return RecordingLayout(self.log)

    row = column = box = split = column_flow = grid_flow = _child

    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties, f"{type(data).__name__} has no property {name!r}"
        self.log.append(("prop", name, self.enabled))

    def operator(self, idname, **kwargs):
        category, name = idname.split(".")
        assert hasattr(getattr(bpy.ops, category), name), f"no operator {idname}"
        self.log.append(("operator", idname, self.enabled))

        class Properties:  # operator properties set by the panel must exist on the operator
            def __setattr__(inner, key, value):
                rna = getattr(getattr(bpy.ops, category), name).get_rna_type()
                assert key in rna.properties, f"{idname} has no property {key!r}"
                self.log.append(("set", f"{idname}.{key}", value))
        return Properties()

    def label(self, text="", **kwargs):
        self.log.append(("label", text, self.enabled))

    def progress(self, **kwargs):
        self.log.append(("progress", kwargs.get("text", ""), kwargs.get("factor")))

    def separator(self, **kwargs):
        pass

    def template_ID(self, data, name, **kwargs):
        assert name in data.bl_rna.properties

    def template_icon(self, **kwargs):
        self.log.append(("icon", kwargs.get("icon_value")))

    def menu(self, *args, **kwargs):
        pass


def draw_all(context) -> list:
    log = []
    for cls in bpy.types.Panel.__subclasses__():
        if not cls.__module__.startswith(PACKAGE):
            continue
        if getattr(bpy.types, getattr(cls, "bl_idname", cls.__name__), None) is not cls:
            continue  # a class left from before a disable/enable, no longer registered
        if hasattr(cls, "poll") and not cls.poll(context):
            continue
        panel = type("FakePanel", (), {"layout": RecordingLayout(log)})()
        cls.draw(panel, context)
    return log


def labels(log) -> list[str]:
    return [entry[1] for entry in log if entry[0] == "label"]


def test_generate_panel_draws_options_estimate_and_generate(tripo):
    s = bpy.context.scene.tripo
    s.prompt = "a wooden chest"
    log = draw_all(bpy.context)
    assert ("operator", "tripo.generate", True) in log
    assert any("credits (estimate)" in text for text in labels(log))


def test_conflicting_options_are_greyed_with_the_reason(tripo):
    s = bpy.context.scene.tripo
    s.prompt = "a cart"
    s.model_version = "P1-20260311"
    log = draw_all(bpy.context)
    assert ("prop", "quad", False) in log
    assert any("P1" in text for text in labels(log))
    s.model_version = "v3.1-20260211"
    s.generate_parts = True
    log = draw_all(bpy.context)
    assert any("Texture" in text and "off" in text for text in labels(log))


def test_offline_state_is_explained_and_generate_disabled(tripo):
    bpy.context.preferences.system.use_online_access = False
    log = draw_all(bpy.context)
    assert any("Online access is off" in text for text in labels(log))
    assert ("operator", "tripo.generate", False) in log


@pytest.mark.parametrize("state, expected", [
    ("active", "tripo.job_cancel"), ("failed", "tripo.job_retry"),
    ("imported", "tripo.job_reimport"), ("needs_decision", "tripo.job_retry"),
])
def test_jobs_list_offers_the_right_actions(tmod, state, expected):
    runtime = tmod("blender.runtime").get_runtime()
    job = {"job_id": f"job-{state}", "label": f"a {state} job", "state": state, "created_at": 0,
           "meta": {}, "error": {"message": "boom"} if state in ("failed", "needs_decision") else None,
           "steps": [{"task_type": "text_to_model", "state": "running", "progress": 40,
                      "task": {"credits_consumed": 40.0}}]}
    runtime.jobs[job["job_id"]] = job
    try:
        log = draw_all(bpy.context)
    finally:
        runtime.jobs.pop(job["job_id"])
    assert ("set", f"{expected}.job_id", job["job_id"]) in log
    assert any(entry[0] == "progress" for entry in log)
    if state == "failed":
        assert "boom" in labels(log)


def test_aistudio_provider_shows_its_prices_and_unavailable_modes(prefs):
    prefs.provider = "3daistudio"
    try:
        s = bpy.context.scene.tripo
        s.mode = "TEXT_IMAGE"
        s.prompt = "a lamp"
        log = draw_all(bpy.context)
        assert any("3D AI Studio" in text for text in labels(log))
        assert any("image generation" in text.lower() or "not offered" in text.lower() for text in labels(log))
    finally:
        prefs.provider = "tripo"


@pytest.mark.parametrize("output,shown,hidden", [("SPLAT", "model_seed", "texture"),
                                                 ("DEPTH", "depth_process_res", "model_version")])
def test_image_mode_offers_splat_and_depth_outputs(tripo, output, shown, hidden):
    s = bpy.context.scene.tripo
    s.mode = "IMAGE"
    s.image_output = output
    log = draw_all(bpy.context)
    props = [entry[1] for entry in log if entry[0] == "prop"]
    assert "image_output" in props and shown in props and hidden not in props
    assert ("operator", "tripo.generate", True) in log
    assert any("credits" in text for text in labels(log)), labels(log)
