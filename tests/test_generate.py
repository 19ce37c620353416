"""Generation inside Blender, end to end: operators and the scripting API against the emulator
over real HTTP, real GLBs imported by Blender's glTF importer."""

from __future__ import annotations

import json
import addon_utils
import bpy
import pytest

from conftest import PACKAGE, write_png


def tripo_meta(obj):
    return obj["tripo"].to_dict()


def test_text_to_model_from_the_operator(connected, tmod):
    scene = bpy.context.scene
    scene.cursor.location = (1.0, 2.0, 0.0)
    scene.tripo.prompt = "a wooden treasure chest"
    scene.tripo.face_limit = 4000
    assert bpy.ops.tripo.generate() == {"FINISHED"}  # background mode: returns once imported

    tripo_objs = [o for o in bpy.data.objects if "tripo" in o]
    assert len(tripo_objs) == 1
    obj = tripo_objs[0]
    assert obj.name == "a wooden treasure chest"
    assert tuple(round(v, 4) for v in obj.location) == (1.0, 2.0, 0.0)
    assert obj.type == "MESH" and len(obj.data.polygons) <= 4000

    creates = connected.creates()
    assert len(creates) == 1
    assert creates[0]["path"] == "/v3/generation/text-to-model"
    assert creates[0]["json"]["prompt"] == "a wooden treasure chest"
    assert creates[0]["json"]["face_limit"] == 4000
    task_id = next(iter(connected.tasks()))

    meta = tripo_meta(obj)
    assert meta["schema"] == 1
    assert meta["task_id"] == task_id
    assert meta["task_type"] == "text_to_model"
    assert meta["role"] == "model"
    assert meta["prompt"] == "a wooden treasure chest"
    assert meta["model_version"] == "v3.1-20260211"
    assert json.loads(meta["params_json"])["face_limit"] == 4000
    assert meta["credits"] > 0
    assert meta["created_at"].endswith("Z") and meta["completed_at"]
    assert meta["chain"] == [f"text_to_model:{task_id}"]
    assert meta["provider"] == "tripo"
    preview = bpy.data.images.get(meta["preview_image"])
    assert preview is not None and preview.packed_file is not None


def test_image_to_model_uploads_then_generates(connected, tmp_path):
    bpy.context.scene.tripo.mode = "IMAGE"
    bpy.context.scene.tripo.image_path = str(write_png(tmp_path / "robot.png"))
    assert bpy.ops.tripo.generate() == {"FINISHED"}
    log = connected.requests()
    uploads = [r for r in log if r["path"].startswith("/v3/files")]
    creates = connected.creates()
    assert len(uploads) == 1 and len(creates) == 1
    assert creates[0]["path"] == "/v3/generation/image-to-model"
    assert creates[0]["json"]["input"].startswith("file_")
    obj = next(o for o in bpy.data.objects if "tripo" in o)
    assert obj.name == "robot"
    assert tripo_meta(obj)["images"] == ["robot.png"]


def test_multiview_to_model(connected, tmp_path):
    s = bpy.context.scene.tripo
    s.mode = "MULTIVIEW"
    s.front_path = str(write_png(tmp_path / "front.png"))
    s.back_path = str(write_png(tmp_path / "back.png", rgb=(10, 20, 30)))
    assert bpy.ops.tripo.generate() == {"FINISHED"}
    create = connected.creates()[0]
    assert create["path"] == "/v3/generation/multiview-to-model"
    inputs = create["json"]["inputs"]
    assert len(inputs) == 4 and inputs[0].startswith("file_") and inputs[1] is None and inputs[2]
    assert any("tripo" in o for o in bpy.data.objects)


def test_text_to_image_to_model_chains_by_task_id(connected):
    s = bpy.context.scene.tripo
    s.mode = "TEXT_IMAGE"
    s.prompt = "a brass lantern"
    assert bpy.ops.tripo.generate() == {"FINISHED"}
    creates = connected.creates()
    assert [c["path"] for c in creates] == ["/v3/generation/text-to-image", "/v3/generation/image-to-model"]
    image_task = next(t for t, rec in connected.tasks().items() if rec["type"] == "text_to_image")
    assert creates[1]["json"]["input"] == image_task
    obj = next(o for o in bpy.data.objects if "tripo" in o)
    assert tripo_meta(obj)["chain"][0] == f"text_to_image:{image_task}"


