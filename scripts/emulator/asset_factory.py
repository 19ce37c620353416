"""The emulator's asset factory: real 3D files made by Blender, one request at a time.

Run BY BLENDER (or by a Python that has the `bpy` module):

    blender -b --factory-startup --python scripts/emulator/asset_factory.py -- --serve
    python scripts/emulator/asset_factory.py --serve                  # bpy module from PyPI
    blender -b --python scripts/emulator/asset_factory.py -- --request '<json>'   # one shot

Protocol (`--serve`): one JSON request per line on stdin,

    {"id": "r1", "op": "model", "params": {...}, "inputs": {"model": "/in.glb"}, "out_dir": "/abs"}

and one answer line per request on stdout, prefixed with `@@ASSET ` (Blender, its importers and
Cycles print other text on stdout; only prefixed lines are answers):

    @@ASSET {"id": "r1", "ok": true, "op": "model", "files": {"model": "/abs/model.glb",
             "rendered_image": "/abs/preview.webp"}, "info": {...}, "seconds": 1.2}
    @@ASSET {"id": "r1", "ok": false, "op": "model", "error": "RuntimeError: ...", "traceback": "..."}

Right after start-up the worker prints `@@ASSET {"ready": true, "blender": "4.5.15", ...}`.
`{"op": "ping"}` answers at once; `{"op": "shutdown"}` (or EOF on stdin) ends the worker.
The scene is reset to an empty factory scene before every request.

Conventions of every model made or written here: Blender +Z up (glTF +Y up once exported), the
front faces -Y (glTF +Z), models stand on the ground (min z = 0), centred on the origin in XY.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import logging
import math
import os
import random
import re
import shutil
import struct
import sys
import tempfile
import time
import traceback
import zipfile
from pathlib import Path
from xml.sax.saxutils import quoteattr

import bpy  # first: with the bpy module from PyPI, bmesh and mathutils only exist after it
import bmesh
import numpy as np
from mathutils import Matrix, Quaternion, Vector

log = logging.getLogger("asset_factory")

PROTOCOL_PREFIX = "@@ASSET "
RENDER_SIZE = 256
FPS = 24


class FactoryError(RuntimeError):
    """A request that cannot be served (bad parameters, unusable input...)."""


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------

def digest(*parts) -> bytes:
    """A stable hash of JSON-able values (used for every deterministic choice)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode("utf-8")).digest()


def rng_for(*parts) -> random.Random:
    return random.Random(int.from_bytes(digest(*parts)[:8], "big"))


def colour_from(seed: bytes, offset: int = 0, saturation: float = 0.55, value: float = 0.8):
    """A pleasant RGB colour (0..1 floats) from hash bytes."""
    hue = seed[offset % len(seed)] / 255.0
    sat = saturation + (seed[(offset + 1) % len(seed)] / 255.0 - 0.5) * 0.3
    val = value + (seed[(offset + 2) % len(seed)] / 255.0 - 0.5) * 0.2
    return colorsys.hsv_to_rgb(hue, min(max(sat, 0.0), 1.0), min(max(val, 0.0), 1.0))


def safe_name(text: str, default: str = "model", limit: int = 40) -> str:
    name = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:limit].strip("_")
    return name or default


def call_op(op, **kwargs):
    """Calls a bpy operator with only the keyword arguments this Blender version knows.

    Exporter options come and go between 4.2 and 5.0; unknown ones are dropped (and logged)
    instead of failing the whole request.
    """
    known = set(op.get_rna_type().properties.keys())
    unknown = sorted(k for k in kwargs if k not in known)
    if unknown:
        log.debug("%s: ignoring options unknown to this Blender: %s", op.idname_py(), unknown)
    result = op(**{k: v for k, v in kwargs.items() if k in known})
    if "FINISHED" not in result:
        raise FactoryError(f"{op.idname_py()} did not finish: {sorted(result)}")
    return result


def glb_json(path: Path) -> dict:
    """The JSON chunk of a GLB file (to report what a file really contains)."""
    data = Path(path).read_bytes()
    magic, _version, _length = struct.unpack_from("<4sII", data, 0)
    if magic != b"glTF":
        raise FactoryError(f"{path} is not a GLB file")
    chunk_length, chunk_type = struct.unpack_from("<I4s", data, 12)
    if chunk_type != b"JSON":
        raise FactoryError(f"{path}: first GLB chunk is not JSON")
    return json.loads(data[20:20 + chunk_length])


def zip_directory(directory: Path, zip_path: Path) -> Path:
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(directory).as_posix())
    return zip_path


# --------------------------------------------------------------------------------------------
# Scene state
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Procedural props (op `model`)
# --------------------------------------------------------------------------------------------
# A piece is (name, shape, dims, location, axis). Shapes: box dims=(sx, sy, sz); cyl/cone
# dims=(r_bottom, r_top, length); sphere dims=(radius,). `axis` is the long axis of cylinders.
# Pieces never share a vertex position (small gaps), so "separate by loose parts" after a
# merge-by-distance gives back exactly these pieces.

def _crate(j):
    w, d, h = 1.1 * j(), 0.8 * j(), 0.8 * j()
    return [
        ("body", "box", (w, d, h), (0, 0, h / 2), "Z"),
        ("lid", "box", (w + 0.04, d + 0.04, 0.1), (0, 0, h + 0.052), "Z"),
        ("handle_left", "box", (0.05, 0.3, 0.08), (-w / 2 - 0.032, 0, h * 0.65), "Z"),
        ("handle_right", "box", (0.05, 0.3, 0.08), (w / 2 + 0.032, 0, h * 0.65), "Z"),
        ("lock", "box", (0.14, 0.05, 0.16), (0, -d / 2 - 0.03, h * 0.8), "Z"),
    ]


def _barrel(j):
    r, h = 0.42 * j(), 1.2 * j()
    return [
        ("body", "cyl", (r, r, h), (0, 0, h / 2), "Z"),
        ("hoop_bottom", "cyl", (r + 0.025, r + 0.025, 0.07), (0, 0, h * 0.2), "Z"),
        ("hoop_top", "cyl", (r + 0.025, r + 0.025, 0.07), (0, 0, h * 0.8), "Z"),
        ("lid", "cyl", (r * 0.92, r * 0.92, 0.04), (0, 0, h + 0.022), "Z"),
    ]


def _lamp(j):
    h = 1.5 * j()
    return [
        ("base", "cyl", (0.26, 0.22, 0.06), (0, 0, 0.03), "Z"),
        ("pole", "cyl", (0.03, 0.03, h - 0.1), (0, 0, 0.062 + (h - 0.1) / 2), "Z"),
        ("bulb", "sphere", (0.09,), (0, 0, h - 0.02), "Z"),
        ("shade", "cone", (0.36 * j(), 0.17, 0.38), (0, 0, h + 0.05), "Z"),
    ]


