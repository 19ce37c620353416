"""Edits of an existing model: segment, texture, complete, decimate."""

from __future__ import annotations

import logging
import bpy  # first: with the bpy module from PyPI, bmesh and mathutils only exist after it
import bmesh
import numpy as np
from mathutils import Matrix, Vector

from .common import FactoryError, colour_from, digest
from .scene import (
    bake_meshes_to_world,
    decimate_object,
    decimate_total,
    export_glb,
    import_model,
    join_objects,
    make_material,
    make_pattern_image,
    mesh_objects,
    order_key,
    remove_unused_material_slots,
    rename_objects,
    select_only,
    separate_loose,
    triangle_count,
)
from .preview import render_preview

log = logging.getLogger("asset_factory")


def op_segment(req: "Request"):
    import_model(req.input("model"), req.work_dir)
    meshes = bake_meshes_to_world()
    joined = join_objects(meshes)
    parts = sorted(separate_loose(joined), key=order_key)
    wanted = req.params.get("part_names") or []
    if wanted and len(wanted) == len(parts):
        names = [str(n) for n in wanted]
    else:
        if wanted:
            log.info("segment: %d parts found, %d names given: numbering", len(parts), len(wanted))
        names = [f"part_{i:03d}" for i in range(1, len(parts) + 1)]
    rename_objects(parts, names)
    for part in parts:
        remove_unused_material_slots(part)
    files = {"model": export_glb(req.out_dir / "model.glb"),
             "rendered_image": render_preview(req.out_dir)}
    return files, {"part_names": names}


def select_parts(part_names) -> tuple[list, list]:
    """(selected mesh objects, all mesh objects); all when part_names is empty/None."""
    meshes = mesh_objects()
    if not part_names:
        return meshes, meshes
    wanted = set(str(n) for n in part_names)
    chosen = [o for o in meshes if o.name in wanted]
    if not chosen:
        raise FactoryError(f"none of the parts {sorted(wanted)} exist; parts are "
                           f"{[o.name for o in meshes]}")
    missing = wanted - {o.name for o in chosen}
    if missing:
        log.warning("parts not found and ignored: %s", sorted(missing))
    return chosen, meshes


def ensure_uvs(obj) -> None:
    if obj.data.uv_layers:
        return
    select_only([obj], obj)
    bpy.ops.object.mode_set(mode="EDIT")
    bpy.ops.mesh.select_all(action="SELECT")
    bpy.ops.uv.smart_project()
    bpy.ops.object.mode_set(mode="OBJECT")


def op_texture(req: "Request"):
    p = req.params
    import_model(req.input("model"), req.work_dir)
    chosen, meshes = select_parts(p.get("part_names"))
    pbr = bool(p.get("pbr", False))
    # The look depends on every parameter except which parts get it.
    style = {k: v for k, v in p.items() if k not in ("part_names",)}
    retextured = []
    for obj in chosen:
        seed = digest("texture", style, obj.name)
        short = seed.hex()[:8]
        image = make_pattern_image(f"tex_{short}", seed)
        mat = make_material(f"tex_{short}", colour_from(seed), 0.6 if pbr else 0.0,
                            0.3 if pbr else 0.7, image)
        if obj.data.users > 1:  # a shared mesh would retexture the other parts too
            obj.data = obj.data.copy()
        obj.data.materials.clear()
        obj.data.materials.append(mat)
        if len(obj.data.polygons):
            obj.data.polygons.foreach_set("material_index", np.zeros(len(obj.data.polygons), np.int32))
        ensure_uvs(obj)
        retextured.append(obj.name)
    files = {"model": export_glb(req.out_dir / "model.glb", animations=bool(bpy.data.actions)),
             "rendered_image": render_preview(req.out_dir)}
    return files, {"retextured": retextured, "part_names": [o.name for o in meshes]}


def op_complete(req: "Request"):
    import_model(req.input("model"), req.work_dir)
    chosen, meshes = select_parts(req.params.get("part_names"))
    report = {}
    for obj in chosen:
        if obj.data.users > 1:
            obj.data = obj.data.copy()
        bm = bmesh.new()
        bm.from_mesh(obj.data)
        bmesh.ops.remove_doubles(bm, verts=bm.verts[:], dist=1e-5)
        boundary = [e for e in bm.edges if e.is_boundary]
        filled = 0
        if boundary:
            filled = len(bmesh.ops.holes_fill(bm, edges=boundary, sides=0)["faces"])
        added_cap = False
        if not filled:
            # Already closed: "complete" it with a thin cap plate under the part, so that the
            # change is real and measurable (more faces, same place).
            co = np.array([v.co[:] for v in bm.verts]) if len(bm.verts) else np.zeros((1, 3))
            lo, hi = co.min(axis=0), co.max(axis=0)
            size = Vector(np.maximum(hi - lo, 1e-3).tolist())
            thickness = max(size.z * 0.04, 0.002)
            cap = bmesh.ops.create_cube(bm, size=1.0)
            bmesh.ops.transform(bm, verts=cap["verts"], matrix=Matrix.Translation(
                Vector(((lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2] - thickness / 2 - 0.001)))
                @ Matrix.Diagonal((size.x, size.y, thickness, 1.0)))
            added_cap = True
        bm.to_mesh(obj.data)
        bm.free()
        obj.data.update()
        report[obj.name] = {"filled_faces": filled, "added_cap": added_cap,
                            "faces": triangle_count(obj.data)}
    files = {"model": export_glb(req.out_dir / "model.glb"),
             "rendered_image": render_preview(req.out_dir)}
    return files, {"part_names": [o.name for o in meshes], "completed": report}


def op_decimate(req: "Request"):
    p = req.params
    if not p.get("face_limit"):
        raise FactoryError("decimate needs face_limit")
    limit, quad = int(p["face_limit"]), bool(p.get("quad", False))
    import_model(req.input("model"), req.work_dir)
    meshes = bake_meshes_to_world()
    if p.get("part_names"):
        chosen, meshes = select_parts(p["part_names"])
        for obj in chosen:  # the limit applies to each named part
            decimate_object(obj, limit, quad)
    else:
        decimate_total(meshes, limit, quad)
    files = {"model": export_glb(req.out_dir / "model.glb"),
             "rendered_image": render_preview(req.out_dir)}
    info = {"faces": sum(triangle_count(o.data) for o in meshes),
            "vertices": sum(len(o.data.vertices) for o in meshes),
            "part_names": [o.name for o in meshes],
            "part_faces": {o.name: triangle_count(o.data) for o in meshes}}
    return files, info
