"""Actions on the selection, end to end: the operators (and the scripting API) against the
emulator over real HTTP, results applied by Blender; what the emulator received and what the
scene looks like afterwards. Refusals send nothing."""

from __future__ import annotations

import zipfile

import bpy
import pytest
from mathutils import Vector

from conftest import HAS_USD, write_png


def meta(obj) -> dict:
    return obj["tripo"].to_dict()


def select(*objects) -> None:
    view_layer = bpy.context.view_layer
    for obj in view_layer.objects:
        obj.select_set(False)
    for obj in objects:
        obj.select_set(True)
    view_layer.objects.active = objects[0] if objects else None


def parts_asset(api, prompt: str):
    root = api.generate(prompt, texture=False, pbr=False, generate_parts=True).root
    return root, sorted((o for o in root.children if o.type == "MESH"), key=lambda o: o.name)


def task_of(emulator, task_type: str, index: int = -1) -> str:
    found = [t for t in emulator.tasks().values() if t["type"] == task_type]
    found.sort(key=lambda t: t["created_at"])
    return found[index]["task_id"]


def materials(obj) -> list[str]:
    return [m.name for m in obj.data.materials if m is not None]


def world_bounds(objects):
    points = [o.matrix_world @ Vector(c) for o in objects for c in o.bound_box]
    return [[min(p[i] for p in points) for i in range(3)], [max(p[i] for p in points) for i in range(3)]]


def close(a, b, tolerance=1e-4) -> bool:
    return all(abs(x - y) <= tolerance for row_a, row_b in zip(a, b) for x, y in zip(row_a, row_b))


# --- retexture ----------------------------------------------------------------------------------

@pytest.mark.parametrize("hostile", ["../../etc/passwd", "w" * 300, "车轮/../x"])
def test_unknown_part_names_are_refused_before_any_request(connected, tmod, hostile):
    api = tmod("api")
    root, parts = parts_asset(api, "a toy cart with wheels")
    real = sorted(meta(p)["part_name"] for p in parts)
    count = len(connected.creates())
    with pytest.raises(tmod("core.protocol.errors").ValidationError) as info:
        api.retexture(root, "rusty", part_names=[real[0], hostile])
    message = info.value.user_message()
    assert repr(hostile[:60]).rstrip("'") in message, message  # names the unknown part ...
    assert all(name in message for name in real)                # ... and lists the real ones
    assert real[0] + "'" not in message.split("parts are")[0]
    with pytest.raises(tmod("core.protocol.errors").ValidationError, match="has no part"):
        api.lowpoly(root, part_names=[hostile])
    assert len(connected.creates()) == count, "nothing was sent"
    # A renamed part object keeps its metadata name, which is what is sent and checked.
    parts[0].name = hostile[:50]
    select(parts[0])
    job = tmod("blender.selection.jobs").build_jobs("retexture", tmod("blender.selection.analysis").analyze())[0]
    assert job.steps[0].params["part_names"] == [meta(parts[0])["part_name"]]


