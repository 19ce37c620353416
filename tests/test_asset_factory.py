"""The emulator's Blender asset factory: real files, checked by importing them back.

The factory runs in its own worker process (started by `AssetFactory`); this test process
re-imports what it made with its own Blender (`bpy`) and checks real properties. Each base asset
is made once per module. The worker command is $TRIPO_BLENDER_COMMAND (a shell-split string),
else $BLENDER_EXECUTABLE, else this Python (which then must have the bpy module).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")
from conftest import HAS_USD, NO_USD_REASON  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

from emulator.factory_client import (  # noqa: E402
    SCRIPT_PATH,
    AssetFactory,
    AssetFactoryError,
    worker_command,
)
from emulator.server import resolve_blender_command  # noqa: E402


# --- helpers working in this test's own Blender session ----------------------------------------

def empty_scene() -> None:
    # read_homefile, not read_factory_settings: the latter would also reset the preferences
    # (and disable add-ons other tests of this session rely on).
    bpy.ops.wm.read_homefile(use_empty=True)


def import_file(path: str | Path) -> None:
    """Imports a file into an empty scene, by extension."""
    empty_scene()
    path = Path(path)
    ext = path.suffix.lower()
    if ext in (".glb", ".gltf"):
        bpy.ops.import_scene.gltf(filepath=str(path))
    elif ext == ".fbx":
        bpy.ops.import_scene.fbx(filepath=str(path))
    elif ext == ".obj":
        bpy.ops.wm.obj_import(filepath=str(path))
    elif ext == ".stl":
        bpy.ops.wm.stl_import(filepath=str(path))
    elif ext in (".usd", ".usdz", ".usdc", ".usda"):
        bpy.ops.wm.usd_import(filepath=str(path))
    else:
        raise ValueError(path)


def meshes() -> dict:
    """Mesh objects of the model by name (not the glTF importer's hidden bone-shape helper)."""
    return {o.name: o for o in bpy.context.scene.objects if o.type == "MESH"
            and not any(c.name.startswith("glTF_not_exported") for c in o.users_collection)}


def armatures() -> list:
    return [o for o in bpy.context.scene.objects if o.type == "ARMATURE"]


def triangles(obj) -> int:
    return sum(len(p.vertices) - 2 for p in obj.data.polygons)


def material_names(obj) -> list[str]:
    return [m.name if m else None for m in obj.data.materials]


def world_points(objs, evaluated: bool = True) -> list:
    depsgraph = bpy.context.evaluated_depsgraph_get()
    points = []
    for obj in objs:
        source = obj.evaluated_get(depsgraph) if evaluated else obj
        mesh = source.to_mesh()
        points.extend(source.matrix_world @ v.co for v in mesh.vertices)
        source.to_mesh_clear()
    return points


def bbox(objs):
    points = world_points(objs)
    lo = [min(p[i] for p in points) for i in range(3)]
    hi = [max(p[i] for p in points) for i in range(3)]
    return lo, hi


def image_nodes(obj) -> list:
    return [n for m in obj.data.materials if m and m.node_tree
            for n in m.node_tree.nodes if n.type == "TEX_IMAGE" and n.image is not None]


# --- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def factory(tmp_path_factory):
    instance = AssetFactory(resolve_blender_command(), tmp_path_factory.mktemp("asset-cache"))
    yield instance
    instance.close()


@pytest.fixture(scope="module")
def robot(factory):
    """A joined, textured prop (the prompt picks the robot archetype)."""
    return factory.produce("model", {"prompt": "a small robot", "seed": 7, "texture": True,
                                     "pbr": True, "face_limit": None, "quad": False,
                                     "generate_parts": False})


@pytest.fixture(scope="module")
def crate_parts(factory):
    return factory.produce("model", {"prompt": "a treasure chest", "seed": 3, "texture": False,
                                     "pbr": False, "face_limit": None, "quad": False,
                                     "generate_parts": True})


@pytest.fixture(scope="module")
def segmented(factory, robot):
    return factory.produce("segment", {"part_names": robot["info"]["part_names"]},
                           {"model": robot["files"]["model"]})


@pytest.fixture(scope="module")
def rigged(factory, robot):
    return factory.produce("rig", {"rig_type": "biped", "spec": "tripo"},
                           {"model": robot["files"]["model"]})


@pytest.fixture(scope="module")
def animated(factory, rigged):
    return factory.produce("retarget", {"animations": ["preset:walk", "preset:idle",
                                                       "preset:quadruped:run"],
                                        "animate_in_place": True},
                           {"model": rigged["files"]["model"]})


@pytest.fixture(scope="module")
def offset_model(tmp_path_factory):
    """A GLB made here, NOT centred and not on the ground, with a tilted (sloped) bottom."""
    empty_scene()
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(3.0, -2.0, 1.5), rotation=(0.3, 0.0, 0.0))
    bpy.ops.mesh.primitive_cylinder_add(radius=0.3, depth=1.0, location=(3.6, -2.0, 2.2))
    path = tmp_path_factory.mktemp("offset") / "offset.glb"
    bpy.ops.export_scene.gltf(filepath=str(path), export_format="GLB")
    empty_scene()
    return path