def _robot(j):
    s = j()
    leg_h, torso_h = 0.72 * s, 0.62 * s
    top = leg_h + 0.01 + torso_h
    return [
        ("leg_left", "box", (0.18, 0.22, leg_h), (-0.14, 0, leg_h / 2), "Z"),
        ("leg_right", "box", (0.18, 0.22, leg_h), (0.14, 0, leg_h / 2), "Z"),
        ("torso", "box", (0.56, 0.34, torso_h), (0, 0, leg_h + 0.01 + torso_h / 2), "Z"),
        ("arm_left", "box", (0.12, 0.15, 0.62 * s), (-0.36, 0, top - 0.31 * s - 0.02), "Z"),
        ("arm_right", "box", (0.12, 0.15, 0.62 * s), (0.36, 0, top - 0.31 * s - 0.02), "Z"),
        ("head", "sphere", (0.17 * j(),), (0, -0.02, top + 0.19), "Z"),
    ]


def _cart(j):
    w, d = 0.9 * j(), 1.2 * j()
    r = 0.3
    return [
        ("wheel_left", "cyl", (r, r, 0.08), (-w / 2 - 0.06, 0, r), "X"),
        ("wheel_right", "cyl", (r, r, 0.08), (w / 2 + 0.06, 0, r), "X"),
        ("axle", "cyl", (0.03, 0.03, w), (0, 0, r), "X"),
        ("body", "box", (w, d, 0.42), (0, 0, r + 0.06 + 0.21), "Z"),
        ("handle", "box", (0.06, 0.6, 0.06), (0, d / 2 + 0.32, r + 0.5), "Z"),
    ]


def _chair(j):
    seat_z, w = 0.47 * j(), 0.52 * j()
    leg = seat_z - 0.035
    o = w / 2 - 0.04
    return [
        ("leg_front_left", "cyl", (0.025, 0.025, leg), (-o, -o, leg / 2), "Z"),
        ("leg_front_right", "cyl", (0.025, 0.025, leg), (o, -o, leg / 2), "Z"),
        ("leg_back_left", "cyl", (0.025, 0.025, leg), (-o, o, leg / 2), "Z"),
        ("leg_back_right", "cyl", (0.025, 0.025, leg), (o, o, leg / 2), "Z"),
        ("seat", "box", (w, w, 0.06), (0, 0, seat_z), "Z"),
        ("back", "box", (w, 0.05, 0.55), (0, w / 2 - 0.03, seat_z + 0.032 + 0.275), "Z"),
    ]


ARCHETYPES = {"crate": _crate, "barrel": _barrel, "lamp": _lamp, "robot": _robot,
              "cart": _cart, "chair": _chair}

# Prompt words that pick an archetype; any other prompt picks one from its hash.
KEYWORDS = {
    "crate": ("crate", "chest", "box", "treasure", "trunk"),
    "barrel": ("barrel", "keg", "cask", "drum", "bucket"),
    "lamp": ("lamp", "light", "lantern", "torch"),
    "robot": ("robot", "android", "mech", "humanoid", "character", "knight", "person", "man",
              "woman", "warrior", "soldier", "figure", "monster"),
    "cart": ("cart", "wagon", "car", "vehicle", "truck", "wheelbarrow", "trolley"),
    "chair": ("chair", "stool", "seat", "throne", "bench"),
}


def choose_archetype(prompt: str) -> str:
    words = set(re.findall(r"[a-z]+", prompt.lower()))
    for name, keys in KEYWORDS.items():
        if words.intersection(keys):
            return name
    names = sorted(ARCHETYPES)
    return names[digest("archetype", prompt)[0] % len(names)]


def build_piece(name: str, shape: str, dims, location, axis: str):
    """A mesh object for one piece, with UVs, in world position (identity object matrix)."""
    bm = bmesh.new()
    bm.loops.layers.uv.new("UVMap")  # calc_uvs needs the layer to exist
    if shape == "box":
        bmesh.ops.create_cube(bm, size=1.0, calc_uvs=True)
        # A few cuts so decimation has something to remove and rigs something to bend.
        bmesh.ops.subdivide_edges(bm, edges=bm.edges[:], cuts=5, use_grid_fill=True)
        bmesh.ops.scale(bm, vec=Vector(dims), verts=bm.verts[:])
    elif shape in ("cyl", "cone"):
        r1, r2, length = dims
        bmesh.ops.create_cone(bm, cap_ends=True, cap_tris=False, segments=32, radius1=r1,
                              radius2=r2, depth=length, calc_uvs=True)
        sides = [e for e in bm.edges if abs(e.verts[0].co.z - e.verts[1].co.z) > 1e-6]
        bmesh.ops.subdivide_edges(bm, edges=sides, cuts=6, use_grid_fill=False)
        for face in bm.faces:
            face.smooth = True
    elif shape == "sphere":
        bmesh.ops.create_uvsphere(bm, u_segments=24, v_segments=14, radius=dims[0], calc_uvs=True)
        for face in bm.faces:
            face.smooth = True
    else:  # pragma: no cover - archetypes only use the shapes above
        raise FactoryError(f"unknown shape {shape}")
    rotation = {"Z": Matrix.Identity(4), "X": Matrix.Rotation(math.pi / 2, 4, "Y"),
                "Y": Matrix.Rotation(math.pi / 2, 4, "X")}[axis]
    bmesh.ops.transform(bm, matrix=Matrix.Translation(Vector(location)) @ rotation, verts=bm.verts[:])
    mesh = bpy.data.meshes.new(name)
    bm.to_mesh(mesh)
    bm.free()
    obj = bpy.data.objects.new(name, mesh)
    link(obj)
    return obj


# --------------------------------------------------------------------------------------------
# Realistic models (op `model` with profile "realistic"): what Tripo really returns
# --------------------------------------------------------------------------------------------
# One smooth, displaced mesh of about 200k triangles with a sphere UV map, and 2048² base
# colour, normal and ORM textures with real detail (noise compresses like real texture data;
# flat colour would shrink to nothing), wired the way the glTF exporter maps them back to
# baseColorTexture, normalTexture, occlusionTexture and metallicRoughnessTexture.

REALISTIC_TEXTURE_SIZE = 2048
# A UV sphere has u * (v - 2) * 2 + 2 * u triangles: 448 x 224 gives 199,808.
REALISTIC_SEGMENTS = (448, 224)
REALISTIC_HEIGHT = 1.2  # metres, about a prop's size
# JPEG for colour and ORM (what large generated textures usually ship as), PNG for the normal
# map (JPEG blocks show up as shading artefacts there). Together with the mesh this lands the
# GLB in Tripo's 15-25 MB.
REALISTIC_JPEG_QUALITY = 92