def test_retexturing_two_of_five_parts_changes_exactly_those_two(connected, tmod, tmp_path):
    api, s = tmod("api"), bpy.context.scene.tripo
    root, parts = parts_asset(api, "a toy cart with wheels")
    assert len(parts) == 5
    gen_task = meta(root)["task_id"]
    chosen = [parts[1], parts[3]]
    others = [p for p in parts if p not in chosen]
    # The user's own edits, which must survive.
    chosen[0].location.x += 0.5
    chosen[0].modifiers.new("Bevel", "BEVEL")
    mine = bpy.data.collections.new("Mine")
    bpy.context.scene.collection.children.link(mine)
    mine.objects.link(chosen[1])
    bpy.context.view_layer.update()
    world = {p.name: p.matrix_world.copy() for p in parts}
    before = {p.name: materials(p) for p in parts}
    meshes_before = {p.name: p.data for p in others}
    object_count = len(bpy.data.objects)

    select(*chosen)
    s.texture_prompt = "rusty red metal"
    count = len(connected.creates())
    assert bpy.ops.tripo.retexture() == {"FINISHED"}

    creates = connected.creates()[count:]
    assert [c["path"] for c in creates] == ["/v3/models/texture"]
    body = creates[0]["json"]
    assert body["input"] == gen_task
    assert sorted(body["part_names"]) == sorted(meta(p)["part_name"] for p in chosen)
    assert body["texture_prompt"] == {"text": "rusty red metal"}
    texture_task = task_of(connected, "texture_model")

    after = {p.name: materials(p) for p in parts}
    assert {name for name in before if before[name] != after[name]} == {p.name for p in chosen}
    for part in chosen:
        assert after[part.name] and all(name.startswith("tex_") for name in after[part.name])
        assert part.data.uv_layers
        m = meta(part)
        assert m["task_id"] == texture_task and m["task_type"] == "texture_model"
        assert m["model_task_id"] == texture_task
        assert m["chain"] == [f"text_to_model:{gen_task}", f"texture_model:{texture_task}"]
        assert m["texture_prompt"] == "rusty red metal"
        assert m["part_name"] == part.name
    for name in before[chosen[0].name] + before[chosen[1].name]:
        assert bpy.data.materials[name].use_fake_user, "old materials stay in the file"
    for part in others:
        assert part.data is meshes_before[part.name]
        assert meta(part)["task_id"] == gen_task  # unchanged, but further actions chain on the texture
        assert meta(part)["model_task_id"] == texture_task
    assert meta(root)["model_task_id"] == texture_task
    # The user's edits survived; no temporary objects were left behind.
    assert len(bpy.data.objects) == object_count
    assert all(close(p.matrix_world, world[p.name]) for p in parts)
    assert "Bevel" in chosen[0].modifiers
    assert chosen[1].name in mine.objects and all(p.parent is root for p in parts)

    # The whole asset (its root selected) chains on the texture task, with a style image.
    select(root)
    s.texture_prompt = ""
    s.style_image_path = str(write_png(tmp_path / "style.png", rgb=(20, 200, 90)))
    assert bpy.ops.tripo.retexture() == {"FINISHED"}
    body = connected.creates()[-1]["json"]
    assert body["input"] == texture_task
    assert "part_names" not in body
    assert body["texture_prompt"]["style_image"].startswith("file_")
    second = task_of(connected, "texture_model")
    assert all(meta(p)["task_id"] == second for p in parts)
    assert all(materials(p) and materials(p) != after[p.name] for p in parts)
    assert len(bpy.data.objects) == object_count


def test_retexture_takes_texture_model_v35_with_fast_quality_and_delight_from_the_panel(connected, tmod):
    """The Selection panel sends the texture model, quality and delight it shows; what the chosen
    model cannot take greys the button with the validator's reason, before any request."""
    api, s = tmod("api"), bpy.context.scene.tripo
    vocabulary, ops = tmod("core.protocol.vocabulary"), tmod("ui.selection_ops")
    root = api.generate("a painted mug").root
    select(root)
    s.texture_prompt = "glazed blue"
    s.retexture_quality = "fast"  # with the default texture model: refused
    assert s.retexture_model == vocabulary.DEFAULT_TEXTURE_MODEL
    count = len(connected.creates())
    reason = ops.action_reason(bpy.context, ops.cached_analysis(bpy.context), "retexture")
    assert "fast" in reason and vocabulary.TEXTURE_V35_MODEL in reason, reason
    assert not bpy.ops.tripo.retexture.poll()
    assert "delight" in s.retexture_conflicts()
    assert len(connected.creates()) == count

    s.retexture_model = vocabulary.TEXTURE_V35_MODEL
    s.retexture_delight = True
    assert s.retexture_conflicts() == {}
    assert bpy.ops.tripo.retexture() == {"FINISHED"}
    body = connected.creates()[-1]["json"]
    assert (body["model"], body["texture_quality"], body["delight"]) == (vocabulary.TEXTURE_V35_MODEL, "fast", True)

    # The default model: its version and quality are sent, delight (v3.5 only) is not.
    s.retexture_model, s.retexture_quality = vocabulary.DEFAULT_TEXTURE_MODEL, "detailed"
    select(root)
    assert bpy.ops.tripo.retexture() == {"FINISHED"}
    body = connected.creates()[-1]["json"]
    assert (body["model"], body["texture_quality"]) == (vocabulary.DEFAULT_TEXTURE_MODEL, "detailed")
    assert "delight" not in body