# --- model -------------------------------------------------------------------------------------

def test_model_joined_is_one_textured_mesh_with_counts(robot):
    info = robot["info"]
    assert info["archetype"] == "robot"
    assert 3 <= len(info["part_names"]) <= 6
    import_file(robot["files"]["model"])
    objs = meshes()
    assert list(objs) == ["a_small_robot"]
    obj = objs["a_small_robot"]
    assert image_nodes(obj), "a textured model has an image texture"
    assert triangles(obj) == info["faces"]
    lo, hi = bbox([obj])
    assert abs(lo[2]) < 1e-4, "stands on the ground"
    assert 1.0 <= hi[2] - lo[2] <= 2.0, "about 1-2 m tall"
    assert abs(lo[0] + hi[0]) < 0.02 and abs(lo[1] + hi[1]) < 0.1, "centred in XY"


def test_model_parts_are_named_nodes_with_grey_materials(crate_parts):
    names = crate_parts["info"]["part_names"]
    assert {"body", "lid"} <= set(names)
    import_file(crate_parts["files"]["model"])
    objs = meshes()
    assert sorted(objs) == sorted(names)
    for name, obj in objs.items():
        assert material_names(obj) == [f"{name}_mat"]
        assert not image_nodes(obj), "parts are untextured"


def test_model_face_limit_and_preview(factory):
    result = factory.produce("model", {"prompt": "a wooden chair", "seed": 1, "texture": True,
                                       "face_limit": 300, "quad": True})
    assert result["info"]["faces"] <= 300
    import_file(result["files"]["model"])
    assert sum(triangles(o) for o in meshes().values()) <= 300
    image = Path(result["files"]["rendered_image"])
    head = image.read_bytes()[:16]
    assert (head[:4] == b"RIFF" and head[8:12] == b"WEBP") or head[:4] == b"\x89PNG"
    loaded = bpy.data.images.load(str(image))
    assert tuple(loaded.size) == (256, 256)


@pytest.mark.skipif(os.environ.get("TRIPO_SLOW_TESTS") != "1",
                    reason="makes a 17 MB model with three 2048² textures (~15 s); "
                           "set TRIPO_SLOW_TESTS=1 to run it")
