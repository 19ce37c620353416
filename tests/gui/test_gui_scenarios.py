"""The GUI tier: a real Blender with a window, used as a person would, against the emulator.

Each test is one scenario. It acts through the panel's operators (INVOKE_DEFAULT in the sidebar,
from Blender's event loop) or X input, lets Blender's loop do the rest, asserts on the scene, the
journal and the emulator's request log, and writes a screenshot at each step into
out/gui-screenshots/<test>/.
"""

from __future__ import annotations

import stat
import subprocess
import sys
import time

import pytest
from harness import REPO, BlenderUser, real_blender

# Snippets run inside Blender (see blender_driver.py for the helpers they use).
ROOTS = "[o for o in tripo_objects() if not o['parent']]"
SELECTION = ("result = {'mode': bpy.context.mode, 'active': getattr(bpy.context.view_layer.objects.active, 'name', ''),"
             " 'selected': sorted(o.name for o in bpy.context.view_layer.objects if o.select_get())}")


PROMPT_ROW = 72  # pixels below the sidebar's top: the prompt field in the Generate panel


def submit_generate(blender, prompt: str, **settings) -> None:
    assignments = "".join(f"s.{key} = {value!r}\n" for key, value in settings.items())
    blender.run(f"s = bpy.context.scene.tripo\ns.prompt = {prompt!r}\n{assignments}"
                "result = invoke('tripo.generate')\n"
                "assert result == ['FINISHED'], (result, reports()[-3:])")


def job_states(user) -> list[str]:
    return [record.get("state") for record in user.journal()]