# --- segment and complete -----------------------------------------------------------------------

def test_segment_replaces_the_asset_by_its_parts_then_complete_selected_parts(connected, tmod):
    api, s = tmod("api"), bpy.context.scene.tripo
    model = api.generate("a toy cart", texture=False, pbr=False).root
    gen_task = meta(model)["task_id"]
    model.location = (2.0, 1.0, 0.0)
    model.rotation_euler.z = 0.5
    mine = bpy.data.collections.new("Carts")
    bpy.context.scene.collection.children.link(mine)
    for collection in list(model.users_collection):
        collection.objects.unlink(model)
    mine.objects.link(model)
    bpy.context.view_layer.update()
    world = model.matrix_world.copy()
    bounds = world_bounds([model])

    select(model)
    with pytest.raises(RuntimeError, match="(?i)segment .* first"):
        bpy.ops.tripo.complete()  # not segmented yet
    assert len(connected.creates()) == 1  # the generation only

    s.segment_model = "v2.0-20260430"
    s.segment_granularity = "detailed"
    assert bpy.ops.tripo.segment() == {"FINISHED"}
    create = connected.creates()[-1]
    assert create["path"] == "/v3/mesh/segment"
    assert create["json"] == {"input": gen_task, "model": "v2.0-20260430",
                              "segmentation_granularity": "detailed"}
    seg_task = task_of(connected, "mesh_segmentation")

    # The original is hidden (not deleted); the new asset took its place, name and collection.
    assert model.name in bpy.data.objects and model.hide_get() and model.hide_render
    assert meta(model)["replaced_by"]
    root = bpy.context.view_layer.objects.active
    assert root.type == "EMPTY" and root.name == "a toy cart" and root is not model
    assert close(root.matrix_world, world)
    parts = sorted(root.children, key=lambda o: o.name)
    assert {p.name for p in parts} == {"wheel_left", "wheel_right", "axle", "body", "handle"}
    assert all(p.users_collection[0] is mine for p in parts + [root])
    assert close(world_bounds(parts), bounds, 1e-3), "the parts sit where the model was"
    for part in parts:
        m = meta(part)
        assert m["role"] == "part" and m["part_name"] == part.name
        assert m["task_type"] == "mesh_segmentation" and m["task_id"] == seg_task
        assert m["chain"] == [f"text_to_model:{gen_task}", f"mesh_segmentation:{seg_task}"]

    chosen = [p for p in parts if p.name in ("body", "handle")]
    faces = {p.name: len(p.data.polygons) for p in parts}
    meshes = {p.name: p.data for p in parts}
    select(*chosen)
    assert bpy.ops.tripo.complete() == {"FINISHED"}
    create = connected.creates()[-1]
    assert create["path"] == "/v3/mesh/complete"
    assert create["json"]["input"] == seg_task
    assert sorted(create["json"]["part_names"]) == ["body", "handle"]
    complete_task = task_of(connected, "mesh_completion")
    for part in parts:
        if part in chosen:
            assert len(part.data.polygons) > faces[part.name], "completed parts gained faces"
            assert meta(part)["task_id"] == complete_task
        else:
            assert part.data is meshes[part.name] and meta(part)["task_id"] == seg_task
        assert meta(part)["model_task_id"] == complete_task
    assert close(root.matrix_world, world)


# --- low poly -----------------------------------------------------------------------------------

