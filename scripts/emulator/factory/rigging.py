"""Rigging (op `rig`): a metarig or chain rig fitted to the model, and skin weights."""

from __future__ import annotations

import logging
import math

import bpy  # first: with the bpy module from PyPI, bmesh and mathutils only exist after it
import numpy as np
from mathutils import Matrix, Vector

from .common import FactoryError
from .scene import (
    bake_meshes_to_world,
    ensure_object_mode,
    export_glb,
    import_model,
    join_objects,
    link,
    select_only,
    world_bbox,
    world_vertices,
)
from .preview import render_preview

log = logging.getLogger("asset_factory")


RIG_TYPES = ("biped", "quadruped", "hexapod", "octopod", "avian", "serpentine", "aquatic", "others")
METARIG_OPERATORS = {
    "biped": ("armature_basic_human_metarig_add", "armature_human_metarig_add"),
    "quadruped": ("armature_basic_quadruped_metarig_add", "armature_wolf_metarig_add"),
    "avian": ("armature_bird_metarig_add",),
    "aquatic": ("armature_shark_metarig_add",),
}


def add_metarig(rig_type: str):
    """A Rigify metarig used as-is as the deform skeleton (no rig generation), or None."""
    for name in METARIG_OPERATORS.get(rig_type, ()):
        before = set(bpy.data.objects)
        try:
            getattr(bpy.ops.object, name)()
        except (AttributeError, RuntimeError) as exc:
            log.warning("metarig %s unavailable: %s", name, exc)
            continue
        ensure_object_mode()
        new = [o for o in bpy.data.objects if o not in before and o.type == "ARMATURE"]
        if new:
            return new[0], name
    return None, None


def build_chain_rig(rig_type: str, lo: np.ndarray, hi: np.ndarray):
    """A simple hand-made skeleton for rig types Rigify has no metarig for."""
    data = bpy.data.armatures.new("Armature")
    arm = bpy.data.objects.new("Armature", data)
    link(arm)
    select_only([arm], arm)
    bpy.ops.object.mode_set(mode="EDIT")
    bones = data.edit_bones
    cx, cy = (lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2
    dx, dy, dz = np.maximum(hi - lo, 1e-3)
    z0 = lo[2]

    def bone(name, head, tail, parent=None, connect=False):
        b = bones.new(name)
        b.head, b.tail = Vector(head), Vector(tail)
        if (b.tail - b.head).length < 1e-4:
            b.tail = b.head + Vector((0, 0, 0.01))
        b.parent, b.use_connect = parent, connect and parent is not None
        return b

    root = bone("root", (cx, cy, z0), (cx, cy, z0 + dz * 0.15))
    if rig_type == "serpentine":
        # A chain along the longest horizontal axis, head at the front (-Y or -X).
        count, zc = 8, z0 + dz * 0.5
        along_y = dy >= dx
        start = (cx, lo[1], zc) if along_y else (lo[0], cy, zc)
        step = (0, dy / count, 0) if along_y else (dx / count, 0, 0)
        parent = root
        for i in range(count):
            head = tuple(s + k * i for s, k in zip(start, step))
            tail = tuple(s + k * (i + 1) for s, k in zip(start, step))
            parent = bone(f"spine_{i + 1:02d}", head, tail, parent, connect=i > 0)
    elif rig_type in ("hexapod", "octopod"):
        zb = z0 + dz * 0.6
        body = bone("body", (cx, cy - dy * 0.3, zb), (cx, cy + dy * 0.3, zb), root)
        if rig_type == "hexapod":
            anchors = [(side, i, cy + dy * f) for i, f in enumerate((-0.25, 0.0, 0.25), 1)
                       for side in ("L", "R")]
            for side, i, y in anchors:
                sx = -1 if side == "L" else 1
                upper = bone(f"leg_{side}_{i}_upper", (cx + sx * dx * 0.12, y, zb),
                             (cx + sx * dx * 0.35, y, z0 + dz * 0.35), body)
                bone(f"leg_{side}_{i}_lower", upper.tail[:], (cx + sx * dx * 0.5, y, z0), upper, True)
        else:
            for i in range(8):
                angle = math.pi / 8 + i * math.pi / 4
                ux, uy = math.cos(angle) * dx / 2, math.sin(angle) * dy / 2
                side = "L" if ux < 0 else "R"
                upper = bone(f"leg_{side}_{i + 1}_upper", (cx + ux * 0.2, cy + uy * 0.2, zb),
                             (cx + ux * 0.6, cy + uy * 0.6, z0 + dz * 0.35), body)
                bone(f"leg_{side}_{i + 1}_lower", upper.tail[:], (cx + ux, cy + uy, z0), upper, True)
    else:  # others: a vertical spine through the model
        parent = root
        for i in range(3):
            parent = bone(f"spine_{i + 1:02d}", (cx, cy, z0 + dz * (0.15 + 0.28 * i)),
                          (cx, cy, z0 + dz * (0.15 + 0.28 * (i + 1))), parent, connect=i > 0)
    bpy.ops.object.mode_set(mode="OBJECT")
    return arm


def fit_armature(arm, lo: np.ndarray, hi: np.ndarray) -> None:
    """Scales (per axis) and moves an armature so its bones span the mesh's bounding box,
    then applies the transform to the bones."""
    points = np.array([p for b in arm.data.bones for p in (b.head_local[:], b.tail_local[:])])
    alo, ahi = points.min(axis=0), points.max(axis=0)
    adim, mdim = ahi - alo, np.maximum(hi - lo, 1e-3)
    scale_z = mdim[2] / max(adim[2], 1e-6)
    # A skeleton flat along some axis keeps the height's scale there.
    scale = [mdim[i] / adim[i] if adim[i] > 0.05 * adim.max() else scale_z for i in range(3)]
    acentre = np.array([(alo[0] + ahi[0]) / 2, (alo[1] + ahi[1]) / 2, alo[2]])
    mcentre = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])
    arm.matrix_world = (Matrix.Translation(Vector(mcentre.tolist()))
                        @ Matrix.Diagonal((*scale, 1.0))
                        @ Matrix.Translation(Vector((-acentre).tolist())))
    select_only([arm], arm)
    bpy.ops.object.transform_apply(location=True, rotation=True, scale=True)