def wait_job_state(user, states: set[str], timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in user.journal():
            if record.get("state") in states:
                return record
        time.sleep(0.3)
    raise TimeoutError(f"no job reached {states} within {timeout} s; states: {job_states(user)}")


def add_user_cube(blender) -> None:
    blender.run("with bpy.context.temp_override(**view3d_main()):\n"
                "    bpy.ops.mesh.primitive_cube_add(location=(-3, 0, 0))\n"
                "bpy.context.active_object.name = 'UserCube'\n"
                "result = True")


# --- a. generate from the panel -----------------------------------------------------------------

def test_a_generate_from_the_panel(user, launch, emulator):
    blender = launch(user)
    blender.run("bpy.context.scene.cursor.location = (2.0, 1.0, 0.0)\nresult = True")
    blender.screenshot("panel-open")
    # The prompt field is the row under the mode buttons, at the top of the Tripo tab.
    blender.type_into_sidebar(PROMPT_ROW, "a wooden chair")
    assert blender.run("result = bpy.context.scene.tripo.prompt") == "a wooden chair"
    blender.screenshot("prompt-typed")
    assert blender.run("result = invoke('tripo.generate')") == ["FINISHED"]
    wait_job_state(user, {"active"}, 30)
    time.sleep(1.5)  # a tick or two of our timer, and the redraw it asks for
    blender.screenshot("progress")
    roots = blender.wait_for(ROOTS, 90, "the asset landing")
    time.sleep(1.5)  # Blender renders the preview icon in the background
    blender.screenshot("landed")
    assert len(roots) == 1
    root = roots[0]
    assert [round(v, 4) for v in root["location"]] == [2.0, 1.0, 0.0], "lands at the 3D cursor"
    assert blender.run(f"img = bpy.data.images.get({root['name'] + ' preview'!r})\n"
                       "result = img is not None and img.size[0] > 0"), "the Jobs panel's preview image"
    assert len(emulator.creates()) == 1
    assert job_states(user) == ["imported"]


# --- b. a result lands while the user works in a mode or a modal tool ---------------------------

@pytest.mark.parametrize("situation", ["EDIT", "SCULPT", "TRANSFORM"])
def test_b_result_waits_for_the_users_mode(user, launch, emulator, situation):
    blender = launch(user)
    add_user_cube(blender)
    submit_generate(blender, "a small lamp")
    if situation == "TRANSFORM":
        x, y = blender.viewport_center()
        blender.hover(x, y)
        blender.key("g")
        blender.wait_for("'TRANSFORM_OT_translate' in modal_operator_names()", 10, "the G transform running")
        expected_mode = "OBJECT"
    else:
        blender.run(f"run_in(view3d_main(), bpy.ops.object.mode_set, mode={situation!r})\nresult = True")
        expected_mode = {"EDIT": "EDIT_MESH", "SCULPT": "SCULPT"}[situation]
    before = blender.run(SELECTION)
    assert before["mode"] == expected_mode and before["active"] == "UserCube"
    # The result is downloaded and ready; give Blender's loop a few more ticks to (wrongly) land it.
    wait_job_state(user, {"ready", "imported"}, 60)
    time.sleep(2)
    blender.screenshot(f"ready-while-{situation.lower()}")
    assert blender.run(SELECTION) == before, "the user's mode, selection and active object are kept"
    assert blender.run(f"result = {ROOTS}") == [], "nothing lands mid-work"
    if situation == "TRANSFORM":
        assert "TRANSFORM_OT_translate" in blender.run("result = modal_operator_names()")
        blender.key("Escape")
    else:
        blender.run("run_in(view3d_main(), bpy.ops.object.mode_set, mode='OBJECT')\nresult = True")
    roots = blender.wait_for(ROOTS, 30, "the asset landing after the mode ends")
    blender.screenshot("landed-after")
    assert len(roots) == 1
    after = blender.run(SELECTION)
    assert after["active"] == "UserCube" and after["selected"] == before["selected"]


# --- c. autosave keeps running --------------------------------------------------------------------

def test_c_autosave_runs_while_a_job_is_in_flight(tmp_path, extension_zip, launch, emulator):
    user = BlenderUser(tmp_path, extension_zip, autosave_minutes=1)
    emulator.reset(task_seconds=120.0)
    blender = launch(user)
    started = time.monotonic()
    submit_generate(blender, "a slow statue")
    wait_job_state(user, {"active"}, 30)
    deadline = started + 75
    autosaves = []
    while time.monotonic() < deadline and not autosaves:
        autosaves = list(user.tempdir.glob("*autosave*.blend"))
        time.sleep(1)
    blender.screenshot("after-autosave-window")
    assert job_states(user) == ["active"], "the job was still in flight"
    assert autosaves, f"no autosave within {time.monotonic() - started:.0f} s of start (1-minute interval)"


# --- d. kill -9 mid-job, then restart -----------------------------------------------------------

def test_d_kill_mid_job_then_restart_imports_once(user, launch, emulator):
    emulator.reset(task_seconds=8.0)
    scene = user.root / "scene.blend"
    blender = launch(user)
    blender.run(f"bpy.ops.wm.save_as_mainfile(filepath={str(scene)!r})\nresult = True")
    submit_generate(blender, "a crashed teapot")
    record = wait_job_state(user, {"active"}, 30)
    blender.screenshot("before-kill")
    blender.kill()
    restarted = launch(user, blend=scene, name="restarted")
    roots = restarted.wait_for(ROOTS, 90, "the result landing after the restart")
    restarted.screenshot("landed-after-restart")
    time.sleep(3)
    roots = restarted.run(f"result = {ROOTS}")
    assert [r["job_id"] for r in roots] == [record["job_id"]], "imported exactly once"
    assert len(emulator.creates()) == 1, "the server got no second create"


# --- e. another .blend is opened mid-job ----------------------------------------------------------

def test_e_result_belongs_to_the_file_that_asked(user, launch, emulator):
    emulator.reset(task_seconds=6.0)
    file_a, file_b = user.root / "a.blend", user.root / "b.blend"
    blender = launch(user)
    blender.run(f"bpy.ops.wm.save_as_mainfile(filepath={str(file_b)!r})\n"
                f"bpy.ops.wm.save_as_mainfile(filepath={str(file_a)!r})\nresult = True")
    submit_generate(blender, "a vase for file A")
    blender.run(f"bpy.ops.wm.open_mainfile(filepath={str(file_b)!r})\nresult = True")
    wait_job_state(user, {"ready", "imported"}, 60)
    time.sleep(2)
    blender.screenshot("ready-while-b-is-open")
    assert blender.run(f"result = {ROOTS}") == [], "nothing lands in file B"
    blender.run(f"bpy.ops.wm.open_mainfile(filepath={str(file_a)!r})\nresult = True")
    roots = blender.wait_for(ROOTS, 30, "the asset landing in file A")
    blender.screenshot("landed-in-a")
    assert len(roots) == 1


# --- f. a second Blender process ------------------------------------------------------------------

def test_f_second_process_leaves_the_job_alone(user, launch, emulator):
    emulator.reset(task_seconds=8.0)
    scene = user.root / "first.blend"
    first = launch(user, name="first")
    first.run(f"bpy.ops.wm.save_as_mainfile(filepath={str(scene)!r})\nresult = True")
    submit_generate(first, "a lantern for the first")
    wait_job_state(user, {"active"}, 30)
    second = launch(user, name="second")
    roots = first.wait_for(ROOTS, 90, "the asset landing in the first process")
    time.sleep(3)
    second.screenshot("second-process")
    assert len(roots) == 1
    assert second.run(f"result = {ROOTS}") == [], "the second process imported nothing"
    assert len(emulator.creates()) == 1


# --- g. disable mid-job, then enable ---------------------------------------------------------------

OURS_LEFT = """
import threading
handlers = [f for name in ('load_post', 'save_pre', 'depsgraph_update_post') for f in getattr(bpy.app.handlers, name)
            if 'tripo_blender' in getattr(f, '__module__', '')]
result = {'modal': [n for n in modal_operator_names() if n.startswith('TRIPO_')],
          'handlers': [f.__name__ for f in handlers],
          'threads': [t.name for t in threading.enumerate() if 'tripo' in t.name.lower()],
          'enabled': PACKAGE in bpy.context.preferences.addons}
"""


def test_g_disable_mid_job_leaves_nothing_and_enable_resumes(user, launch, emulator):
    emulator.reset(task_seconds=8.0)
    blender = launch(user)
    submit_generate(blender, "a chess knight")
    wait_job_state(user, {"active"}, 30)
    blender.run("bpy.ops.preferences.addon_disable(module=PACKAGE)\nresult = True")
    time.sleep(1)
    left = blender.run(OURS_LEFT)
    blender.screenshot("disabled")
    assert left == {"modal": [], "handlers": [], "threads": [], "enabled": False}
    blender.run("bpy.ops.preferences.addon_enable(module=PACKAGE)\nresult = True")
    roots = blender.wait_for(ROOTS, 90, "the job landing after enable")
    time.sleep(2)
    blender.screenshot("landed-after-enable")
    assert len(blender.run(f"result = {ROOTS}")) == len(roots) == 1
    assert len(emulator.creates()) == 1


def test_g_settings_survive_disable_enable_and_an_update(user, launch, emulator, tmp_path):
    blender = launch(user, connect=False)
    settings = {"api_key": emulator.api_key, "api_base": "custom", "custom_base_url": emulator.base_url,
                "proxy_mode": "custom", "proxy_url": "http://proxy.internal:3128", "mark_as_assets": False}
    read_back = ("p = bpy.context.preferences.addons[PACKAGE].preferences\n"
                 f"result = {{k: getattr(p, k) for k in {list(settings)!r}}}")
    blender.run("p = bpy.context.preferences.addons[PACKAGE].preferences\n"
                + "".join(f"p.{k} = {v!r}\n" for k, v in settings.items()) + "result = True")
    blender.run("bpy.ops.preferences.addon_disable(module=PACKAGE)\n"
                "bpy.ops.preferences.addon_enable(module=PACKAGE)\nresult = True")
    assert blender.run(read_back) == settings, "kept across disable/enable"

    # An update: the same extension with a higher version, installed over it from Blender.
    newer = tmp_path / "newer"
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_extension.py"), "--blender", str(real_blender()),
                    "--out", str(newer), "--version", "9.9.9", "--quiet"], check=True, capture_output=True,
                   timeout=600)
    zip_path = next(newer.glob("tripo_blender-9.9.9.zip"))
    blender.run(f"bpy.ops.extensions.package_install_files(filepath={str(zip_path)!r}, repo='user_default', "
                "enable_on_install=True)\nresult = True", timeout=120)
    assert blender.run("import addon_utils\n"
                       "result = addon_utils.module_bl_info(__import__('sys').modules[PACKAGE])['version']"
                       ) == [9, 9, 9]
    assert blender.run(read_back) == settings, "kept across an update"
    settings_file = user.data_dir / "settings.json"
    assert stat.S_IMODE(settings_file.stat().st_mode) == 0o600

    # The key is in no saved .blend and no log line.
    saved = user.root / "shared.blend"
    blender.run(f"bpy.ops.wm.save_as_mainfile(filepath={str(saved)!r})\nresult = True")
    blender.quit()
    assert emulator.api_key.encode() not in saved.read_bytes()
    assert emulator.api_key not in blender.log_path.read_text(errors="replace")