def test_parts_import_as_named_objects_under_one_parent(connected, tmod):
    api = tmod("api")
    result = api.generate("a toy cart with wheels", texture=False, pbr=False, generate_parts=True)
    root = result.root
    assert root.type == "EMPTY" and root.name == "a toy cart with wheels"
    parts = [o for o in root.children if o.type == "MESH"]
    assert len(parts) >= 3
    names = {tripo_meta(p)["part_name"] for p in parts}
    assert names == {p.name for p in parts}  # objects are named after their parts
    assert set(tripo_meta(root)["part_names"]) == names
    assert all(tripo_meta(p)["role"] == "part" for p in parts)
    assert len({tripo_meta(p)["asset_id"] for p in parts} | {tripo_meta(root)["asset_id"]}) == 1


def test_rig_and_animations_import_as_armature_with_named_actions(connected, tmod, monkeypatch):
    api, jobs, recipes = tmod("api"), tmod("core.engine.jobs"), tmod("core.engine.recipes")
    job = recipes.generation_job(prompt="a friendly robot", options={"model": "v3.1-20260211"}, post_steps=[
        jobs.Step("animate_rig", {"rig_type": "biped", "spec": "tripo"}, input_from=0),
        jobs.Step("animate_retarget", {"animations": ["preset:idle", "preset:walk"]}, input_from=1),
    ])
    result = api.wait(api.submit(job))[0]
    armature = result.root
    assert armature.type == "ARMATURE" and armature.name == "a friendly robot"
    meshes = [o for o in armature.children if o.type == "MESH"]
    assert meshes and any(m.type == "ARMATURE" and m.object == armature for m in meshes[0].modifiers)
    assert meshes[0].vertex_groups, "the mesh is skinned"
    assert {"idle", "walk"} <= set(result.imported.actions)
    tracks = {t.name for t in armature.animation_data.nla_tracks}
    assert {"idle", "walk"} <= tracks
    meta = tripo_meta(armature)
    assert meta["role"] == "armature" and meta["task_type"] == "animate_retarget"
    assert [c.split(":")[0] for c in meta["chain"]] == ["text_to_model", "animate_rig", "animate_retarget"]
    # Nothing else landed: no bone-shape sphere ("<asset> mesh.001"), no untagged object, no
    # helper collection of the glTF importer.
    assert sorted(o.name for o in bpy.data.objects) == sorted(o.name for o in result.imported.objects)
    assert sorted(o.name for o in result.imported.objects) == ["a friendly robot", "a friendly robot mesh"]
    assert all("tripo" in o for o in bpy.data.objects)
    assert not [c for c in bpy.data.collections if c.name.startswith("glTF_not_exported")]
    assert all(pb.custom_shape is None for pb in armature.pose.bones)

    # Where the glTF importer cannot skip its bone shapes (older versions), they are removed.
    importer = tmod("blender.importer")
    rig_file = result.files[max(k for k in result.files if k.endswith(":model_url"))]
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=rig_file, disable_bone_shape=False)
    assert any(c.name.startswith("glTF_not_exported") for o in bpy.data.objects for c in o.users_collection)
    bpy.ops.wm.read_homefile(use_empty=True)
    monkeypatch.setattr(importer, "gltf_import_options", lambda: {"disable_bone_shape": False})
    landed = importer.import_job(bpy.context, result.job)
    assert sorted(o.type for o in bpy.data.objects) == sorted(o.type for o in landed.objects) == ["ARMATURE", "MESH"]
    assert not [c for c in bpy.data.collections if c.name.startswith("glTF_not_exported")]
    assert all(pb.custom_shape is None for pb in landed.armature.pose.bones)


