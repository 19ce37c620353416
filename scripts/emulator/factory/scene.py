"""The factory's Blender scene: its state, importing and exporting files, materials, decimation."""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import struct
import zipfile
from pathlib import Path

import bpy  # first: with the bpy module from PyPI, bmesh and mathutils only exist after it
import bmesh
import numpy as np
from mathutils import Matrix

from .common import FPS, FactoryError, call_op, colour_from, digest

log = logging.getLogger("asset_factory")


# Add-ons the ops rely on. read_factory_settings() restores the factory preferences, which
# disables anything enabled by hand before (rigify is not on by default), so they are re-enabled
# after every reset; enabling an already-registered add-on again takes a few milliseconds.
REQUIRED_ADDONS = ("io_scene_gltf2", "io_scene_fbx", "cycles", "rigify")


def ensure_addons() -> None:
    import addon_utils

    for module in REQUIRED_ADDONS:
        if addon_utils.check(module)[1]:
            continue
        try:
            bpy.ops.preferences.addon_enable(module=module)
        except Exception as exc:  # noqa: BLE001 - a missing add-on only disables some features
            log.warning("could not enable add-on %s: %s", module, exc)


def ensure_object_mode() -> None:
    obj = bpy.context.view_layer.objects.active if bpy.context.view_layer else None
    if obj is not None and obj.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")


def reset_scene() -> None:
    try:
        ensure_object_mode()
    except Exception:  # noqa: BLE001 - the reset below clears whatever state was left
        pass
    bpy.ops.wm.read_factory_settings(use_empty=True)
    ensure_addons()
    scene = bpy.context.scene
    scene.render.fps = FPS
    scene.frame_start, scene.frame_end = 1, FPS + 1
    scene.cursor.location = (0.0, 0.0, 0.0)


def scene_objects(kind: str | None = None) -> list:
    objs = list(bpy.context.scene.objects)
    return [o for o in objs if kind is None or o.type == kind]


def mesh_objects() -> list:
    return sorted(scene_objects("MESH"), key=lambda o: o.name)


def select_only(objs, active=None) -> None:
    for obj in bpy.context.view_layer.objects:
        obj.select_set(False)
    for obj in objs:
        obj.select_set(True)
    bpy.context.view_layer.objects.active = active if active is not None else (objs[0] if objs else None)


def link(obj) -> None:
    bpy.context.scene.collection.objects.link(obj)


DATA_COLLECTIONS = {"MESH": "meshes", "ARMATURE": "armatures", "CAMERA": "cameras",
                    "LIGHT": "lights", "CURVE": "curves"}


def remove_object(obj) -> None:
    """Deletes an object and its data when nothing else uses it."""
    data, collection = obj.data, DATA_COLLECTIONS.get(obj.type)
    bpy.data.objects.remove(obj, do_unlink=True)
    if data is not None and collection and data.users == 0:
        getattr(bpy.data, collection).remove(data)


def triangle_count(mesh) -> int:
    totals = np.zeros(len(mesh.polygons), dtype=np.int32)
    mesh.polygons.foreach_get("loop_total", totals)
    return int(np.maximum(totals - 2, 0).sum())


def world_vertices(obj, evaluated: bool = True) -> np.ndarray:
    """(N, 3) world-space vertex positions (of the evaluated mesh by default)."""
    if evaluated:
        depsgraph = bpy.context.evaluated_depsgraph_get()
        eval_obj = obj.evaluated_get(depsgraph)
        mesh = eval_obj.to_mesh()
        try:
            co = np.zeros(len(mesh.vertices) * 3, dtype=np.float64)
            mesh.vertices.foreach_get("co", co)
        finally:
            eval_obj.to_mesh_clear()
        matrix = eval_obj.matrix_world
    else:
        co = np.zeros(len(obj.data.vertices) * 3, dtype=np.float64)
        obj.data.vertices.foreach_get("co", co)
        matrix = obj.matrix_world
    co = co.reshape(-1, 3)
    m = np.array(matrix)
    return co @ m[:3, :3].T + m[:3, 3]


def world_bbox(objs) -> tuple[np.ndarray, np.ndarray]:
    points = [world_vertices(o) for o in objs]
    points = [p for p in points if len(p)]
    if not points:
        raise FactoryError("the scene has no mesh vertices")
    allp = np.concatenate(points)
    return allp.min(axis=0), allp.max(axis=0)


def order_key(obj) -> tuple:
    """Part order used everywhere: by bounding-box centre z, then x, then y (mm-rounded)."""
    lo, hi = world_bbox([obj])
    centre = (lo + hi) / 2.0
    return (round(float(centre[2]), 3), round(float(centre[0]), 3), round(float(centre[1]), 3))