def test_lowpoly_beside_the_original_or_replacing_selected_parts(connected, tmod):
    api, s = tmod("api"), bpy.context.scene.tripo
    model = api.generate("a wooden barrel", texture=False, pbr=False).root
    gen_task = meta(model)["task_id"]
    select(model)
    s.lowpoly_face_limit = 1000
    s.lowpoly_replace = False
    assert bpy.ops.tripo.lowpoly() == {"FINISHED"}
    create = connected.creates()[-1]
    assert create["path"] == "/v3/mesh/decimate"
    # Every option is sent, at the SDK's declared defaults when not chosen.
    assert create["json"] == {"input": gen_task, "face_limit": 1000, "model": "v2.0",
                              "quad": False, "bake": True}
    low = bpy.context.view_layer.objects.active
    assert low is not model and low.name == f"{model.name} low poly"
    assert sum(len(p.vertices) - 2 for p in low.data.polygons) <= 1000
    assert low.location.x > model.location.x + 0.1, "placed beside the original"
    assert not model.hide_get() and model.name == "a wooden barrel"
    assert meta(low)["task_type"] == "highpoly_to_lowpoly" and meta(low)["asset_id"] != meta(model)["asset_id"]

    root, parts = parts_asset(api, "a wooden chair")
    root.location = (-3.0, 0.0, 0.0)
    bpy.context.view_layer.update()
    world = root.matrix_world.copy()
    target = next(p for p in parts if p.name == "seat")
    select(target)
    s.lowpoly_face_limit = 500
    s.lowpoly_replace = True
    assert bpy.ops.tripo.lowpoly() == {"FINISHED"}
    create = connected.creates()[-1]
    assert create["json"]["part_names"] == ["seat"] and create["json"]["face_limit"] == 500
    assert root.hide_get() and all(p.hide_get() for p in parts)
    assert root.name == "a wooden chair (original)"
    new_root = bpy.context.view_layer.objects.active
    assert new_root.name == "a wooden chair" and close(new_root.matrix_world, world)
    assert {p.name for p in new_root.children} == {p.name.replace(" (original)", "") for p in parts}


# --- rig check, rig, animations -------------------------------------------------------------------

def test_rig_check_rig_and_many_animations_on_one_armature(connected, tmod):
    api, s = tmod("api"), bpy.context.scene.tripo
    model = api.generate("a friendly robot").root
    gen_task = meta(model)["task_id"]
    model.location = (0.0, 3.0, 0.0)
    bpy.context.view_layer.update()
    world = model.matrix_world.copy()
    select(model)
    s.rig_type = "quadruped"
    assert bpy.ops.tripo.rig_check() == {"FINISHED"}
    assert connected.creates()[-1]["path"] == "/v3/animations/rig-check"
    assert meta(model)["riggable"] is True or meta(model)["riggable"] == 1
    assert meta(model)["rig_type_detected"] == "biped"
    assert s.rig_type == "biped", "the detected rig type is taken over"

    select(model)
    with pytest.raises(RuntimeError, match="(?i)rig .* first"):
        bpy.ops.tripo.animate()  # not rigged yet
    s.rig_spec = "tripo"
    assert bpy.ops.tripo.rig() == {"FINISHED"}
    create = connected.creates()[-1]
    assert create["path"] == "/v3/animations/rig"
    assert create["json"] == {"input": gen_task, "rig_type": "biped", "spec": "tripo",
                              "model": "v3.0-20260909", "out_format": "glb"}
    rig_task = task_of(connected, "animate_rig")
    armature = bpy.context.view_layer.objects.active
    assert armature.type == "ARMATURE" and armature.name == "a friendly robot"
    assert model.hide_get() and meta(armature)["rig_task_id"] == rig_task
    assert close(armature.matrix_world, world)
    skinned = [o for o in armature.children if o.type == "MESH"]
    assert len(skinned) == 1 and meta(skinned[0])["role"] == "model"
    assert set(bpy.context.scene.objects) == {model, armature, skinned[0]}, "no importer leftovers"

    select(armature)
    s.animations = "idle, walk, run, jump, turn, climb, slash"
    assert bpy.ops.tripo.animate() == {"FINISHED"}
    retargets = [c for c in connected.creates() if c["path"] == "/v3/animations/retarget"]
    assert len(retargets) == 2, "at most 5 animations per task"
    assert all(c["json"]["input"] == rig_task for c in retargets)
    assert [len(c["json"]["animations"]) for c in retargets] == [5, 2]
    assert retargets[0]["json"]["animations"][0] == "preset:idle"  # a v3.0 rig: no biped: prefix

    clips = {"idle", "walk", "run", "jump", "turn", "climb", "slash"}
    anim = armature.animation_data
    tracks = {t.name: t for t in anim.nla_tracks}
    assert clips <= set(tracks)
    for name in clips:
        strip = tracks[name].strips[0]
        assert strip.action.name == name and strip.action.use_fake_user
    assert anim.action is not None and anim.action.name in clips
    if hasattr(anim, "action_slot"):
        assert anim.action_slot is not None
    visible_armatures = [o for o in bpy.context.scene.objects if o.type == "ARMATURE" and not o.hide_get()]
    assert visible_armatures == [armature], "every clip is on ONE armature"
    assert set(meta(armature)["animations"]) == clips
    assert set(bpy.context.scene.objects) == {model, armature, skinned[0]}, "no importer leftovers"
    assert not [c for c in bpy.data.collections if c.name.startswith("glTF_not_exported")]
    assert meta(armature)["rig_task_id"] == rig_task


