"""Conversion (op `convert`) to GLTF/GLB, USDZ, FBX, OBJ, STL and 3MF, and op `import`."""

from __future__ import annotations

import math
import shutil
import zipfile
from pathlib import Path
from xml.sax.saxutils import quoteattr

import bpy  # first: with the bpy module from PyPI, bmesh and mathutils only exist after it
import numpy as np
from mathutils import Matrix, Vector

from .common import FactoryError, call_op, safe_name, zip_directory
from .scene import (
    bake_meshes_to_world,
    decimate_total,
    ensure_object_mode,
    export_glb,
    import_model,
    mesh_objects,
    remove_object,
    scene_objects,
    triangle_count,
    world_bbox,
)
from .preview import render_preview
from .mesh_edits import select_parts


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