def test_realistic_profile_is_tripo_sized(factory):
    result = factory.produce("model", {"prompt": "a mossy boulder", "seed": 2, "texture": True,
                                       "pbr": True, "face_limit": None, "quad": False,
                                       "generate_parts": False, "profile": "realistic"})
    glb = Path(result["files"]["model"])
    assert 15 <= glb.stat().st_size / 1e6 <= 25
    data = glb.read_bytes()
    (material_json,) = json.loads(data[20:20 + int.from_bytes(data[12:16], "little")])["materials"]
    pbr = material_json["pbrMetallicRoughness"]
    assert {"baseColorTexture", "metallicRoughnessTexture"} <= set(pbr)
    assert "normalTexture" in material_json
    assert material_json["occlusionTexture"]["index"] == pbr["metallicRoughnessTexture"]["index"]
    import_file(glb)
    (obj,) = meshes().values()
    assert 190_000 <= triangles(obj) <= 210_000
    assert obj.data.uv_layers
    material = obj.data.materials[0]
    textures = {n.image.name: n for n in image_nodes(obj)}
    assert len(textures) == 3
    assert all(tuple(n.image.size) == (2048, 2048) for n in textures.values())
    bsdf = next(n for n in material.node_tree.nodes if n.type == "BSDF_PRINCIPLED")

    def source_image(socket):
        """The image a socket is fed from, through Separate Color / Normal Map nodes."""
        node = socket.links[0].from_node
        while node.type != "TEX_IMAGE":
            node = node.inputs[0].links[0].from_node if node.type == "SEPARATE_COLOR" else \
                node.inputs["Color"].links[0].from_node
        return node.image

    base = source_image(bsdf.inputs["Base Color"])
    orm = source_image(bsdf.inputs["Roughness"])
    assert source_image(bsdf.inputs["Metallic"]) == orm  # one ORM image, glTF's layout
    normal = source_image(bsdf.inputs["Normal"])
    assert len({base, orm, normal}) == 3
    assert normal.colorspace_settings.name == "Non-Color"
    # Real content, not flat colour: every texture varies across the image.
    for image in (base, orm, normal):
        pixels = np.empty(len(image.pixels), dtype=np.float32)
        image.pixels.foreach_get(pixels)
        assert pixels.reshape(-1, 4)[:, :3].std(axis=0).max() > 0.03, image.name


def test_same_prompt_same_archetype_other_prompt_may_differ(factory):
    a = factory.produce("model", {"prompt": "a wooden barrel", "seed": 1, "texture": False})
    b = factory.produce("model", {"prompt": "a wooden barrel", "seed": 2, "texture": False})
    assert a["info"]["archetype"] == b["info"]["archetype"] == "barrel"
    assert a["info"]["part_names"] == b["info"]["part_names"]


# --- segment / texture / complete / decimate --------------------------------------------------

def test_segment_names_parts_in_order(segmented, robot):
    assert segmented["info"]["part_names"] == robot["info"]["part_names"]
    import_file(segmented["files"]["model"])
    objs = meshes()
    assert sorted(objs) == sorted(robot["info"]["part_names"])
    # The names follow the geometry: the head is the highest part, legs the lowest.
    assert bbox([objs["head"]])[0][2] > bbox([objs["torso"]])[0][2] > bbox([objs["leg_left"]])[0][2]
    assert bbox([objs["leg_left"]])[0][0] < bbox([objs["leg_right"]])[0][0]
    for obj in objs.values():
        assert image_nodes(obj), "segmentation keeps the materials"


def test_segment_without_matching_names_numbers_parts(factory, robot):
    result = factory.produce("segment", {"part_names": ["a", "b"]}, {"model": robot["files"]["model"]})
    count = len(robot["info"]["part_names"])
    assert result["info"]["part_names"] == [f"part_{i:03d}" for i in range(1, count + 1)]


def test_texture_changes_exactly_the_named_parts(factory, segmented):
    import_file(segmented["files"]["model"])
    before = {name: material_names(obj) for name, obj in meshes().items()}
    result = factory.produce("texture", {"prompt": "rusty metal", "part_names": ["head", "torso"],
                                         "pbr": True}, {"model": segmented["files"]["model"]})
    assert sorted(result["info"]["retextured"]) == ["head", "torso"]
    import_file(result["files"]["model"])
    after = {name: obj for name, obj in meshes().items()}
    assert sorted(after) == sorted(before)
    for name, obj in after.items():
        if name in ("head", "torso"):
            (material,) = material_names(obj)
            assert material.startswith("tex_") and [material] != before[name]
            assert image_nodes(obj) and obj.data.uv_layers
            bsdf = next(n for n in obj.data.materials[0].node_tree.nodes if n.type == "BSDF_PRINCIPLED")
            assert bsdf.inputs["Metallic"].default_value > 0.3, "pbr sets metallic"
        else:
            assert material_names(obj) == before[name], f"{name} must keep its material"
    assert material_names(after["head"]) != material_names(after["torso"])


def test_complete_changes_only_the_named_parts(factory, crate_parts):
    import_file(crate_parts["files"]["model"])
    before = {name: (len(o.data.vertices), len(o.data.polygons)) for name, o in meshes().items()}
    result = factory.produce("complete", {"part_names": ["lid"]}, {"model": crate_parts["files"]["model"]})
    import_file(result["files"]["model"])
    after = {name: (len(o.data.vertices), len(o.data.polygons)) for name, o in meshes().items()}
    assert sorted(after) == sorted(before)
    assert after["lid"] != before["lid"]
    assert {k: v for k, v in after.items() if k != "lid"} == {k: v for k, v in before.items() if k != "lid"}