def rename_objects(objs, names) -> None:
    """Renames objects (and their meshes) exactly; temporary names first avoid .001 clashes."""
    for i, obj in enumerate(objs):
        obj.name = f"__tmp_{i}__"
        if obj.data is not None:
            obj.data.name = f"__tmp_{i}__"
    for obj, name in zip(objs, names):
        obj.name = name
        if obj.data is not None:
            obj.data.name = name


# --------------------------------------------------------------------------------------------
# Import / export
# --------------------------------------------------------------------------------------------

KNOWN_FORMATS = ("glb", "gltf", "fbx", "obj", "stl", "usd", "usda", "usdc", "usdz", "zip")


def detect_format(path: Path, hint: str | None = None) -> str:
    ext = path.suffix.lower().lstrip(".")
    if ext in KNOWN_FORMATS:
        return ext
    if hint and hint.lower() in KNOWN_FORMATS:
        return hint.lower()
    with open(path, "rb") as handle:
        head = handle.read(512)
    if head.startswith(b"glTF"):
        return "glb"
    if head.startswith(b"Kaydara FBX Binary"):
        return "fbx"
    if head.startswith(b"PK"):
        return "zip"
    if head.lstrip().startswith(b"{"):
        return "gltf"
    if head.startswith(b"solid") or (len(head) >= 84 and os.path.getsize(path) ==
                                       84 + 50 * struct.unpack_from("<I", head, 80)[0]):
        return "stl"
    if re.search(rb"^(v|f|o|g|mtllib) ", head, re.MULTILINE):
        return "obj"
    raise FactoryError(f"cannot tell the format of {path.name}")


def import_model(path: str | Path, work_dir: Path, hint: str | None = None) -> list:
    """Imports any supported model into the current scene; returns the new objects.

    The file is copied under work_dir with the right extension first: uploads may be stored
    without one and some importers look at it.
    """
    path = Path(path)
    if not path.is_file():
        raise FactoryError(f"input file not found: {path}")
    fmt = detect_format(path, hint)
    staged = work_dir / f"input_{len(list(work_dir.iterdir()))}.{fmt}"
    shutil.copyfile(path, staged)
    if fmt == "zip" and (hint or "").lower() != "usdz":
        unpacked = work_dir / f"{staged.stem}_unzipped"
        with zipfile.ZipFile(staged) as archive:
            archive.extractall(unpacked)
        candidates = sorted(p for p in unpacked.rglob("*")
                            if p.suffix.lower().lstrip(".") in KNOWN_FORMATS[:-1])
        if not candidates:
            raise FactoryError(f"{path.name}: the zip holds no model file")
        staged, fmt = candidates[0], candidates[0].suffix.lower().lstrip(".")
    elif fmt == "zip":
        staged = staged.rename(staged.with_suffix(".usdz"))
        fmt = "usdz"

    ensure_object_mode()
    before = set(bpy.data.objects)
    if fmt in ("glb", "gltf"):
        call_op(bpy.ops.import_scene.gltf, filepath=str(staged))
    elif fmt == "fbx":
        call_op(bpy.ops.import_scene.fbx, filepath=str(staged))
    elif fmt == "obj":
        call_op(bpy.ops.wm.obj_import, filepath=str(staged))
    elif fmt == "stl":
        call_op(bpy.ops.wm.stl_import, filepath=str(staged))
    elif fmt in ("usd", "usda", "usdc", "usdz"):
        call_op(bpy.ops.wm.usd_import, filepath=str(staged))
    else:  # pragma: no cover - detect_format only returns the formats above
        raise FactoryError(f"unsupported format {fmt}")
    ensure_object_mode()
    new = [o for o in bpy.data.objects if o not in before]
    # The glTF importer adds a bone-display "Icosphere" in a hidden "glTF_not_exported"
    # collection; it is not part of the model and would count as a mesh everywhere.
    helpers = [c for c in bpy.data.collections if c.name.startswith("glTF_not_exported")]
    for obj in bpy.data.objects:
        if obj.pose is not None:
            for pose_bone in obj.pose.bones:
                pose_bone.custom_shape = None
    for obj in list(new):
        # Cameras and lights of uploaded scenes are not part of a model (the preview adds its own).
        if obj.type in ("CAMERA", "LIGHT") or any(c in helpers for c in obj.users_collection):
            new.remove(obj)
            remove_object(obj)
    for collection in helpers:
        bpy.data.collections.remove(collection)
    if not any(o.type == "MESH" for o in new):
        raise FactoryError(f"{path.name}: no mesh was imported")
    log.debug("imported %s as %s: %d objects", path.name, fmt, len(new))
    return new