# --- h. the Selection panel: retexture 2 of 5 parts; rig, then 2 animations -----------------------

def test_h_selection_panel_retexture_parts_then_rig_and_animate(user, launch, emulator):
    emulator.reset(task_seconds=2.0)
    blender = launch(user)
    submit_generate(blender, "a toy cart with wheels", texture=False, pbr=False, generate_parts=True)
    blender.wait_for(ROOTS, 90, "the parts asset landing")
    parts = blender.run("result = sorted(o['name'] for o in tripo_objects() if o['role'] == 'part')")
    assert len(parts) == 5
    chosen = [parts[1], parts[3]]
    assert blender.run("for o in bpy.context.view_layer.objects: o.select_set(False)\n"
                       f"for name in {chosen!r}: bpy.data.objects[name].select_set(True)\n"
                       f"bpy.context.view_layer.objects.active = bpy.data.objects[{chosen[0]!r}]\n"
                       "s = bpy.context.scene.tripo\ns.texture_prompt = 'rusty red metal'\n"
                       "s.retexture_model, s.retexture_quality = 'v2.5-20250123', 'fast'\n"
                       "result = bpy.ops.tripo.retexture.poll()") is False  # fast needs v3.5
    blender.scroll_sidebar(30)  # down to the Selection panel's Texture options
    blender.screenshot("fast-refused-on-v2.5")
    assert blender.run("s = bpy.context.scene.tripo\n"
                       "s.retexture_model, s.retexture_delight = 'v3.5-20260815', True\n"
                       "view3d_sidebar()['area'].tag_redraw()\n"
                       "result = bpy.ops.tripo.retexture.poll()") is True
    time.sleep(0.5)  # the redraw
    blender.screenshot("fast-and-delight-on-v3.5")
    blender.run("result = invoke('tripo.retexture')\nassert result == ['FINISHED'], reports()[-3:]")
    sent = emulator.creates()[-1]
    assert sent["path"] == "/v3/models/texture"
    assert {k: sent["json"].get(k) for k in ("model", "texture_quality", "delight")} == {
        "model": "v3.5-20260815", "texture_quality": "fast", "delight": True}
    textured = blender.wait_for(
        "[o['name'] for o in tripo_objects() if o['task_type'] == 'texture_model' and o['role'] == 'part'] or None",
        90, "the retextured parts")
    blender.screenshot("retextured")
    assert sorted(textured) == sorted(chosen)

    root = blender.run(f"result = {ROOTS}[0]['name']")
    blender.run("for o in bpy.context.view_layer.objects: o.select_set(False)\n"
                f"bpy.data.objects[{root!r}].select_set(True)\n"
                f"bpy.context.view_layer.objects.active = bpy.data.objects[{root!r}]\n"
                "result = invoke('tripo.rig')\nassert result == ['FINISHED'], reports()[-3:]")
    armature = blender.wait_for("[o['name'] for o in tripo_objects() if o['type'] == 'ARMATURE'] or None", 90,
                                "the rigged armature")[0]
    blender.screenshot("rigged")
    blender.run("for o in bpy.context.view_layer.objects: o.select_set(False)\n"
                f"arm = bpy.data.objects[{armature!r}]\narm.select_set(True)\n"
                "bpy.context.view_layer.objects.active = arm\n"
                "bpy.context.scene.tripo.animations = 'idle, walk'\n"
                "result = invoke('tripo.animate')\nassert result == ['FINISHED'], reports()[-3:]")
    clips = blender.wait_for(
        f"sorted(bpy.data.objects[{armature!r}]['tripo'].to_dict().get('animations') or []) or None", 90,
        "the two animations")
    blender.screenshot("animated")
    assert len(clips) == 2
    assert blender.run("result = len([o for o in bpy.context.scene.objects if o.type == 'ARMATURE'])") == 1