# --- convert and export -------------------------------------------------------------------------

def test_convert_whole_asset_and_one_file_per_part_with_deterministic_names(connected, tmod, tmp_path):
    api, s = tmod("api"), bpy.context.scene.tripo
    root, parts = parts_asset(api, "a toy cart with wheels")
    gen_task = meta(root)["task_id"]
    order = list(meta(root)["part_names"])
    folder = tmp_path / "exports"
    object_count = len(bpy.data.objects)

    s.export_format = "STL"
    s.export_dir = str(folder)
    s.flatten_bottom = True
    s.pivot_to_center_bottom = True
    s.scale_factor = 2.0
    select(root)
    assert bpy.ops.tripo.convert() == {"FINISHED"}
    create = connected.creates()[-1]
    assert create["path"] == "/v3/models/convert"
    sent = create["json"]
    assert {k: sent[k] for k in ("input", "format", "flatten_bottom", "pivot_to_center_bottom",
                                 "scale_factor")} == {
        "input": gen_task, "format": "STL", "flatten_bottom": True,
        "pivot_to_center_bottom": True, "scale_factor": 2.0}
    # the options not chosen go at their defaults (fbx_preset is for FBX only)
    assert sent["export_orientation"] == "+x" and sent["texture_size"] == 4096
    assert "fbx_preset" not in sent
    assert (folder / "06_export_full_stl.stl").is_file()

    chosen = [p for p in parts if p.name in ("handle", "body")]
    select(*chosen)
    s.export_per_part = True
    s.flatten_bottom = s.pivot_to_center_bottom = False
    s.scale_factor = 1.0
    assert bpy.ops.tripo.convert() == {"FINISHED"}
    per_part = connected.creates()[-2:]
    assert sorted(c["json"]["part_names"][0] for c in per_part) == ["body", "handle"]
    assert all(len(c["json"]["part_names"]) == 1 and c["json"]["input"] == gen_task for c in per_part)
    for part in chosen:
        name = f"08_export_part_stl__{order.index(part.name) + 1:03d}__{part.name}.stl"
        assert (folder / name).is_file(), name
    assert len(bpy.data.objects) == object_count, "exports import nothing"

    # The other formats through the scripting API, all at once.
    formats = {"OBJ": "06_export_full_obj.zip", "FBX": "06_export_full_fbx.fbx",
               "GLTF": "06_export_full_gltf.zip", "USDZ": "06_export_full_usdz.usdz",
               "3MF": "06_export_full_3mf.3mf"}
    if not HAS_USD:
        del formats["USDZ"]
    ids = [i for fmt in formats for i in api.convert(root, fmt, str(folder), wait_for_result=False)]
    results = api.wait(ids)
    paths = sorted(p for r in results for p in tmod("blender.selection.jobs").export_files(r.job))
    assert paths == sorted(str(folder / name) for name in formats.values())
    fbx_create = next(c for c in connected.creates() if c["json"].get("format") == "FBX")
    assert "part_names" not in fbx_create["json"]

    # Every file opens in Blender's importers.
    def imports(fn, path) -> int:
        before = set(bpy.data.objects)
        fn(filepath=str(path))
        return len([o for o in bpy.data.objects if o not in before and o.type == "MESH"])

    assert imports(bpy.ops.wm.stl_import, folder / "06_export_full_stl.stl") == 1
    assert imports(bpy.ops.wm.stl_import, folder / f"08_export_part_stl__{order.index('handle') + 1:03d}__handle.stl") == 1
    with zipfile.ZipFile(folder / formats["OBJ"]) as archive:
        archive.extractall(tmp_path / "obj")
    assert imports(bpy.ops.wm.obj_import, next((tmp_path / "obj").rglob("*.obj"))) >= 1
    assert imports(bpy.ops.import_scene.fbx, folder / formats["FBX"]) >= 1
    with zipfile.ZipFile(folder / formats["GLTF"]) as archive:
        archive.extractall(tmp_path / "gltf")
    assert imports(bpy.ops.import_scene.gltf, next((tmp_path / "gltf").rglob("*.gltf"))) >= 1
    if HAS_USD:
        assert imports(bpy.ops.wm.usd_import, folder / formats["USDZ"]) >= 1
    with zipfile.ZipFile(folder / formats["3MF"]) as archive:
        assert any(n.endswith(".model") for n in archive.namelist())