def test_decimate_total_limit(factory, robot):
    limit = 900
    assert robot["info"]["faces"] > limit
    result = factory.produce("decimate", {"face_limit": limit, "quad": False, "part_names": None},
                             {"model": robot["files"]["model"]})
    import_file(result["files"]["model"])
    total = sum(triangles(o) for o in meshes().values())
    assert total <= limit < robot["info"]["faces"]
    assert total == result["info"]["faces"]
    assert total > limit * 0.5, "decimation keeps close to the budget"


def test_decimate_named_part_only(factory, crate_parts):
    import_file(crate_parts["files"]["model"])
    before = {name: triangles(o) for name, o in meshes().items()}
    result = factory.produce("decimate", {"face_limit": 120, "quad": False, "part_names": ["body"]},
                             {"model": crate_parts["files"]["model"]})
    import_file(result["files"]["model"])
    after = {name: triangles(o) for name, o in meshes().items()}
    assert after["body"] <= 120 < before["body"]
    assert {k: v for k, v in after.items() if k != "body"} == {k: v for k, v in before.items() if k != "body"}


# --- rig / retarget ----------------------------------------------------------------------------

def assert_skinned(expected_bones: int | None = None):
    (arm,) = armatures()
    objs = list(meshes().values())
    assert len(objs) == 1
    mesh = objs[0]
    assert mesh.parent == arm
    modifiers = [m for m in mesh.modifiers if m.type == "ARMATURE"]
    assert modifiers and modifiers[0].object == arm
    bone_names = {b.name for b in arm.data.bones}
    groups = {g.name for g in mesh.vertex_groups}
    assert groups and groups <= bone_names
    unweighted = [v.index for v in mesh.data.vertices if not any(g.weight > 0 for g in v.groups)]
    assert not unweighted, "every vertex follows some bone"
    if expected_bones is not None:
        assert len(arm.data.bones) == expected_bones
    return arm, mesh


def test_rig_biped_is_a_skinned_armature(rigged):
    info = rigged["info"]
    assert info["rig_type"] == "biped" and info["bones"] > 10
    import_file(rigged["files"]["model"])
    assert_skinned(info["bones"])
    assert not bpy.data.actions, "a rig has no animation"


@pytest.mark.parametrize("rig_type", ["quadruped", "serpentine"])
def test_rig_other_types(factory, robot, rig_type):
    result = factory.produce("rig", {"rig_type": rig_type, "spec": "tripo"},
                             {"model": robot["files"]["model"]})
    assert result["info"]["rig_type"] == rig_type
    import_file(result["files"]["model"])
    assert_skinned(result["info"]["bones"])


def test_retarget_actions_exist_and_move_differently(animated):
    info = animated["info"]
    assert info["animations"] == ["walk", "idle", "run"]
    import_file(animated["files"]["model"])
    names = sorted(a.name for a in bpy.data.actions)
    assert names == sorted(info["action_names_on_import"])
    arm, mesh = assert_skinned()
    # Blender 4.2's glTF importer appends the armature's name ("walk_Armature"); 4.5+ does not.
    by_clip = {name.removesuffix(f"_{arm.name}"): name for name in names}
    assert {"walk", "idle", "run"} <= set(by_clip)
    ad = arm.animation_data
    for track in ad.nla_tracks:
        track.mute = True
    rest = [p.copy() for p in world_points([mesh])]
    poses = {}
    for name in ("walk", "idle", "run"):
        ad.action = bpy.data.actions[by_clip[name]]
        bpy.context.scene.frame_set(6)
        poses[name] = world_points([mesh])
        moved = max((a - b).length for a, b in zip(poses[name], rest))
        assert moved > 0.01, f"{name} visibly moves the mesh"
    for a, b in (("walk", "idle"), ("walk", "run"), ("idle", "run")):
        assert max((p - q).length for p, q in zip(poses[a], poses[b])) > 0.01, f"{a} == {b}"
    ad.action = None


