"""Image to splat and image to depth, end to end against the emulator: from the scripting API and
from the Generate panel's Image mode, down to the objects, their metadata and the kept files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import bpy
import pytest

from conftest import write_png


def tripo_meta(obj):
    return obj["tripo"].to_dict()


def assert_sidecar_beside(path: str, task_id: str) -> None:
    sidecars = list(Path(path).parent.glob("*.task.json"))
    assert sidecars, f"no sidecar beside {path}"
    assert json.loads(sidecars[0].read_text())["task_id"] == task_id


def assert_splat(obj, connected, image_name: str) -> None:
    """What every splat lands as (panel, API, batch, import by task id)."""
    task_id = next(t for t, rec in connected.tasks().items() if rec["type"] == "image_to_splat")
    assert obj.type == "MESH" and len(obj.data.vertices) == 512 and not obj.data.polygons
    attributes = obj.data.attributes
    assert {"f_dc_0", "opacity", "scale_0", "rot_0", "splat_radius"} <= set(attributes.keys())
    assert obj.data.color_attributes.get("Col") is not None
    assert any(m.type == "NODES" for m in obj.modifiers)  # shown as points
    meta = tripo_meta(obj)
    assert meta["role"] == "splat" and meta["task_type"] == "image_to_splat"
    assert meta["task_id"] == task_id and meta["images"] == [image_name]
    assert meta["point_count"] == 512
    assert meta["source_file"].endswith(".ply") and os.path.isfile(meta["source_file"])
    assert_sidecar_beside(meta["source_file"], task_id)
    assert obj.asset_data is not None and "image_to_splat" in {t.name for t in obj.asset_data.tags}


def assert_depth_plane(obj, connected, depth_kind: str) -> None:
    """What every depth map lands as (panel, API, batch, import by task id)."""
    task_id = next(t for t, rec in connected.tasks().items() if rec["type"] == "image_to_depth")
    assert obj.type == "MESH"
    displace = obj.modifiers["Depth"]
    assert displace.type == "DISPLACE" and displace.texture_coords == "UV"
    image = displace.texture.image
    assert image.packed_file is None and os.path.isfile(image.filepath)  # kept as a file
    assert image.size[0] > 0 and image.colorspace_settings.name == "Non-Color"
    assert tuple(round(v, 3) for v in obj.dimensions[:2]) == (1.0, 1.0)  # square depth map
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    assert evaluated.dimensions.z > 0.05  # the relief is there
    meta = tripo_meta(obj)
    assert meta["role"] == "depth" and meta["task_type"] == "image_to_depth" and meta["task_id"] == task_id
    assert meta["depth_kind"] == depth_kind and meta["source_file"] == bpy.path.abspath(image.filepath)
    assert meta["depth_image"] == image.name
    assert_sidecar_beside(meta["source_file"], task_id)
    assert obj.asset_data is not None and obj.preview.image_size[0] > 0  # preview: the depth map


def test_image_to_splat_from_the_api(connected, tmod, tmp_path):
    api = tmod("api")
    bpy.context.scene.cursor.location = (2.0, 0.0, 0.0)
    result = api.image_to_splat(str(write_png(tmp_path / "statue.png")), model_seed=7)
    create = connected.creates()[0]
    assert create["path"] == "/v3/generation/image-to-splat"
    assert create["json"]["input"].startswith("file_") and create["json"]["model_seed"] == 7
    obj = result.root
    assert obj.name == "statue splat"
    assert tuple(round(v, 4) for v in obj.location) == (2.0, 0.0, 0.0)
    assert_splat(obj, connected, "statue.png")
    assert result.files["1:model_url"] == tripo_meta(obj)["source_file"]


def test_image_to_depth_from_the_api_is_a_displaced_plane(connected, tmod, tmp_path):
    api = tmod("api")
    source = str(write_png(tmp_path / "room.png"))
    result = api.image_to_depth(source, location=(0.0, 3.0, 0.0))
    create = connected.creates()[0]
    assert create["path"] == "/v3/generation/image-to-depth"
    assert create["json"]["kind"] == "gray" and create["json"]["process_res"] == 504  # sent, not left to the server
    obj = result.root
    assert obj.name == "room depth"
    assert tuple(round(v, 4) for v in obj.location) == (0.0, 3.0, 0.0)
    assert_depth_plane(obj, connected, "gray")
    assets = tmod("blender.assets")
    assert obj.asset_data.catalog_id == assets.catalog_id(assets.catalog_path("Interactive", "depth"))
    # Textured with the photo it was made from: a relief of the picture.
    material = obj.data.materials[0]
    images = [n.image for n in material.node_tree.nodes if n.type == "TEX_IMAGE"]
    assert images and images[0].filepath == source


def test_run_task_lands_splat_and_depth_the_same_way(connected, tmod, tmp_path):
    api = tmod("api")
    image = str(write_png(tmp_path / "cup.png"))
    depth = api.run_task("image_to_depth", input=image, process_res=256)
    assert depth.root.modifiers.get("Depth") is not None
    assert connected.creates()[0]["json"]["process_res"] == 256
    splat = api.run_task("image_to_splat", image=image)
    assert tripo_meta(splat.root)["role"] == "splat"


def test_unreadable_splat_keeps_the_file_and_the_job(connected, tmod, tmp_path, monkeypatch):
    api, image_results = tmod("api"), tmod("blender.image_results")

    def refuse(**_kwargs):
        raise RuntimeError("not a PLY this Blender reads")
    monkeypatch.setattr(image_results, "_ply_import", refuse)
    result = api.image_to_splat(str(write_png(tmp_path / "odd.png")))
    assert result.job["state"] == "imported" and result.root is None
    assert os.path.isfile(result.files["1:model_url"])
    runtime = tmod("blender.runtime").get_runtime()
    assert any("the file is kept at" in n.text for n in runtime.notices)


@pytest.mark.parametrize("output,role", [("SPLAT", "splat"), ("DEPTH", "depth")])
def test_panel_image_mode_output_choice(connected, tmp_path, output, role):
    s = bpy.context.scene.tripo
    s.mode = "IMAGE"
    s.image_output = output
    s.image_path = str(write_png(tmp_path / "lamp.png"))
    assert bpy.ops.tripo.generate() == {"FINISHED"}
    creates = connected.creates()
    assert [c["path"] for c in creates] == [f"/v3/generation/image-to-{role}"]
    obj = next(o for o in bpy.data.objects if "tripo" in o)
    assert tripo_meta(obj)["role"] == role and obj.name == f"lamp {role}"
    if output == "SPLAT":
        assert_splat(obj, connected, "lamp.png")
    else:
        assert creates[0]["json"]["process_res"] == s.depth_process_res


def test_splat_and_depth_reimport_from_history_and_the_jobs_panel(connected, tmod, tmp_path):
    """Re-import lands a splat or depth map again as such (its file is no GLB), whether History
    (by task id) or the Jobs panel's Re-import (by job) asks."""
    api = tmod("api")
    image = str(write_png(tmp_path / "vase.png"))
    for make, role in ((api.image_to_splat, "splat"), (api.image_to_depth, "depth")):
        first = make(image)
        task_id, job_id = tripo_meta(first.root)["task_id"], tripo_meta(first.root)["job_id"]
        again = api.reimport(task_id)
        assert again.root is not first.root
        meta = tripo_meta(again.root)
        assert meta["role"] == role and meta["task_id"] == task_id
        assert meta["source_file"] == tripo_meta(first.root)["source_file"]
        before = {o.name for o in bpy.data.objects}
        assert bpy.ops.tripo.job_reimport(job_id=job_id) == {"FINISHED"}
        new = [o for o in bpy.data.objects if o.name not in before and "tripo" in o]
        assert new and all(tripo_meta(o)["role"] == role and tripo_meta(o)["job_id"] == job_id for o in new)