# --- i. undo and redo around an import and a selection action ------------------------------------

def test_i_undo_redo_never_loses_a_paid_result(user, launch, emulator):
    emulator.reset(task_seconds=3.0)
    blender = launch(user)
    submit_generate(blender, "a toy cart with wheels", texture=False, pbr=False, generate_parts=True)
    blender.wait_for(ROOTS, 90, "the asset landing")
    x, y = blender.viewport_center()
    blender.hover(x, y)
    blender.key("ctrl+z")
    blender.wait_for(f"not {ROOTS}", 10, "undo removing the import")
    blender.screenshot("import-undone")
    blender.key("ctrl+shift+z")
    blender.wait_for(ROOTS, 10, "redo bringing it back")
    blender.screenshot("import-redone")

    part = blender.run("result = sorted(o['name'] for o in tripo_objects() if o['role'] == 'part')[0]")
    blender.run("for o in bpy.context.view_layer.objects: o.select_set(False)\n"
                f"bpy.data.objects[{part!r}].select_set(True)\n"
                f"bpy.context.view_layer.objects.active = bpy.data.objects[{part!r}]\n"
                "bpy.context.scene.tripo.texture_prompt = 'blue paint'\n"
                "result = invoke('tripo.retexture')\nassert result == ['FINISHED'], reports()[-3:]")
    blender.hover(x, y)
    blender.key("ctrl+z")  # right after the action, before its result arrives
    # The undo took the action's marks off the part, so the paid result lands as a new asset.
    landed = blender.wait_for(
        "[o for o in tripo_objects() if o['task_type'] == 'texture_model' and not o['parent']] or None", 90,
        "the paid texture result landing despite the undo")
    time.sleep(2)
    blender.screenshot("texture-landed-after-undo")
    assert len(landed) == 1, "landed exactly once"
    assert len(blender.run(f"result = {ROOTS}")) == 2, "the original asset and the texture result"
    assert len([c for c in emulator.creates() if c["path"] == "/v3/models/texture"]) == 1