# --- bring any object to Tripo --------------------------------------------------------------------

def test_bring_a_hand_made_mesh_to_tripo_then_retexture_it(connected, tmod):
    s = bpy.context.scene.tripo
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(1.0, 2.0, 0.5))
    cube = bpy.context.active_object
    cube.name = "Handmade crate"
    cube.rotation_euler.z = 0.3
    handmade = bpy.data.materials.new("Handmade wood")
    cube.data.materials.append(handmade)
    bpy.context.view_layer.update()
    world, mesh, vertices = cube.matrix_world.copy(), cube.data, len(cube.data.vertices)
    bounds = world_bounds([cube])

    select(cube)
    assert connected.creates() == []
    assert bpy.ops.tripo.bring_to_tripo() == {"FINISHED"}
    uploads = [r for r in connected.requests() if r["path"].startswith("/v3/files")]
    creates = connected.creates()
    assert len(uploads) == 1 and [c["path"] for c in creates] == ["/v3/models/import"]
    assert creates[0]["json"]["input"].startswith("file_")
    import_task = task_of(connected, "import_model")
    m = meta(cube)
    assert m["task_type"] == "import_model" and m["task_id"] == import_task and m["role"] == "model"
    assert cube.data is mesh and len(mesh.vertices) == vertices, "the mesh is not changed"

    s.texture_prompt = "mossy stone"
    assert bpy.ops.tripo.retexture() == {"FINISHED"}
    body = connected.creates()[-1]["json"]
    assert connected.creates()[-1]["path"] == "/v3/models/texture"
    assert body["input"] == import_task and "part_names" not in body
    texture_task = task_of(connected, "texture_model")
    assert close(cube.matrix_world, world)
    assert close(world_bounds([cube]), bounds), "the textured mesh sits where the cube was"
    assert materials(cube) and all(n.startswith("tex_") for n in materials(cube))
    assert handmade.use_fake_user
    assert [c.split(":")[0] for c in meta(cube)["chain"]] == ["import_model", "texture_model"]
    assert meta(cube)["model_task_id"] == texture_task

    # A mesh not brought first (here from the scripting API): one job imports it, then textures it.
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.5, location=(-2.0, 0.0, 0.5))
    sphere = bpy.context.active_object
    select()
    count = len(connected.creates())
    result = tmod("api").retexture(sphere, "mossy stone")
    assert result.imported.objects == [sphere]
    new = connected.creates()[count:]
    assert [c["path"] for c in new] == ["/v3/models/import", "/v3/models/texture"]
    assert new[1]["json"]["input"] == task_of(connected, "import_model")
    assert [c.split(":")[0] for c in meta(sphere)["chain"]] == ["import_model", "texture_model"]
    assert materials(sphere) and all(n.startswith("tex_") for n in materials(sphere))


# --- refusals -----------------------------------------------------------------------------------