def _interpolation_matrix(size: int, cells: int, wrap: bool) -> np.ndarray:
    """(size, cells + 1) weights of smoothstep interpolation between grid points: a grid G
    becomes an image W_y @ G @ W_x.T. `wrap` makes column `cells` the same as column 0."""
    position = (np.arange(size) + 0.5) * cells / size
    index = np.minimum(position.astype(np.int64), cells - 1)
    t = position - index
    t = t * t * (3.0 - 2.0 * t)
    weights = np.zeros((size, cells + 1), dtype=np.float32)
    weights[np.arange(size), index] = 1.0 - t
    weights[np.arange(size), index + 1] += t
    if wrap:  # the last column stands for the first: the texture tiles around the UV seam
        weights[:, 0] += weights[:, cells]
        weights[:, cells] = 0.0
    return weights


def fractal_noise(rng: np.random.Generator, size: int, base_cells: int, octaves: int,
                  persistence: float = 0.5) -> np.ndarray:
    """(size, size) value noise in 0..1, octaves summed, seamless left to right."""
    total = np.zeros((size, size), dtype=np.float32)
    amplitude, norm, cells = 1.0, 0.0, base_cells
    for _ in range(octaves):
        cells = min(cells, size // 2)
        grid = rng.random((cells + 1, cells + 1), dtype=np.float32)
        wy = _interpolation_matrix(size, cells, wrap=False)
        wx = _interpolation_matrix(size, cells, wrap=True)
        total += amplitude * (wy @ grid @ wx.T)
        norm += amplitude
        amplitude *= persistence
        cells *= 2
    return total / norm


def _spread(noise: np.ndarray, deviation: float) -> np.ndarray:
    """Noise rescaled to mean 0.5 and the given standard deviation, clipped to 0..1: summed
    octaves bunch up around the mean, which would leave the textures nearly flat."""
    return np.clip(0.5 + (noise - noise.mean()) * (deviation / max(float(noise.std()), 1e-6)),
                   0.0, 1.0)


def _image_from_array(name: str, rgb: np.ndarray, directory: Path, file_format: str,
                      colour_data: bool):
    """A Blender image holding rgb ((H, W, 3), 0..1, top row first), saved to a file in
    `directory` and packed, so the glTF exporter embeds the file's own bytes."""
    height, width = rgb.shape[:2]
    image = bpy.data.images.new(name, width, height, alpha=False, float_buffer=False)
    if not colour_data:
        image.colorspace_settings.name = "Non-Color"
    pixels = np.ones((height, width, 4), dtype=np.float32)
    pixels[..., :3] = rgb[::-1]  # Blender's first row is the bottom one
    image.pixels.foreach_set(pixels.ravel())
    ext = "jpg" if file_format == "JPEG" else "png"
    path = directory / f"{name}.{ext}"
    # Image.save writes the pixels as they are (save_render would apply the view transform).
    image.file_format = file_format
    image.filepath_raw = str(path)
    image.save(filepath=str(path), quality=REALISTIC_JPEG_QUALITY)
    image.pack()
    return image


def realistic_textures(seed: bytes, directory: Path, pbr: bool) -> dict:
    """Base colour (and, with pbr, normal and ORM) images of REALISTIC_TEXTURE_SIZE."""
    size = REALISTIC_TEXTURE_SIZE
    rng = np.random.default_rng(int.from_bytes(seed[:8], "big"))
    broad = _spread(fractal_noise(rng, size, 4, 3), 0.2)          # large patches of colour
    detail = _spread(fractal_noise(rng, size, 64, 5, 0.7), 0.16)  # grain down to 2 pixels
    height = 0.6 * broad + 0.4 * detail
    c1 = np.array(colour_from(seed, 0), dtype=np.float32)
    c2 = np.array(colour_from(seed, 5, value=0.45), dtype=np.float32)
    mix = np.clip((broad - 0.3) * 2.5, 0.0, 1.0)[..., None]
    shade = (0.8 + 0.8 * (detail - 0.5))[..., None]
    gradient = np.linspace(0.85, 1.1, size, dtype=np.float32)[:, None, None]  # darker at the bottom
    base = np.clip((c1 * (1.0 - mix) + c2 * mix) * shade * gradient, 0.0, 1.0)
    images = {"base": _image_from_array("basecolor", base, directory, "JPEG", True)}
    if pbr:
        # Tangent-space normals of the height field, glTF's convention (+Y towards the top of
        # the image; rows here run downwards, hence +d/drow). The factor sets the relief.
        d_row, d_column = np.gradient(height * 24.0)
        normal = np.stack([-d_column, d_row, np.ones_like(height)], axis=-1)
        normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
        images["normal"] = _image_from_array("normal", normal * 0.5 + 0.5, directory, "PNG", False)
        occlusion = np.clip(0.85 + 0.9 * (height - 0.5), 0.0, 1.0)  # cavities are darker
        roughness = np.clip(0.35 + 0.5 * detail, 0.0, 1.0)
        metallic = np.clip((broad - 0.62) * 8.0, 0.0, 1.0)  # a few metal patches
        orm = np.stack([occlusion, roughness, metallic], axis=-1)
        images["orm"] = _image_from_array("orm", orm, directory, "JPEG", False)
    return images


def gltf_output_group():
    """The "glTF Material Output" node group: the glTF exporter reads occlusion from its
    "Occlusion" input (Principled BSDF has no such socket); the importer makes the same group."""
    group = bpy.data.node_groups.get("glTF Material Output")
    if group is None:
        group = bpy.data.node_groups.new("glTF Material Output", "ShaderNodeTree")
        for socket in ("Occlusion", "Thickness"):
            group.interface.new_socket(socket, in_out="INPUT", socket_type="NodeSocketFloat")
    return group


def make_pbr_material(name: str, images: dict, colour):
    mat = bpy.data.materials.new(name)
    tree, bsdf = principled_nodes(mat)
    mat.diffuse_color = (*colour, 1.0)
    base = tree.nodes.new("ShaderNodeTexImage")
    base.image, base.location = images["base"], (-600, 300)
    tree.links.new(base.outputs["Color"], bsdf.inputs["Base Color"])
    if "orm" in images:
        orm = tree.nodes.new("ShaderNodeTexImage")
        orm.image, orm.location = images["orm"], (-900, 0)
        separate = tree.nodes.new("ShaderNodeSeparateColor")
        separate.location = (-600, 0)
        tree.links.new(orm.outputs["Color"], separate.inputs["Color"])
        tree.links.new(separate.outputs["Green"], bsdf.inputs["Roughness"])
        tree.links.new(separate.outputs["Blue"], bsdf.inputs["Metallic"])
        output = tree.nodes.new("ShaderNodeGroup")
        output.node_tree, output.location = gltf_output_group(), (0, -300)
        tree.links.new(separate.outputs["Red"], output.inputs["Occlusion"])
    if "normal" in images:
        normal = tree.nodes.new("ShaderNodeTexImage")
        normal.image, normal.location = images["normal"], (-900, -400)
        normal_map = tree.nodes.new("ShaderNodeNormalMap")
        normal_map.location = (-600, -400)
        tree.links.new(normal.outputs["Color"], normal_map.inputs["Color"])
        tree.links.new(normal_map.outputs["Normal"], bsdf.inputs["Normal"])
    return mat


def build_realistic_mesh(name: str, rng: random.Random):
    """A smooth boulder-like body: a dense UV sphere pushed in and out by a few random waves,
    standing on the ground, REALISTIC_HEIGHT tall, with the sphere's UV map."""
    u_segments, v_segments = REALISTIC_SEGMENTS
    bm = bmesh.new()
    bm.loops.layers.uv.new("UVMap")
    bmesh.ops.create_uvsphere(bm, u_segments=u_segments, v_segments=v_segments, radius=1.0,
                              calc_uvs=True)
    mesh = bpy.data.meshes.new(name)
    bm.to_mesh(mesh)
    bm.free()
    co = np.zeros(len(mesh.vertices) * 3, dtype=np.float64)
    mesh.vertices.foreach_get("co", co)
    direction = co.reshape(-1, 3)
    radius = np.ones(len(direction))
    for octave in range(12):
        frequency = 1.5 * 1.45 ** octave
        axis = np.array([rng.gauss(0, 1) for _ in range(3)])
        axis *= frequency / np.linalg.norm(axis)
        radius += 0.22 / (1.6 ** octave) * np.sin(direction @ axis + rng.uniform(0, 2 * math.pi))
    stretch = np.array([rng.uniform(0.8, 1.1), rng.uniform(0.7, 1.0), rng.uniform(1.0, 1.3)])
    points = direction * radius[:, None] * stretch
    lo, hi = points.min(axis=0), points.max(axis=0)
    points -= [(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]]
    points *= REALISTIC_HEIGHT / (hi[2] - lo[2])
    mesh.vertices.foreach_set("co", points.ravel())
    mesh.polygons.foreach_set("use_smooth", np.ones(len(mesh.polygons), dtype=bool))
    mesh.update()
    obj = bpy.data.objects.new(name, mesh)
    link(obj)
    return obj


def op_realistic_model(req: "Request"):
    p = req.params
    prompt, seed = str(p.get("prompt") or ""), int(p.get("seed") or 0)
    texture, pbr = bool(p.get("texture", True)), bool(p.get("pbr", False))
    if p.get("generate_parts"):
        log.info("realistic profile: generate_parts is served as one mesh")
    name = safe_name(prompt, default="model")
    obj = build_realistic_mesh(name, rng_for("realistic", prompt, seed))
    seed_bytes = digest("texture", prompt, seed)
    if texture:
        images = realistic_textures(seed_bytes, req.work_dir, pbr)
        mat = make_pbr_material(f"{name}_mat", images, colour_from(seed_bytes))
    else:
        mat = make_material(f"{name}_mat", grey(name))
    obj.data.materials.append(mat)
    if p.get("face_limit"):
        decimate_object(obj, int(p["face_limit"]), bool(p.get("quad", False)))
    elif p.get("quad"):
        join_triangles(obj)
    model = export_glb(req.out_dir / "model.glb")
    files = {"model": model, "rendered_image": render_preview(req.out_dir)}
    document = glb_json(model)
    info = {"archetype": "realistic", "profile": "realistic", "part_names": [obj.name],
            "faces": triangle_count(obj.data), "vertices": len(obj.data.vertices),
            "objects": [obj.name], "file_size": model.stat().st_size,
            "images": [{"name": i.name, "size": list(i.size)} for i in bpy.data.images
                       if i.type == "IMAGE" and i.size[0]],
            "gltf_images": [i.get("mimeType") for i in document.get("images", [])]}
    return files, info


def op_model(req: "Request"):
    p = req.params
    if p.get("profile") == "realistic":
        return op_realistic_model(req)
    prompt = str(p.get("prompt") or "")
    seed = int(p.get("seed") or 0)
    texture, pbr = bool(p.get("texture", True)), bool(p.get("pbr", False))
    face_limit = p.get("face_limit")
    quad, generate_parts = bool(p.get("quad", False)), bool(p.get("generate_parts", False))

    archetype = choose_archetype(prompt)
    rng = rng_for("model", prompt, seed)
    pieces = ARCHETYPES[archetype](lambda: rng.uniform(0.9, 1.1))
    objs = [build_piece(*piece) for piece in pieces]
    objs.sort(key=order_key)
    part_names = [o.name for o in objs]
    metallic, roughness = (0.5, 0.35) if pbr else (0.0, 0.6)

    if generate_parts:
        for obj in objs:
            obj.data.materials.append(make_material(f"{obj.name}_mat", grey(obj.name),
                                                    metallic, roughness))
        if face_limit:
            decimate_total(objs, int(face_limit), quad)
        elif quad:
            decimate_total(objs, 10 ** 9, True)
        result = objs
    else:
        name = safe_name(prompt, default=archetype)
        obj = join_objects(objs, name)
        seed_bytes = digest("texture", prompt, seed)
        if texture:
            image = make_pattern_image(f"{name}_basecolor", seed_bytes)
            mat = make_material(f"{name}_mat", colour_from(seed_bytes), metallic, roughness, image)
        else:
            mat = make_material(f"{name}_mat", grey(name), metallic, roughness)
        obj.data.materials.append(mat)
        if face_limit:
            decimate_object(obj, int(face_limit), quad)
        elif quad:
            join_triangles(obj)
        result = [obj]

    model = export_glb(req.out_dir / "model.glb")
    files = {"model": model, "rendered_image": render_preview(req.out_dir)}
    info = {"archetype": archetype, "part_names": part_names,
            "faces": sum(triangle_count(o.data) for o in result),
            "vertices": sum(len(o.data.vertices) for o in result),
            "objects": [o.name for o in result]}
    return files, info


# --------------------------------------------------------------------------------------------
# Preview rendering
# --------------------------------------------------------------------------------------------

def render_preview(out_dir: Path, stem: str = "preview") -> Path | None:
    """A ~256x256 3/4-front picture of the meshes, by Cycles on the CPU at 8 samples (it needs
    no GPU context, unlike EEVEE; Workbench is the fallback). WEBP when Blender writes it."""
    scene = bpy.context.scene
    objs = [o for o in scene.objects if o.type == "MESH" and not o.hide_render]
    if not objs:
        return None
    lo, hi = world_bbox(objs)
    centre = Vector(((lo + hi) / 2.0).tolist())
    radius = max(float(np.linalg.norm(hi - lo)) / 2.0, 1e-3)

    cam_data = bpy.data.cameras.new("factory_camera")
    cam_data.lens_unit = "FOV"
    cam_data.angle = math.radians(40)
    camera = bpy.data.objects.new("factory_camera", cam_data)
    link(camera)
    direction = Vector((1.0, -1.5, 0.8)).normalized()  # front (-Y), right and a bit above
    distance = radius / math.sin(cam_data.angle / 2) * 1.05
    camera.location = centre + direction * distance
    camera.rotation_euler = (centre - camera.location).to_track_quat("-Z", "Y").to_euler()
    cam_data.clip_start, cam_data.clip_end = distance * 0.01, distance * 10
    scene.camera = camera

    sun_data = bpy.data.lights.new("factory_sun", "SUN")
    sun_data.energy = 4.0
    sun = bpy.data.objects.new("factory_sun", sun_data)
    sun.rotation_euler = (math.radians(45), math.radians(10), math.radians(30))
    link(sun)
    world_created = scene.world is None
    if world_created:
        scene.world = bpy.data.worlds.new("factory_world")
    world = scene.world
    if world.node_tree is None and hasattr(world, "use_nodes"):
        world.use_nodes = True
    background = next((n for n in world.node_tree.nodes if n.type == "BACKGROUND"), None)
    if background is not None:
        # Darker than the grey of untextured models, so that they stand out.
        background.inputs[0].default_value = (0.16, 0.18, 0.22, 1.0)
        background.inputs[1].default_value = 1.0

    render = scene.render
    render.resolution_x = render.resolution_y = RENDER_SIZE
    render.resolution_percentage = 100
    render.film_transparent = False
    formats = render.image_settings.bl_rna.properties["file_format"].enum_items.keys()
    file_format = "WEBP" if "WEBP" in formats else "PNG"
    render.image_settings.file_format = file_format
    render.image_settings.color_mode = "RGB"
    path = out_dir / f"{stem}.{'webp' if file_format == 'WEBP' else 'png'}"
    render.filepath = str(path)
    try:
        for engine in ("CYCLES", "BLENDER_WORKBENCH"):
            try:
                render.engine = engine
                if engine == "CYCLES":
                    scene.cycles.device = "CPU"
                    scene.cycles.samples = 8
                    scene.cycles.use_denoising = False
                    scene.cycles.use_adaptive_sampling = False
                    scene.cycles.max_bounces = 2
                bpy.ops.render.render(write_still=True)
                if path.is_file():
                    break
            except Exception as exc:  # noqa: BLE001 - try the next engine
                log.warning("render with %s failed: %s", engine, exc)
        else:
            return None
    finally:
        bpy.data.objects.remove(camera)
        bpy.data.objects.remove(sun)
        bpy.data.cameras.remove(cam_data)
        bpy.data.lights.remove(sun_data)
    return path


def op_render(req: "Request"):
    import_model(req.input("model"), req.work_dir, req.params.get("format"))
    image = render_preview(req.out_dir)
    if image is None:
        raise FactoryError("nothing to render")
    return {"rendered_image": image}, {"part_names": [o.name for o in mesh_objects()]}


# --------------------------------------------------------------------------------------------
# segment / texture / complete / decimate
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Rigging
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Animation (op `retarget`)
# --------------------------------------------------------------------------------------------

# Per preset: cycle period (s), amplitude in degrees per bone category, forward speed (m/s,
# only when not animate_in_place) and jump height (fraction of the model's height).
PRESETS = {
    "idle": dict(period=1.0, amp={"spine": 4, "head": 8, "arm_upper": 6, "tail": 12}),
    "walk": dict(period=1.0, amp={"leg_upper": 25, "leg_lower": 20, "arm_upper": 18, "spine": 3,
                                  "tail": 10, "chain": 12}, speed=1.2),
    "run": dict(period=0.5, amp={"leg_upper": 45, "leg_lower": 40, "arm_upper": 35, "spine": 6,
                                 "tail": 20, "chain": 22}, speed=3.0),
    "jump": dict(period=1.0, amp={"leg_upper": 30, "leg_lower": 45, "arm_upper": 60}, jump=0.3),
    "dance": dict(period=0.5, amp={"spine": 15, "head": 20, "arm_upper": 70, "arm_lower": 40}),
    "wave": dict(period=0.5, amp={"arm_upper": 50, "arm_lower": 35}),
    "turn": dict(period=1.0, amp={"spine": 20, "head": 30}),
    "attack": dict(period=1.0, amp={"arm_upper": 80, "arm_lower": 50, "spine": 20}),
    "fly": dict(period=0.5, amp={"arm_upper": 50, "arm_lower": 30, "tail": 15, "chain": 10}),
    "swim": dict(period=1.0, amp={"spine": 20, "tail": 35, "chain": 25}),
}

CATEGORY_PATTERNS = [
    ("leg_lower", r"shin|calf|lower_?leg|leg.*lower|foot|toe|heel"),
    ("leg_upper", r"thigh|upper_?leg|leg"),
    ("arm_lower", r"forearm|lower_?arm|hand|palm|f_"),  # f_: Rigify finger bones
    ("arm_upper", r"upper_?arm|arm|wing|shoulder"),
    ("head", r"head|neck|jaw"),
    ("tail", r"tail"),
    ("spine", r"spine|chest|torso|hips|pelvis|body"),
]


def bone_category(name: str) -> str:
    low = name.lower()
    for category, pattern in CATEGORY_PATTERNS:
        if re.search(pattern, low):
            return category
    return "other"


def bone_side(name: str) -> int:
    """-1 left, +1 right, 0 centre, from the usual naming conventions (.L, _L, left...)."""
    low = name.lower()
    if re.search(r"(\.|_|-)l($|\.|_|\d)|left", low):
        return -1
    if re.search(r"(\.|_|-)r($|\.|_|\d)|right", low):
        return 1
    return 0


def animation_name(spec: str) -> str:
    """'preset:walk' -> 'walk'; 'preset:quadruped:walk' -> 'walk'."""
    name = spec[len("preset:"):] if spec.startswith("preset:") else spec
    return name.split(":")[-1] or "animation"


def root_bone(arm):
    roots = [b for b in arm.data.bones if b.parent is None]
    return max(roots, key=lambda b: len(b.children_recursive)) if roots else None


def keyframe_action(arm, name: str, in_place: bool, height: float):
    """Creates one action on the armature with sine motions (a 1 s loop at 24 fps)."""
    preset = PRESETS.get(name)
    rng = rng_for("animation", name)
    if preset is None:  # unknown preset: a deterministic motion of its own
        categories = ["spine", "head", "arm_upper", "arm_lower", "leg_upper", "leg_lower", "tail", "chain"]
        preset = dict(period=rng.choice((0.5, 1.0)),
                      amp={c: rng.uniform(10, 40) for c in rng.sample(categories, 4)})
    axis_index = digest("axis", name)[0] % 3 if name not in ("walk", "run", "jump") else 0
    pose_bones = list(arm.pose.bones)
    chain_index = {pb.name: i for i, pb in enumerate(pose_bones)}

    def motion(pb):
        cat = bone_category(pb.name)
        amp = preset["amp"].get(cat, 0)
        if not amp and cat in ("spine", "other") and "chain" in preset["amp"]:
            amp = preset["amp"]["chain"]  # serpentine/others rigs: a travelling wave
        side = bone_side(pb.name)
        index = chain_index[pb.name]
        phase = (math.pi if side > 0 else 0.0) + (index * 0.6 if cat in ("spine", "other", "tail") else 0)
        digits = re.findall(r"\d+", pb.name)
        if digits and cat.startswith("leg"):
            phase += math.pi * (int(digits[-1]) % 2)  # alternating gaits for many legs
        return amp, phase

    motions = {pb.name: motion(pb) for pb in pose_bones}
    if not any(amp for amp, _ in motions.values()):
        # No bone matched the preset's categories: move a few bones chosen from the name.
        for pb in rng.sample(pose_bones, min(4, len(pose_bones))):
            motions[pb.name] = (rng.uniform(15, 35), rng.uniform(0, math.pi))

    ad = arm.animation_data or arm.animation_data_create()
    action = bpy.data.actions.new(name)
    ad.action = action
    root = root_bone(arm)
    frames = list(range(1, FPS + 2, 3))  # 1..25 every 3 frames
    for pb in pose_bones:
        pb.rotation_mode = "QUATERNION"
    for frame in frames:
        t = (frame - 1) / FPS
        for pb in pose_bones:
            amp, phase = motions[pb.name]
            if not amp:
                continue
            angle = math.radians(amp) * math.sin(2 * math.pi * t / preset["period"] + phase)
            axis = Vector([1.0 if i == axis_index else 0.0 for i in range(3)])
            pb.rotation_quaternion = Quaternion(axis, angle)
            pb.keyframe_insert("rotation_quaternion", frame=frame, group=pb.name)
        if root is not None and (preset.get("jump") or (preset.get("speed") and not in_place)):
            offset = Vector((0.0, 0.0, 0.0))
            if preset.get("speed") and not in_place:
                offset.y = -preset["speed"] * t  # forward is -Y
            if preset.get("jump"):
                offset.z = preset["jump"] * height * max(math.sin(math.pi * t), 0.0)
            # Pose locations are in the bone's rest frame: convert the armature-space offset.
            pb = arm.pose.bones[root.name]
            pb.location = root.matrix_local.to_3x3().inverted() @ (
                arm.matrix_world.to_3x3().inverted() @ offset)
            pb.keyframe_insert("location", frame=frame, group=pb.name)
    # Each action goes to its own NLA track, where the glTF exporter (ACTIONS mode) finds it;
    # the active slot is then freed for the next action.
    track = ad.nla_tracks.new()
    track.name = name
    track.strips.new(name, frames[0], action)
    ad.action = None
    for pb in pose_bones:  # back to the rest pose
        pb.rotation_quaternion = Quaternion()
        pb.location = Vector()
    return action


def op_retarget(req: "Request"):
    p = req.params
    specs = [str(s) for s in (p.get("animations") or ["preset:idle"])]
    in_place = bool(p.get("animate_in_place", False))
    import_model(req.input("model"), req.work_dir)
    arms = scene_objects("ARMATURE")
    if not arms:
        raise FactoryError("the model has no armature: rig it first")
    arm = arms[0]
    # Actions that came with the file are dropped: the output holds exactly the requested ones.
    for obj in scene_objects():
        if obj.animation_data:
            obj.animation_data_clear()
    for action in list(bpy.data.actions):
        bpy.data.actions.remove(action)
    lo, hi = world_bbox(mesh_objects())
    height = float(hi[2] - lo[2])
    names = []
    for spec in specs:
        name = animation_name(spec)
        base, n = name, 2
        while name in names:
            name, n = f"{base}_{n}", n + 1
        keyframe_action(arm, name, in_place, height)
        names.append(name)
    bpy.context.scene.frame_set(1)
    model = export_glb(req.out_dir / "model.glb", animations=True)
    image = render_preview(req.out_dir)
    gltf_names = [a.get("name") for a in glb_json(model).get("animations", [])]
    # Check what a glTF importer makes of it (the names the add-on will see).
    reset_scene()
    import_model(model, req.work_dir)
    imported = sorted(a.name for a in bpy.data.actions)
    info = {"animations": names, "gltf_animation_names": gltf_names,
            "action_names_on_import": imported, "frames": FPS + 1, "fps": FPS,
            "animate_in_place": in_place}
    return {"model": model, "rendered_image": image}, info


# --------------------------------------------------------------------------------------------
# convert / import
# --------------------------------------------------------------------------------------------

CONVERT_FORMATS = ("GLTF", "GLB", "USDZ", "FBX", "OBJ", "STL", "3MF")
ORIENTATION_ANGLES = {"-y": 0.0, "+x": math.pi / 2, "+y": math.pi, "-x": -math.pi / 2}


def flatten_bottom(meshes, threshold: float) -> int:
    """Sets vertices within threshold x height of the lowest z to exactly that z."""
    lo, hi = world_bbox(meshes)
    limit = lo[2] + threshold * (hi[2] - lo[2])
    moved = 0
    for obj in meshes:
        mesh = obj.data
        co = np.zeros(len(mesh.vertices) * 3)
        mesh.vertices.foreach_get("co", co)
        co = co.reshape(-1, 3)
        m = np.array(obj.matrix_world)
        world = co @ m[:3, :3].T + m[:3, 3]
        low = world[:, 2] < limit
        if low.any():
            world[low, 2] = lo[2]
            inv = np.linalg.inv(m)
            local = world @ inv[:3, :3].T + inv[:3, 3]
            mesh.vertices.foreach_set("co", local.ravel())
            mesh.update()
            moved += int(low.sum())
    return moved


def prepare_images(directory: Path, texture_size, texture_format) -> None:
    """Writes every image to directory as a real file (formats that reference textures by
    path need one; glTF-imported images are only packed), resized when asked."""
    ext_of = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "BMP": "bmp", "TARGA": "tga",
              "TIFF": "tif"}
    fmt = (texture_format or "PNG").upper()
    fmt = {"JPG": "JPEG", "TGA": "TARGA", "TIF": "TIFF"}.get(fmt, fmt)
    fmt = fmt if fmt in ext_of else "PNG"
    directory.mkdir(parents=True, exist_ok=True)
    for image in list(bpy.data.images):
        if image.type != "IMAGE" or image.size[0] == 0:  # render results, missing files
            continue
        if texture_size and image.size[0] and image.size[0] != int(texture_size):
            image.scale(int(texture_size), int(texture_size))
        path = directory / f"{safe_name(image.name, 'texture')}.{ext_of[fmt]}"
        image.file_format = fmt
        image.filepath_raw = str(path)
        image.save(filepath=str(path))
        if image.packed_file is not None:
            image.unpack(method="REMOVE")
            image.filepath = str(path)
            image.reload()