# --- convert -----------------------------------------------------------------------------------

def convert(factory, model, **params):
    base = {"format": "STL", "flatten_bottom": False, "flatten_bottom_threshold": 0.01,
            "pivot_to_center_bottom": False, "scale_factor": 1.0, "face_limit": None,
            "with_animation": False, "export_orientation": None, "part_names": None,
            "texture_size": None, "texture_format": None, "fbx_preset": None}
    base.update(params)
    return factory.produce("convert", base, {"model": str(model)})


def test_convert_stl_pivot_and_scale(factory, offset_model):
    plain = convert(factory, offset_model)
    import_file(plain["files"]["model"])
    lo0, hi0 = bbox(list(meshes().values()))
    assert lo0[2] > 0.5 and lo0[0] > 2.0, "the input is off-centre and above the ground"

    pivoted = convert(factory, offset_model, pivot_to_center_bottom=True, scale_factor=2.0)
    import_file(pivoted["files"]["model"])
    lo, hi = bbox(list(meshes().values()))
    assert abs(lo[2]) < 1e-3
    assert abs(lo[0] + hi[0]) < 1e-3 and abs(lo[1] + hi[1]) < 1e-3
    for axis in range(3):
        assert abs((hi[axis] - lo[axis]) - 2.0 * (hi0[axis] - lo0[axis])) < 1e-3
    assert pivoted["info"]["min_z"] == pytest.approx(0.0, abs=1e-4)
    assert pivoted["info"]["bbox"] == pytest.approx([2 * (h - l) for h, l in zip(hi0, lo0)], abs=1e-3)


def test_convert_flatten_bottom(factory, offset_model):
    def bottom_vertices(result):
        import_file(result["files"]["model"])
        points = world_points(list(meshes().values()))
        low = min(p.z for p in points)
        return len({(round(p.x, 4), round(p.y, 4)) for p in points if p.z - low < 1e-4})

    plain = convert(factory, offset_model)
    flat = convert(factory, offset_model, flatten_bottom=True, flatten_bottom_threshold=0.2)
    assert bottom_vertices(flat) > bottom_vertices(plain)


def test_convert_part_names_and_face_limit(factory, crate_parts):
    result = convert(factory, crate_parts["files"]["model"], format="GLTF",
                     part_names=["body", "lid"], face_limit=300)
    assert sorted(result["info"]["part_names"]) == ["body", "lid"]
    assert result["info"]["faces"] <= 300


def test_convert_3mf_is_a_valid_package(factory, robot):
    result = convert(factory, robot["files"]["model"], format="3MF")
    path = Path(result["files"]["model"])
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        assert {"[Content_Types].xml", "_rels/.rels", "3D/3dmodel.model"} <= names
        root = ET.fromstring(archive.read("3D/3dmodel.model"))
    ns = {"m": "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"}
    assert root.get("unit") == "millimeter"
    vertices = root.findall(".//m:vertex", ns)
    tris = root.findall(".//m:triangle", ns)
    assert len(tris) == result["info"]["faces"] > 0
    assert max(int(t.get(k)) for t in tris for k in ("v1", "v2", "v3")) < len(vertices)
    assert root.findall(".//m:build/m:item", ns)


@pytest.mark.parametrize("fmt", ["STL", "OBJ", "FBX", "GLTF",
                                 pytest.param("USDZ", marks=pytest.mark.skipif(not HAS_USD, reason=NO_USD_REASON)),
                                 "GLB"])
def test_convert_formats_reimport(factory, robot, fmt, tmp_path):
    result = convert(factory, robot["files"]["model"], format=fmt, texture_size=32)
    assert result["info"]["format"] == fmt
    path = Path(result["files"]["model"])
    assert path.stat().st_size > 0
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            archive.extractall(tmp_path)
            names = archive.namelist()
        main_ext = ".obj" if fmt == "OBJ" else ".gltf"
        (path,) = [tmp_path / n for n in names if n.endswith(main_ext)]
        if fmt == "OBJ":
            assert any(n.endswith(".mtl") for n in names)
        assert any(n.endswith((".png", ".jpg", ".webp")) for n in names), "textures travel along"
    import_file(path)
    objs = list(meshes().values())
    assert objs, f"{fmt} re-imports with meshes"
    assert sum(triangles(o) for o in objs) >= result["info"]["faces"] * 0.9