# --- j. online access off; the key masked in the preferences --------------------------------------

def test_j_offline_message_and_masked_key(user, launch, emulator):
    blender = launch(user, online=False, connect=False)
    assert blender.run("result = bpy.app.online_access") is False
    blender.screenshot("panel-offline")
    outcome = blender.run("bpy.context.scene.tripo.prompt = 'a chair'\n"
                          "result = [invoke('tripo.generate'), reports()]")
    assert outcome[0] == ["CANCELLED"]
    assert any("Online access is off" in line for line in outcome[1]), outcome[1]
    assert [r for r in emulator.requests() if r["path"].startswith("/v3/")] == [], "nothing was sent"

    blender.run("p = bpy.context.preferences\n"
                "p.addons[PACKAGE].preferences.api_key = 'tsk_secret_value_1234'\n"
                "p.active_section = 'ADDONS'\n"
                "bpy.context.window_manager.addon_search = 'Tripo'\n"
                "bpy.ops.screen.userpref_show()\n"
                "bpy.ops.preferences.addon_expand(module=PACKAGE)\nresult = True")
    time.sleep(1.5)
    blender.screenshot("preferences-key-masked")
    subtype = blender.run("result = type(bpy.context.preferences.addons[PACKAGE].preferences)"
                          ".bl_rna.properties['api_key'].subtype")
    assert subtype == "PASSWORD"