def write_3mf(path: Path, meshes) -> int:
    """3MF by hand (Blender has no exporter): an OPC zip with the core-spec model XML, one
    object per mesh, triangles in world space, millimetres. Returns the triangle count."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    objects_xml, items_xml, total = [], [], 0
    for index, obj in enumerate(meshes, start=1):
        eval_obj = obj.evaluated_get(depsgraph)
        mesh = eval_obj.to_mesh()
        try:
            mesh.calc_loop_triangles()
            co = np.zeros(len(mesh.vertices) * 3)
            mesh.vertices.foreach_get("co", co)
            tris = np.zeros(len(mesh.loop_triangles) * 3, dtype=np.int64)
            mesh.loop_triangles.foreach_get("vertices", tris)
        finally:
            eval_obj.to_mesh_clear()
        m = np.array(eval_obj.matrix_world)
        co = (co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]) * 1000.0
        tris = tris.reshape(-1, 3)
        total += len(tris)
        vertices = "".join(f'<vertex x="{x:.4f}" y="{y:.4f}" z="{z:.4f}"/>' for x, y, z in co)
        triangles = "".join(f'<triangle v1="{a}" v2="{b}" v3="{c}"/>' for a, b, c in tris)
        objects_xml.append(f'<object id="{index}" name={quoteattr(obj.name)} type="model"><mesh>'
                           f"<vertices>{vertices}</vertices><triangles>{triangles}</triangles>"
                           f"</mesh></object>")
        items_xml.append(f'<item objectid="{index}"/>')
    model_xml = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                 '<model unit="millimeter" xml:lang="en-US" '
                 'xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02">'
                 '<metadata name="Application">Tripo emulator asset factory</metadata>'
                 f'<resources>{"".join(objects_xml)}</resources>'
                 f'<build>{"".join(items_xml)}</build></model>')
    content_types = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="model" ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/>'
        '</Types>')
    rels = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Target="/3D/3dmodel.model" Id="rel0" '
            'Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/></Relationships>')
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", content_types)
        archive.writestr("_rels/.rels", rels)
        archive.writestr("3D/3dmodel.model", model_xml)
    return total


def op_convert(req: "Request"):
    p = req.params
    fmt = str(p.get("format") or "GLTF").upper()
    if fmt not in CONVERT_FORMATS:
        raise FactoryError(f"unknown format {fmt!r}; one of {CONVERT_FORMATS}")
    with_animation = bool(p.get("with_animation", True)) and fmt in ("GLTF", "GLB", "FBX", "USDZ")
    import_model(req.input("model"), req.work_dir)

    if p.get("part_names"):
        chosen, meshes = select_parts(p["part_names"])
        for obj in meshes:
            if obj not in chosen:
                remove_object(obj)
    has_armature = bool(scene_objects("ARMATURE"))
    # Everything below (bounding box, pivot, flattening) works on the rest pose: a skinned
    # mesh shown in the pose of its first action would be measured and edited wrongly.
    for arm in scene_objects("ARMATURE"):
        arm.data.pose_position = "REST"
    bpy.context.view_layer.update()
    if not with_animation:
        for obj in scene_objects():
            if obj.animation_data:
                obj.animation_data_clear()
            if obj.type == "ARMATURE":
                for pb in obj.pose.bones:
                    pb.matrix_basis = Matrix.Identity(4)
    if has_armature and with_animation:
        meshes = mesh_objects()  # keep the hierarchy: skins and animations need it
    else:
        meshes = bake_meshes_to_world()
        has_armature = False
    if p.get("face_limit"):
        decimate_total(meshes, int(p["face_limit"]))

    # One global transform, applied to the root objects: orientation, scale, then pivot.
    orientation = (p.get("export_orientation") or "-y").lower()
    if orientation not in ORIENTATION_ANGLES:
        raise FactoryError(f"unknown export_orientation {orientation!r}")
    scale = float(p.get("scale_factor") or 1.0)
    transform = Matrix.Diagonal((scale, scale, scale, 1.0)) @ Matrix.Rotation(
        ORIENTATION_ANGLES[orientation], 4, "Z")
    roots = [o for o in scene_objects() if o.parent is None]
    for obj in roots:
        obj.matrix_world = transform @ obj.matrix_world
    bpy.context.view_layer.update()
    if p.get("pivot_to_center_bottom"):
        lo, hi = world_bbox(meshes)
        shift = Matrix.Translation(Vector((-(lo[0] + hi[0]) / 2, -(lo[1] + hi[1]) / 2, -lo[2])))
        for obj in roots:
            obj.matrix_world = shift @ obj.matrix_world
        bpy.context.view_layer.update()
    if not has_armature:
        bake_meshes_to_world()
    if p.get("flatten_bottom"):
        flatten_bottom(meshes, float(p.get("flatten_bottom_threshold") or 0.01))
    bpy.context.view_layer.update()

    lo, hi = world_bbox(meshes)
    faces = 0
    depsgraph = bpy.context.evaluated_depsgraph_get()
    for obj in meshes:
        eval_obj = obj.evaluated_get(depsgraph)
        faces += triangle_count(eval_obj.to_mesh())
        eval_obj.to_mesh_clear()

    for arm in scene_objects("ARMATURE"):  # only left when animations are exported
        arm.data.pose_position = "POSE"
    stage = req.work_dir / "export"
    stage.mkdir()
    texture_size, texture_format = p.get("texture_size"), p.get("texture_format")
    if fmt in ("GLTF", "GLB"):
        if texture_size:
            prepare_images(req.work_dir / "textures", texture_size, None)
        image_format = {"JPEG": "JPEG", "JPG": "JPEG", "WEBP": "WEBP"}.get(
            str(texture_format or "").upper(), "AUTO")
        kwargs = dict(export_format="GLTF_SEPARATE" if fmt == "GLTF" else "GLB",
                      export_image_format=image_format, export_yup=True,
                      export_animations=with_animation)
        if with_animation:
            kwargs.update(export_animation_mode="ACTIONS", export_nla_strips=True)
        target = stage / ("model.gltf" if fmt == "GLTF" else "model.glb")
        call_op(bpy.ops.export_scene.gltf, filepath=str(target), **kwargs)
        if fmt == "GLTF":
            model = zip_directory(stage, req.out_dir / "model.zip")
        else:
            model = req.out_dir / "model.glb"
            shutil.move(str(target), model)
    elif fmt == "FBX":
        prepare_images(req.work_dir / "textures", texture_size, texture_format)
        preset = str(p.get("fbx_preset") or "blender").lower()
        kwargs = dict(path_mode="COPY", embed_textures=True, add_leaf_bones=False,
                      bake_anim=with_animation, use_selection=False)
        if preset == "mixamo":
            kwargs.update(use_armature_deform_only=True)
        elif preset in ("3dsmax", "max", "unreal"):
            kwargs.update(axis_up="Z", axis_forward="-Y")
        model = req.out_dir / "model.fbx"
        call_op(bpy.ops.export_scene.fbx, filepath=str(model), **kwargs)
    elif fmt == "OBJ":
        prepare_images(req.work_dir / "textures", texture_size, texture_format)
        call_op(bpy.ops.wm.obj_export, filepath=str(stage / "model.obj"), export_materials=True,
                path_mode="COPY", export_selected_objects=False, apply_modifiers=True)
        model = zip_directory(stage, req.out_dir / "model.zip")
    elif fmt == "STL":
        model = req.out_dir / "model.stl"
        call_op(bpy.ops.wm.stl_export, filepath=str(model), ascii_format=False,
                apply_modifiers=True, export_selected_objects=False, global_scale=1.0,
                use_scene_unit=False, forward_axis="Y", up_axis="Z")
    elif fmt == "USDZ":
        prepare_images(req.work_dir / "textures", texture_size, texture_format)
        model = req.out_dir / "model.usdz"
        call_op(bpy.ops.wm.usd_export, filepath=str(model), export_animation=with_animation,
                export_materials=True, export_textures=True, selected_objects_only=False)
    else:  # 3MF
        model = req.out_dir / "model.3mf"
        faces = write_3mf(model, meshes)

    if not model.is_file() or model.stat().st_size == 0:
        raise FactoryError(f"the {fmt} exporter wrote no file")
    info = {"format": fmt, "faces": int(faces),
            "bbox": [round(float(v), 6) for v in (hi - lo)], "min_z": round(float(lo[2]), 6) + 0.0,
            "part_names": [o.name for o in meshes], "with_animation": with_animation,
            "file_size": model.stat().st_size}
    return {"model": model}, info


def op_import(req: "Request"):
    import_model(req.input("model"), req.work_dir, req.params.get("format"))
    ensure_object_mode()
    animated = bool(bpy.data.actions) and bool(scene_objects("ARMATURE"))
    if not scene_objects("ARMATURE"):
        bake_meshes_to_world()  # static models: one clean transform-free node per mesh
    files = {"model": export_glb(req.out_dir / "model.glb", animations=animated),
             "rendered_image": render_preview(req.out_dir)}
    meshes = mesh_objects()
    info = {"part_names": [o.name for o in meshes],
            "faces": sum(triangle_count(o.data) for o in meshes),
            "vertices": sum(len(o.data.vertices) for o in meshes),
            "has_armature": bool(scene_objects("ARMATURE"))}
    return files, info


# --------------------------------------------------------------------------------------------
# Requests and the serve loop
# --------------------------------------------------------------------------------------------

OPS = {"model": op_model, "segment": op_segment, "texture": op_texture, "complete": op_complete,
       "decimate": op_decimate, "rig": op_rig, "retarget": op_retarget, "render": op_render,
       "convert": op_convert, "import": op_import}


class Request:
    def __init__(self, raw: dict, work_dir: Path):
        self.id = raw.get("id")
        self.op = raw.get("op")
        self.params = raw.get("params") or {}
        self.inputs = raw.get("inputs") or {}
        if not raw.get("out_dir"):
            raise FactoryError("request has no out_dir")
        self.out_dir = Path(raw["out_dir"]).resolve()
        self.work_dir = work_dir

    def input(self, name: str) -> Path:
        if name not in self.inputs:
            raise FactoryError(f"op {self.op} needs input {name!r}")
        return Path(self.inputs[name])


def handle(raw: dict) -> dict:
    started = time.monotonic()
    answer = {"id": raw.get("id"), "op": raw.get("op")}
    work_dir = Path(tempfile.mkdtemp(prefix="asset_factory_"))
    try:
        if raw.get("op") not in OPS:
            raise FactoryError(f"unknown op {raw.get('op')!r}; one of {sorted(OPS)}")
        req = Request(raw, work_dir)
        req.out_dir.mkdir(parents=True, exist_ok=True)
        reset_scene()
        files, info = OPS[req.op](req)
        answer.update(ok=True, files={k: str(v) for k, v in files.items() if v is not None},
                      info=info)
    except Exception as exc:  # noqa: BLE001 - every failure becomes an answer, never a crash
        log.error("%s failed: %s", raw.get("op"), exc)
        answer.update(ok=False, error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc())
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    answer["seconds"] = round(time.monotonic() - started, 3)
    log.info("%s %s in %.2f s", answer.get("op"), "ok" if answer.get("ok") else "FAILED",
             answer["seconds"])
    return answer


def _flush_native_stdout() -> None:
    """Flushes C stdio (Blender and Cycles print through it) so that their buffered text is
    written before, never in the middle of, an answer line."""
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except Exception:  # noqa: BLE001 - not available on every platform; answers start on a new line anyway
        pass


def emit(payload: dict) -> None:
    sys.stdout.flush()
    _flush_native_stdout()
    sys.stdout.write("\n" + PROTOCOL_PREFIX + json.dumps(payload) + "\n")
    sys.stdout.flush()


def serve() -> None:
    ensure_addons()
    emit({"ready": True, "blender": bpy.app.version_string, "pid": os.getpid(), "ops": sorted(OPS)})
    while True:
        line = sys.stdin.readline()
        if not line:
            break  # EOF: the client closed our stdin
        line = line.strip()
        if not line:
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            emit({"id": None, "ok": False, "error": f"bad JSON request: {exc}"})
            continue
        if raw.get("op") == "ping":
            emit({"id": raw.get("id"), "ok": True, "op": "ping", "files": {}, "info": {}})
            continue
        if raw.get("op") == "shutdown":
            emit({"id": raw.get("id"), "ok": True, "op": "shutdown", "files": {}, "info": {}})
            break
        emit(handle(raw))


def script_args(argv: list[str]) -> list[str]:
    """Blender passes the script's own arguments after `--`; a plain Python has no `--`."""
    return argv[argv.index("--") + 1:] if "--" in argv else argv[1:]


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="asset_factory.py", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--serve", action="store_true", help="answer JSON requests from stdin")
    mode.add_argument("--request", help="serve one JSON request (or @file) and exit")
    parser.add_argument("--log-level", default=os.environ.get("TRIPO_FACTORY_LOG", "INFO"))
    args = parser.parse_args(script_args(argv))
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="asset_factory %(levelname)s: %(message)s")
    if args.serve:
        serve()
        return 0
    text = Path(args.request[1:]).read_text() if args.request.startswith("@") else args.request
    ensure_addons()
    answer = handle(json.loads(text))
    emit(answer)
    return 0 if answer.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