def weight_to_nearest_bone(mesh_obj, arm, vertex_indices) -> None:
    """Gives each listed vertex weight 1 to its nearest deform bone (distance to the bone
    segment). Used where heat/envelope weighting left vertices without any weight."""
    bones = [b for b in arm.data.bones if b.use_deform]
    m = np.array(arm.matrix_world)
    heads = np.array([b.head_local[:] for b in bones]) @ m[:3, :3].T + m[:3, 3]
    tails = np.array([b.tail_local[:] for b in bones]) @ m[:3, :3].T + m[:3, 3]
    verts = world_vertices(mesh_obj, evaluated=False)[vertex_indices]
    seg = tails - heads                                            # (B, 3)
    rel = verts[:, None, :] - heads[None, :, :]                     # (V, B, 3)
    t = np.clip((rel * seg).sum(-1) / np.maximum((seg * seg).sum(-1), 1e-12), 0.0, 1.0)
    dist = np.linalg.norm(rel - t[..., None] * seg[None], axis=-1)  # (V, B)
    nearest = dist.argmin(axis=1)
    for b_index, bone in enumerate(bones):
        members = [int(vertex_indices[i]) for i in np.nonzero(nearest == b_index)[0]]
        if members:
            group = mesh_obj.vertex_groups.get(bone.name) or mesh_obj.vertex_groups.new(name=bone.name)
            group.add(members, 1.0, "REPLACE")


def unweighted_vertices(mesh_obj) -> np.ndarray:
    names = {g.index for g in mesh_obj.vertex_groups}
    return np.array([v.index for v in mesh_obj.data.vertices
                     if not any(g.group in names and g.weight > 1e-6 for g in v.groups)], dtype=np.int64)


def skin(mesh_obj, arm) -> str:
    """Parents with automatic (heat) weights, falling back to envelopes, and fills any vertex
    left without a weight from its nearest bone. Returns the method that did most of it."""
    for bone in arm.data.bones:
        bone.use_deform = True
    method = "automatic"
    select_only([mesh_obj, arm], arm)
    try:
        bpy.ops.object.parent_set(type="ARMATURE_AUTO")
    except RuntimeError as exc:
        log.warning("heat weighting failed (%s); using envelope weights", exc)
        method = "envelope"
        select_only([mesh_obj, arm], arm)
        bpy.ops.object.parent_set(type="ARMATURE_ENVELOPE")
    if not any(m.type == "ARMATURE" for m in mesh_obj.modifiers):
        mod = mesh_obj.modifiers.new("Armature", "ARMATURE")
        mod.object = arm
    missing = unweighted_vertices(mesh_obj)
    if len(missing):
        if len(missing) == len(mesh_obj.data.vertices):
            method = "nearest_bone"
        log.info("%d of %d vertices had no weight: nearest bone", len(missing),
                 len(mesh_obj.data.vertices))
        weight_to_nearest_bone(mesh_obj, arm, missing)
    return method


def op_rig(req: "Request"):
    p = req.params
    rig_type = str(p.get("rig_type") or "biped").lower()
    if rig_type not in RIG_TYPES:
        raise FactoryError(f"unknown rig_type {rig_type!r}; one of {RIG_TYPES}")
    import_model(req.input("model"), req.work_dir)
    meshes = bake_meshes_to_world()
    name = meshes[0].name if len(meshes) == 1 else "body_mesh"
    mesh_obj = join_objects(meshes, name)
    lo, hi = world_bbox([mesh_obj])
    arm, source = add_metarig(rig_type)
    if arm is None:
        arm, source = build_chain_rig(rig_type, lo, hi), "chain"
    arm.name = "Armature"
    arm.data.name = "Armature"
    fit_armature(arm, lo, hi)
    method = skin(mesh_obj, arm)
    files = {"model": export_glb(req.out_dir / "model.glb"),
             "rendered_image": render_preview(req.out_dir)}
    info = {"rig_type": rig_type, "spec": p.get("spec"), "bones": len(arm.data.bones),
            "bone_names": [b.name for b in arm.data.bones], "skeleton": source,
            "weighting": method, "armature": arm.name, "mesh": mesh_obj.name,
            "part_names": [mesh_obj.name]}
    return files, info