FAKE_IDS = iter(f"00000000-0000-4000-8000-{n:012d}" for n in range(1, 1000))


def fake_asset(md, name: str, task_type: str, parts=("left", "right"), **extra):
    """An asset with Tripo metadata but no real task behind it (refusals never send it)."""
    task_id = next(FAKE_IDS)
    asset_id = next(FAKE_IDS)
    common = {"asset_id": asset_id, "task_id": task_id, "task_type": task_type,
              "model_task_id": task_id, "chain": [f"{task_type}:{task_id}"], **extra}
    root = bpy.data.objects.new(name, None)
    bpy.context.scene.collection.objects.link(root)
    md.write(root, {**common, "role": "asset", "part_names": list(parts)})
    objects = []
    for part in parts:
        mesh = bpy.data.meshes.new(part)
        mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
        obj = bpy.data.objects.new(part, mesh)
        bpy.context.scene.collection.objects.link(obj)
        obj.parent = root
        md.write(obj, {**common, "role": "part", "part_name": part})
        objects.append(obj)
    return root, objects


class FakeLayout:
    """Stands in for a panel's layout: every call returns itself, operators return a namespace."""

    def __getattr__(self, name):
        if name == "operator":
            return lambda *a, **k: type("Op", (), {})()
        return lambda *a, **k: self

    def __setattr__(self, name, value):
        pass


@pytest.mark.parametrize("setup, operator, expected", [
    ("nothing", "retexture", "(?i)select a tripo asset"),
    ("camera", "retexture", "(?i)not a mesh"),
    ("camera", "bring_to_tripo", "(?i)not a mesh"),
    ("two_assets", "retexture", "(?i)2 different tripo assets"),
    ("plain", "animate", "(?i)rig .* first"),
    ("plain", "complete", "(?i)segment .* first"),
    ("segmented", "convert", "(?i)cannot take the result of a segmentation"),
    ("segmented", "retexture", "(?i)texturing needs"),
    ("rigged", "segment", "(?i)segmentation cannot take the result of a rig"),
    ("mixed", "lowpoly", "(?i)mixes tripo objects and other objects"),
    ("tripo", "bring_to_tripo", "(?i)already comes from tripo"),
    ("plain_root", "convert_per_part", "(?i)solo has no parts"),
])
def test_refusals_are_clear_and_send_nothing(connected, tmod, setup, operator, expected):
    md = tmod("blender.metadata")
    s = bpy.context.scene.tripo
    plain_root, plain_parts = fake_asset(md, "Plain", "text_to_model")
    if setup == "nothing":
        select()
    elif setup == "camera":
        camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
        bpy.context.scene.collection.objects.link(camera)
        select(camera)
    elif setup == "two_assets":
        _other_root, other_parts = fake_asset(md, "Other", "text_to_model")
        select(plain_parts[0], other_parts[0])
    elif setup == "plain":
        select(plain_parts[0])
    elif setup == "segmented":
        _root, parts = fake_asset(md, "Segmented", "mesh_segmentation")
        select(*parts)
    elif setup == "rigged":
        root, _parts = fake_asset(md, "Rigged", "animate_rig", parts=("body",))
        select(root)
    elif setup == "mixed":
        bpy.ops.mesh.primitive_cube_add()
        select(plain_parts[0], bpy.context.active_object)
    elif setup == "tripo":
        select(plain_root)
    elif setup == "plain_root":
        root = bpy.data.objects.new("Solo", bpy.data.meshes.new("Solo"))
        root.data.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [], [(0, 1, 2)])
        bpy.context.scene.collection.objects.link(root)
        task_id = next(FAKE_IDS)
        md.write(root, {"asset_id": next(FAKE_IDS), "task_id": task_id, "task_type": "text_to_model",
                        "model_task_id": task_id, "role": "model"})
        select(root)
        s.export_per_part = True
        operator = "convert"
    with pytest.raises(RuntimeError, match=expected):
        getattr(bpy.ops.tripo, operator)()
    assert connected.creates() == []
    assert not [r for r in connected.requests() if r["path"].startswith("/v3/files")]

    # The panel draws every state without errors (greyed-out buttons carry the reason).
    for name in ("TRIPO_PT_selection", "TRIPO_PT_selection_texture", "TRIPO_PT_selection_mesh",
                 "TRIPO_PT_selection_rig", "TRIPO_PT_selection_export"):
        panel = getattr(bpy.types, name)
        panel.draw(type("Panel", (), {"layout": FakeLayout()})(), bpy.context)