def export_glb(path: Path, animations: bool = False) -> Path:
    kwargs = dict(filepath=str(path), export_format="GLB", export_yup=True, export_apply=False,
                  export_materials="EXPORT", export_animations=animations, export_skins=True,
                  export_image_format="AUTO")
    if animations:
        # Every action becomes its own glTF animation (4.2-5.0: export_animation_mode='ACTIONS';
        # before 3.6 the same was export_nla_strips=True). Each action keeps its own range.
        kwargs.update(export_animation_mode="ACTIONS", export_nla_strips=True,
                      export_force_sampling=True, export_frame_range=False,
                      export_anim_slide_to_zero=True)
    call_op(bpy.ops.export_scene.gltf, **kwargs)
    return path


def bake_meshes_to_world(keep_armatures: bool = False) -> list:
    """Leaves only mesh objects, unparented, with transforms applied to their data.

    Armature modifiers are removed (the rest pose is the same geometry) unless keep_armatures.
    """
    ensure_object_mode()
    meshes = scene_objects("MESH")
    for obj in meshes:
        world = obj.matrix_world.copy()
        obj.parent = None
        obj.matrix_world = world
        if not keep_armatures:
            for mod in list(obj.modifiers):
                if mod.type == "ARMATURE":
                    obj.modifiers.remove(mod)
    for obj in scene_objects():
        if obj.type != "MESH" and not (keep_armatures and obj.type == "ARMATURE"):
            remove_object(obj)
    for obj in meshes:
        if obj.data.users > 1:  # glTF instancing shares meshes; data is baked per object
            obj.data = obj.data.copy()
        if obj.matrix_world != Matrix.Identity(4):
            negative = obj.matrix_world.is_negative
            obj.data.transform(obj.matrix_world)
            if negative and hasattr(obj.data, "flip_normals"):
                obj.data.flip_normals()
            obj.matrix_world = Matrix.Identity(4)
        obj.data.update()
    return sorted(meshes, key=lambda o: o.name)


def join_objects(objs, name: str | None = None):
    ensure_object_mode()
    if len(objs) > 1:
        select_only(objs, objs[0])
        bpy.ops.object.join()
    obj = bpy.context.view_layer.objects.active if len(objs) > 1 else objs[0]
    if name:
        rename_objects([obj], [name])
    return obj


def separate_loose(obj) -> list:
    """Splits a mesh into connected parts. Coincident vertices are merged first: glTF files
    store split vertices at UV seams and hard edges, which would otherwise make every face
    its own part."""
    select_only([obj], obj)
    bpy.ops.object.mode_set(mode="EDIT")
    bpy.ops.mesh.select_all(action="SELECT")
    bpy.ops.mesh.remove_doubles(threshold=1e-5)
    bpy.ops.mesh.separate(type="LOOSE")
    bpy.ops.object.mode_set(mode="OBJECT")
    return list(bpy.context.selected_objects)


def remove_unused_material_slots(obj) -> None:
    mesh = obj.data
    used = set()
    if len(mesh.polygons):
        indices = np.zeros(len(mesh.polygons), dtype=np.int32)
        mesh.polygons.foreach_get("material_index", indices)
        used = set(int(i) for i in np.unique(indices))
    for index in reversed(range(len(mesh.materials))):
        if index not in used and len(mesh.materials) > 1:
            # Shift polygons above the removed slot down by one, keeping assignments.
            mesh.materials.pop(index=index)
            if len(mesh.polygons):
                indices = np.zeros(len(mesh.polygons), dtype=np.int32)
                mesh.polygons.foreach_get("material_index", indices)
                indices[indices > index] -= 1
                mesh.polygons.foreach_set("material_index", indices)
    mesh.update()


# --------------------------------------------------------------------------------------------
# Materials and images
# --------------------------------------------------------------------------------------------

def principled_nodes(mat):
    """(node_tree, principled BSDF) of a material, creating the node setup when needed
    (Material.use_nodes is deprecated in 5.0, where node trees always exist)."""
    if mat.node_tree is None and hasattr(mat, "use_nodes"):
        mat.use_nodes = True
    tree = mat.node_tree
    bsdf = next((n for n in tree.nodes if n.type == "BSDF_PRINCIPLED"), None)
    if bsdf is None:
        bsdf = tree.nodes.new("ShaderNodeBsdfPrincipled")
        output = next((n for n in tree.nodes if n.type == "OUTPUT_MATERIAL"), None)
        if output is None:
            output = tree.nodes.new("ShaderNodeOutputMaterial")
        tree.links.new(bsdf.outputs["BSDF"], output.inputs["Surface"])
    return tree, bsdf