def test_convert_fbx_keeps_animation(factory, animated):
    result = convert(factory, animated["files"]["model"], format="FBX", with_animation=True)
    import_file(result["files"]["model"])
    assert armatures() and bpy.data.actions


# --- import / render ---------------------------------------------------------------------------

def test_import_normalises_any_upload(factory, offset_model, tmp_path):
    stl = convert(factory, offset_model)["files"]["model"]
    upload = tmp_path / "upload.bin"  # uploads may have no extension: the format is sniffed
    upload.write_bytes(Path(stl).read_bytes())
    result = factory.produce("import", {"format": "stl"}, {"model": str(upload)})
    import_file(result["files"]["model"])
    assert sorted(meshes()) == sorted(result["info"]["part_names"])


def test_render_op(factory, robot):
    result = factory.produce("render", {}, {"model": robot["files"]["model"]})
    assert Path(result["files"]["rendered_image"]).stat().st_size > 500


# --- client behaviour: cache, errors, restarts, one-shot ---------------------------------------

def test_second_call_is_served_from_cache_without_blender(factory, robot):
    params = {"prompt": "a small robot", "seed": 7, "texture": True, "pbr": True,
              "face_limit": None, "quad": False, "generate_parts": False}
    started = time.monotonic()
    again = factory.produce("model", params)
    assert time.monotonic() - started < 0.5
    assert again == robot
    # A new client (as after a restart of the emulator) with a Blender that cannot even start.
    other = AssetFactory(["/nonexistent/blender"], factory.cache_dir)
    assert other.produce("model", params) == robot
    assert other.worker_pid is None
    assert Path(other.produce("model", params)["files"]["model"]).read_bytes() == \
        Path(robot["files"]["model"]).read_bytes()
    with pytest.raises(AssetFactoryError, match="cannot start Blender"):
        other.produce("model", {**params, "seed": 8})


def test_errors_are_reported_and_the_worker_survives(factory, segmented):
    with pytest.raises(AssetFactoryError, match="none of the parts"):
        factory.produce("texture", {"prompt": "x", "part_names": ["no_such_part"]},
                        {"model": segmented["files"]["model"]})
    pid = factory.worker_pid
    with pytest.raises(AssetFactoryError, match="unknown op"):
        factory.produce("explode", {})
    assert factory.worker_pid == pid
    assert factory.produce("model", {"prompt": "lamp", "seed": 1})["info"]["archetype"] == "lamp"
    assert not [p for p in factory.cache_dir.iterdir() if p.name.startswith(".tmp")]


def test_concurrent_calls_share_one_worker(factory):
    from concurrent.futures import ThreadPoolExecutor

    prompts = ["a red lamp", "a blue lamp", "a red lamp"]  # the third repeats the first
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda p: factory.produce("model", {"prompt": p, "seed": 5}), prompts))
    assert all(r["info"]["archetype"] == "lamp" for r in results)
    assert results[0] == results[2] and results[0] != results[1]


def test_a_dead_worker_is_restarted(factory):
    factory.produce("model", {"prompt": "a cart", "seed": 1})
    pid = factory.worker_pid
    assert pid
    factory._worker.process.kill()  # only the worker this test's factory started
    factory._worker.process.wait()
    result = factory.produce("model", {"prompt": "a cart", "seed": 2})
    assert result["info"]["archetype"] == "cart"
    assert factory.worker_pid not in (None, pid)


def test_one_shot_request(tmp_path):
    command = worker_command(resolve_blender_command())
    command = command[:command.index("--serve")]
    request = {"id": "once", "op": "model", "params": {"prompt": "stool", "seed": 1},
               "out_dir": str(tmp_path)}
    done = subprocess.run([*command, "--request", json.dumps(request)], capture_output=True,
                          text=True, timeout=300)
    answers = [json.loads(line.split("@@ASSET ", 1)[1]) for line in done.stdout.splitlines()
               if "@@ASSET " in line]
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(answers) == 1 and answers[0]["ok"] and answers[0]["id"] == "once"
    assert Path(answers[0]["files"]["model"]).is_file()
    assert SCRIPT_PATH.is_file()