def test_job_building_rules(tmod):
    analysis, jobs, md = tmod("blender.selection.analysis"), tmod("blender.selection.jobs"), tmod("blender.metadata")
    root, parts = fake_asset(md, "Robot", "text_to_model", parts=("head", "torso"))
    sel = analysis.analyze([parts[0]])
    assert not sel.whole and sel.part_names == ["head"] and sel.root is root
    assert sel.model_task_type == "text_to_model"
    # Granularity is only sent with segmentation model v2.0.
    job = jobs.build_jobs("segment", sel, model=None, segmentation_granularity="detailed")[0]
    assert job.steps[0].params == {"input": sel.model_task_id}
    # Skeletons that need a newer rig model get one.
    job = jobs.build_jobs("rig", analysis.analyze([root]), rig_type="biped", spec="unreal")[0]
    assert job.steps[0].params["model"] == "v2.5-20260210"
    # Retexturing the root: no part_names.
    job = jobs.build_jobs("retexture", analysis.analyze([root, parts[0]]), prompt="gold")[0]
    assert "part_names" not in job.steps[0].params
    assert job.steps[0].params["texture_prompt"] == {"text": "gold"}


def test_animations_are_parsed_and_split_by_five(tmod):
    selection = tmod("blender.selection.jobs")
    assert selection.parse_animations("idle, walk") == ["preset:idle", "preset:walk"]  # v3.0 rigs
    assert selection.parse_animations("idle, walk", "v1.0-20240301") == ["preset:biped:idle",
                                                                          "preset:biped:walk"]
    assert selection.parse_animations("preset:walk run", "v2.5-20260210") == ["preset:walk", "preset:run"]
    assert selection.parse_animations(["preset:quadruped:walk"]) == ["preset:quadruped:walk"]
    assert selection.export_stem("STL") == "06_export_full_stl"
    assert selection.export_stem("STL", "Handle / top", 3) == "08_export_part_stl__003__Handle_top"


# --- undo and deleted targets ---------------------------------------------------------------------

def test_a_retexture_whose_target_is_gone_lands_as_a_new_asset_with_its_metadata(connected, tmod):
    """Undo (or a deletion) took away what a paid result was for: it is kept, not refused."""
    api = tmod("api")
    root = api.generate("a painted mug").root
    job_id = api.retexture(root, "glazed blue", wait_for_result=False)
    for obj in [root, *root.children_recursive]:
        bpy.data.objects.remove(obj, do_unlink=True)
    result = api.wait(job_id, timeout=60)[0]
    assert result.job["state"] == "imported"
    landed = [o for o in bpy.data.objects if "tripo" in o and meta(o)["job_id"] == job_id]
    assert landed, "the paid result is in the file"
    assert meta(landed[0])["task_type"] == "texture_model"
    assert meta(landed[0])["task_id"] == task_of(connected, "texture_model")
    notices = [n.text for n in tmod("blender.runtime").get_runtime().notices]
    assert any("added as a new asset" in text for text in notices), notices


def test_selection_actions_are_undo_steps_that_keep_the_uid(connected, tmod):
    """The action writes obj["tripo_uid"] inside its own undo step (UNDO flag), and is not
    replayed by Repeat Last (no REGISTER flag): undoing it cannot drop a uid under a paid job."""
    for name in ("TRIPO_OT_retexture", "TRIPO_OT_bring_to_tripo", "TRIPO_OT_segment"):
        options = getattr(bpy.types, name).bl_options
        assert "UNDO" in options and "REGISTER" not in options
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.active_object
    select(cube)
    assert bpy.ops.tripo.bring_to_tripo() == {"FINISHED"}
    assert cube.get("tripo_uid") and meta(cube)["task_type"] == "import_model"