def test_invalid_options_are_refused_before_any_request(connected):
    s = bpy.context.scene.tripo
    s.prompt = "a lamp"
    s.generate_parts = True  # with texture and PBR still on
    with pytest.raises(RuntimeError, match="(?i)texture"):
        bpy.ops.tripo.generate()
    assert connected.creates() == []


@pytest.mark.parametrize("setup, expected", [
    (lambda e, p: setattr(p, "api_key", "tcli_not_an_api_key"), "tsk_"),
    (lambda e, p: e.configure(balance=0), "(?i)credit"),
    (lambda e, p: setattr(bpy.context.preferences.system, "use_online_access", False), "--online-mode"),
    (lambda e, p: setattr(p, "api_key", "tsk_wrong_key_for_this_server"), "(?i)key|auth"),
])
def test_failures_reach_the_user_as_reports(connected, prefs, setup, expected):
    connected.configure(api_key=connected.api_key)  # only the fixture's key is accepted
    setup(connected, prefs)
    bpy.context.scene.tripo.prompt = "a chair"
    with pytest.raises(RuntimeError, match=expected):  # an ERROR report, raised to the script
        bpy.ops.tripo.generate()
    assert not any("tripo" in o for o in bpy.data.objects)


def test_content_policy_and_failed_tasks_are_reported(connected):
    bpy.context.scene.tripo.prompt = "something forbidden"
    with pytest.raises(RuntimeError, match="(?i)policy|content"):
        bpy.ops.tripo.generate()
    bpy.context.scene.tripo.prompt = "please failme now"
    with pytest.raises(RuntimeError):
        bpy.ops.tripo.generate()
    assert not any("tripo" in o for o in bpy.data.objects)


def test_interrupted_job_resumes_after_reenabling_and_imports_once(connected, tmod):
    connected.configure(task_seconds=2.0)
    api = tmod("api")
    job_id = api.generate("a stone well", wait_for_result=False)
    addon_utils.disable(PACKAGE)          # like closing Blender mid-generation
    addon_utils.enable(PACKAGE, default_set=True)
    api = tmod("api")
    results = api.wait_all(timeout=60)
    assert [r.job["job_id"] for r in results] == [job_id]
    assert len([o for o in bpy.data.objects if "tripo" in o]) == 1
    assert len(connected.creates()) == 1
    # Nothing left to resume: a second wait imports nothing more.
    assert api.wait_all(timeout=5) == []
    assert len([o for o in bpy.data.objects if "tripo" in o]) == 1


def test_unknown_create_outcome_is_reconciled_not_resent(connected, tmod):
    connected.set_faults("reset_after:create")
    result = tmod("api").generate("a copper kettle")
    assert result.root is not None
    assert len(connected.creates()) == 1
    assert len(connected.tasks()) == 1


def test_concurrency_limit_queues_jobs_locally(connected, tmod):
    connected.configure(concurrency_limit=2, task_seconds=0.6)
    api = tmod("api")
    ids = [api.generate(f"crate number {i}", wait_for_result=False) for i in range(5)]
    results = api.wait(ids, timeout=120)
    assert len(results) == 5
    assert len(connected.tasks()) == 5  # refused creates made no task and billed nothing
    refused = [r for r in connected.creates() if r["status"] == 429]
    accepted = [r for r in connected.creates() if r["status"] == 200]
    assert len(accepted) == 5
    assert all(r["json"] for r in refused)


def test_metadata_is_safe_for_id_properties(connected, tmod):
    api = tmod("api")
    result = api.generate("a barrel", model_seed=2**31 - 1)
    assert json.loads(tripo_meta(result.root)["params_json"])["model_seed"] == 2**31 - 1
    # Values beyond 32 bits (byte sizes, millisecond times) are kept as strings, not overflowed.
    api.write_metadata(result.root, size_bytes=2**40, note=None)
    meta = api.read_metadata(result.root)
    assert meta["size_bytes"] == str(2**40) and meta["note"] == ""
    assert meta["task_id"]  # the update kept the rest
