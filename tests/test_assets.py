"""Imported Tripo results as Blender assets: marked, described, tagged, in a catalog, with Tripo's
preview; the catalog file beside the .blend; a batch's .blend as an asset library."""

from __future__ import annotations

import json
import uuid

import bpy
import pytest

from test_batch import run_batch


def catalog_id(tmod, path: str) -> str:
    return tmod("blender.assets").catalog_id(path)


def preview_pixels(data_block) -> list[float]:
    preview = data_block.preview
    assert preview is not None
    width, height = preview.image_size
    assert width > 0 and height > 0
    values = [0.0] * (width * height * 4)
    preview.image_pixels_float.foreach_get(values)
    return values


def test_generated_model_is_an_asset_with_prompt_provider_tags_catalog_and_preview(connected, tmod):
    result = tmod("api").generate("a wooden treasure chest", face_limit=4000)
    obj = result.root
    assert obj.asset_data is not None, "a one-object asset is the object itself"
    asset = obj.asset_data
    assert asset.description == "a wooden treasure chest"
    assert asset.author == "Tripo"
    tags = {t.name for t in asset.tags}
    assert {"Tripo", "text_to_model", "v3.1-20260211"} <= tags
    assert asset.catalog_id == catalog_id(tmod, "Tripo/Interactive/model")
    assert str(uuid.UUID(asset.catalog_id)) == asset.catalog_id
    # The preview is Tripo's rendered image, not Blender's empty default.
    pixels = preview_pixels(obj)
    assert max(pixels) > 0.05
    assert obj["tripo"]["task_id"]  # the object metadata is unchanged


def test_parts_become_one_collection_asset_holding_every_object(connected, tmod):
    bpy.context.scene.tripo.asset_project = "Props"
    result = tmod("api").generate("a toy cart with wheels", texture=False, pbr=False, generate_parts=True)
    root = result.root
    assert root.asset_data is None
    collection = bpy.data.collections[root.name]
    assert collection.asset_data is not None
    assert set(collection.objects) == set(result.objects)
    assert tuple(collection.instance_offset) == pytest.approx(tuple(root.location))
    tags = {t.name for t in collection.asset_data.tags}
    part_names = list(root["tripo"]["part_names"])
    assert part_names and {f"part:{n}" for n in part_names} <= tags
    assert collection.asset_data.catalog_id == catalog_id(tmod, "Tripo/Props/parts")
    assert max(preview_pixels(collection)) > 0.05
    assert tmod("blender.assets").marked_id_of(root) == collection


def test_preference_off_marks_nothing_but_keeps_the_metadata(connected, tmod, prefs):
    prefs.mark_as_assets = False
    try:
        result = tmod("api").generate("a brass lantern")
    finally:
        prefs.mark_as_assets = True
    assert result.root.asset_data is None
    assert not any(c.asset_data for c in bpy.data.collections)
    assert result.root["tripo"]["prompt"] == "a brass lantern"


def test_catalog_file_is_written_beside_the_blend_and_the_asset_survives_a_reload(connected, tmod, tmp_path):
    result = tmod("api").generate("a stone well")
    name = result.root.name
    cats = tmp_path / "blender_assets.cats.txt"
    assert not cats.exists()  # an unsaved file has nowhere to put it yet
    # A catalog of the user's own is kept as it is.
    cats.write_text("VERSION 1\n\n0a8c1bb1-7a5d-4c5f-b3a1-0f1e1a2b3c4d:Mine/Rocks:Mine-Rocks\n")
    blend = tmp_path / "scene.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    text = cats.read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0] == "VERSION 1"
    assert "0a8c1bb1-7a5d-4c5f-b3a1-0f1e1a2b3c4d:Mine/Rocks:Mine-Rocks" in lines
    model_id = catalog_id(tmod, "Tripo/Interactive/model")
    assert f"{model_id}:Tripo/Interactive/model:Tripo-Interactive-model" in lines
    assert any(line.split(":")[1] == "Tripo" for line in lines[1:])  # the parent catalogs too
    # Saving again adds nothing twice.
    bpy.ops.wm.save_mainfile()
    assert cats.read_text() == text

    bpy.ops.wm.open_mainfile(filepath=str(blend))
    obj = bpy.data.objects[name]
    assert obj.asset_data is not None and obj.asset_data.catalog_id == model_id
    assert max(preview_pixels(obj)) > 0.05
    bpy.ops.wm.read_homefile(use_empty=True)  # a library cannot be the open file
    with bpy.data.libraries.load(str(blend), assets_only=True) as (data_from, _data_to):
        assert data_from.objects == [name]


BATCH = """
[batch]
project = "Kit"
naming = "{project}_{type}_{name}_{version}"
blend = "kit.blend"

[defaults]
type = "prop"
options = { model = "v3.1-20260211", face_limit = 3000 }

[[jobs]]
name = "crate_{material}"
prompt = "a crate with {material} bands"
vars = { material = ["iron", "brass"] }
tags = ["warehouse"]

[[jobs]]
name = "cart"
type = "vehicle"
prompt = "a toy cart with wheels"
options = { texture = false, pbr = false, generate_parts = true }

[[jobs]]
name = "pillar"
prompt = "a stone pillar"
qc = { max_faces = 100 }
"""


def test_batch_blend_is_an_asset_library_in_catalogs_with_previews(emulator, tmp_path, tmod):
    emulator.configure(task_seconds=0.3)
    batch = tmp_path / "kit.toml"
    batch.write_text(BATCH)
    out = tmp_path / "out"
    result = run_batch(emulator, batch, out)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / "report.json").read_text())
    asset_ids = [a["asset_id"] for a in report["assets"]]
    assert len(asset_ids) == 4

    blend = out / "kit.blend"
    with bpy.data.libraries.load(str(blend), assets_only=True) as (data_from, _data_to):
        marked = set(data_from.objects) | set(data_from.collections)
    assert marked == set(asset_ids)

    cats = tmod("blender.assets").read_catalogs(str(out / "blender_assets.cats.txt"))
    assert {"Tripo/Kit/prop", "Tripo/Kit/vehicle"} <= set(cats.values())

    bpy.ops.wm.open_mainfile(filepath=str(blend))
    by_name = {d.name: d for d in [*bpy.data.objects, *bpy.data.collections] if d.asset_data}
    for asset_id in asset_ids:
        data = by_name[asset_id]
        tags = {t.name for t in data.asset_data.tags}
        expected_type = "vehicle" if "_cart_" in asset_id else "prop"
        assert cats[data.asset_data.catalog_id] == f"Tripo/Kit/{expected_type}"
        assert f"type:{expected_type}" in tags
        assert max(preview_pixels(data)) > 0.05, asset_id
        qc_tag = "qc:failed" if "_pillar_" in asset_id else "qc:passed"
        assert qc_tag in tags, (asset_id, tags)
    crate = next(by_name[a] for a in asset_ids if "_crate_iron" in a)
    crate_tags = {t.name for t in crate.asset_data.tags}
    assert {"material:iron", "warehouse"} <= crate_tags
    assert crate.asset_data.description == "a crate with iron bands"
    assert isinstance(by_name[next(a for a in asset_ids if "_cart_" in a)], bpy.types.Collection)

    sheet = report["contact_sheet"]
    assert [c["label"] for c in sheet["cells"]] == [
        f"{a} · {'QC failed' if '_pillar_' in a else 'QC ok'}" for a in asset_ids]