def make_material(name: str, colour, metallic: float = 0.0, roughness: float = 0.6, image=None):
    mat = bpy.data.materials.new(name)
    tree, bsdf = principled_nodes(mat)
    bsdf.inputs["Base Color"].default_value = (*colour, 1.0)
    bsdf.inputs["Metallic"].default_value = metallic
    bsdf.inputs["Roughness"].default_value = roughness
    mat.diffuse_color = (*colour, 1.0)
    if image is not None:
        tex = tree.nodes.new("ShaderNodeTexImage")
        tex.image = image
        tex.location = (-400, 200)
        tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


def make_pattern_image(name: str, seed: bytes, size: int = 64):
    """A small checker-and-stripe image coloured from the seed, packed so every exporter
    embeds real image bytes (it has no file on disk)."""
    c1 = np.array([*colour_from(seed, 0), 1.0], dtype=np.float32)
    c2 = np.array([*colour_from(seed, 5, value=0.55), 1.0], dtype=np.float32)
    c3 = np.array([*colour_from(seed, 9, value=0.95), 1.0], dtype=np.float32)
    cell = 4 + seed[12] % 12
    y, x = np.mgrid[0:size, 0:size]
    checker = ((x // cell + y // cell) % 2).astype(bool)
    stripe = ((x + y) % max(cell * 2, 6)) < 2
    pixels = np.where(checker[..., None], c1, c2)
    pixels[stripe] = c3
    image = bpy.data.images.new(name, size, size, alpha=False)
    image.pixels.foreach_set(pixels.astype(np.float32).ravel())
    image.file_format = "PNG"
    image.pack()
    return image


def grey(seed_text: str):
    shade = 0.45 + (digest("grey", seed_text)[0] / 255.0) * 0.25
    return (shade, shade, shade)


# --------------------------------------------------------------------------------------------
# Decimation
# --------------------------------------------------------------------------------------------

def join_triangles(obj) -> None:
    bm = bmesh.new()
    bm.from_mesh(obj.data)
    bmesh.ops.join_triangles(bm, faces=bm.faces[:], angle_face_threshold=math.radians(40),
                             angle_shape_threshold=math.radians(40))
    bm.to_mesh(obj.data)
    bm.free()
    obj.data.update()


def decimate_object(obj, limit: int, quad: bool = False) -> None:
    """Collapse-decimates until the triangle count is <= limit (triangles are what a GLB
    holds, so the limit holds whatever the viewer counts). Other modifiers are kept out."""
    limit = max(int(limit), 4)
    current = triangle_count(obj.data)
    if current > limit:
        saved = [(m, m.show_viewport) for m in obj.modifiers]
        for mod, _ in saved:
            mod.show_viewport = False
        ratio = limit / current
        try:
            for _attempt in range(12):
                mod = obj.modifiers.new("factory_decimate", "DECIMATE")
                mod.decimate_type = "COLLAPSE"
                mod.ratio = max(min(ratio * 0.97, 1.0), 1e-5)
                depsgraph = bpy.context.evaluated_depsgraph_get()
                new_mesh = bpy.data.meshes.new_from_object(
                    obj.evaluated_get(depsgraph), preserve_all_data_layers=True, depsgraph=depsgraph)
                obj.modifiers.remove(mod)
                got = triangle_count(new_mesh)
                if got <= limit:
                    old = obj.data
                    obj.data = new_mesh
                    new_mesh.name = old.name
                    if old.users == 0:
                        bpy.data.meshes.remove(old)
                    break
                bpy.data.meshes.remove(new_mesh)
                ratio *= (limit / got) * 0.9
            else:
                raise FactoryError(f"could not decimate {obj.name!r} to {limit} faces")
        finally:
            for mod, shown in saved:
                mod.show_viewport = shown
    if quad:
        join_triangles(obj)


def decimate_total(objs, limit: int, quad: bool = False) -> None:
    """Decimates several objects so that their total is <= limit (budget by share)."""
    counts = [triangle_count(o.data) for o in objs]
    total = sum(counts)
    if total <= limit:
        if quad:
            for obj in objs:
                join_triangles(obj)
        return
    minimum = 4
    if limit < minimum * len(objs):
        raise FactoryError(f"face_limit {limit} is too small for {len(objs)} parts")
    budgets = [max(minimum, int(limit * c / total)) for c in counts]
    while sum(budgets) > limit:  # the minimum clamp may overshoot: trim the biggest budgets
        budgets[budgets.index(max(budgets))] -= 1
    for obj, budget in zip(objs, budgets):
        decimate_object(obj, budget, quad)
