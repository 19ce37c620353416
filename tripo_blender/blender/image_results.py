"""Image analysis results in the scene: a Gaussian splat as a point cloud, a depth map as an
image and a displaced plane (main thread only; their jobs are built by
`core.engine.recipes.analysis_job`).

What lands (each object tagged with the Tripo metadata, `role` "splat" or "depth", at the 3D
cursor, marked as an asset like every imported model; the downloaded file stays in the job's
download folder beside its `.task.json` sidecar). The panel, the scripting API, batch runs and
import by task id all land them here (blender.landing, by job.meta["kind"]):
- image_to_splat: the PLY read by Blender's PLY importer (4.0+) into a mesh of vertices, one per
  splat, with the splat's attributes (f_dc_*, opacity, scale_*, rot_*) kept as point attributes,
  a colour attribute "Col" from the DC colour, and a Geometry Nodes modifier that shows the
  vertices as points (a loose vertex is invisible outside Edit Mode). Blender cannot render
  Gaussians: this is a preview of where the splats are and their colours; the PLY is the result.
  If Blender cannot read the file, the file is kept, a warning says so, and the job still ends
  imported (with no object).
- image_to_depth: the PNG loaded as an image (not packed: it stays a file next to the
  downloads) and a plane with the image's aspect ratio, displaced by it (bright = near, as
  Tripo's gray depth maps are), textured with the source image when it is a local file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import bpy

from . import importer, metadata

log = logging.getLogger(__name__)

SPLAT, DEPTH = "splat", "depth"  # job.meta["kind"]: see core.engine.jobs.ANALYSIS_KINDS

# The depth plane: 1 m on its longer side (the size Tripo's models come in), and a relief of a
# quarter of that at full brightness: the shape reads clearly without turning into spikes.
# Black (far) stays on the plane (mid level 0). Change it on the "Depth" modifier.
DEPTH_PLANE_SIZE = 1.0
DEPTH_STRENGTH = 0.25
DEPTH_PLANE_SEGMENTS = 200  # on the longer side: enough relief detail, ~40k vertices at most
# Points drawn for the splats when the PLY carries no scales (metres).
SPLAT_POINT_RADIUS = 0.005
_SH_C0 = 0.28209479177387814  # degree-0 spherical harmonic: colour = 0.5 + C0 * f_dc


def _result_file(job: dict, output: str) -> tuple[int, str | None]:
    for index in range(len(job["steps"]) - 1, -1, -1):
        path = job["steps"][index].get("files", {}).get(output)
        if path:
            return index, path
    return len(job["steps"]) - 1, None


def _kept_only(job: dict, result: importer.ImportResult, why: str, path: str):
    """The file could not become an object: it is the result, so say where it is."""
    from . import runtime
    text = f"{job.get('label')}: {why}; the file is kept at {path}"
    runtime.get_runtime().notify("WARNING", text, job["job_id"])
    return result


def _land(context, job: dict, result: importer.ImportResult, obj, step_meta: dict) -> None:
    """Places the object, marks it as an asset (like every imported model) and selects it."""
    obj.location = job.get("meta", {}).get("location") or context.scene.cursor.location
    result.root, result.objects = obj, [obj]
    importer.mark_as_asset(context, job, result, step_meta, [])
    importer.select_result(context, result)


# --- splat ---------------------------------------------------------------------------------------

def import_splat(context, job: dict) -> importer.ImportResult:
    result = importer.ImportResult.for_job(job)
    step_index, path = _result_file(job, "model_url")
    if not path or not Path(path).is_file():
        log.warning("%s: no splat file was downloaded", job.get("label"))
        return result
    name = importer.asset_name(job)
    if not hasattr(bpy.ops.wm, "ply_import"):
        return _kept_only(job, result, "this Blender has no PLY importer", path)
    before = set(bpy.data.objects)
    try:
        # Tripo's outputs are +Y up like its GLBs: the same conversion as the glTF importer's.
        _ply_import(filepath=path, forward_axis="NEGATIVE_Z", up_axis="Y", **_ply_options())
    except RuntimeError as exc:  # a PLY this Blender cannot read: the file is the result
        return _kept_only(job, result, f"Blender could not read the splat ({exc})", path)
    new_objects = [o for o in bpy.data.objects if o not in before]
    obj = next((o for o in new_objects if o.type == "MESH"), None)
    if obj is None:
        return _kept_only(job, result, "the splat file held no points", path)
    obj.name = obj.data.name = name
    _splat_colours(obj.data)
    _show_as_points(obj)
    step_meta = {**importer.base_metadata(job, step_index), "role": "splat", "part_name": "",
                 "source_file": path, "point_count": len(obj.data.vertices)}
    metadata.write(obj, step_meta)
    _land(context, job, result, obj, step_meta)
    log.info("imported the splat %s: %d point(s)", name, len(obj.data.vertices))
    return result


def _ply_import(**options) -> None:
    bpy.ops.wm.ply_import(**options)


def _ply_options() -> dict:
    # Keep the splat's per-vertex attributes where the importer can (Blender 4.1+).
    props = bpy.ops.wm.ply_import.get_rna_type().properties
    return {"import_attributes": True} if "import_attributes" in props else {}


def _attribute_values(mesh, name: str):
    import numpy as np
    attribute = mesh.attributes.get(name)
    if attribute is None or attribute.data_type != "FLOAT" or attribute.domain != "POINT":
        return None
    values = np.empty(len(mesh.vertices), dtype=np.float32)
    attribute.data.foreach_get("value", values)
    return values


def _splat_colours(mesh) -> None:
    """"Col" from the splats' DC colour and opacity; "splat_radius" from their scales."""
    import numpy as np
    count = len(mesh.vertices)
    dc = [_attribute_values(mesh, f"f_dc_{i}") for i in range(3)]
    if count and all(v is not None for v in dc):
        opacity = _attribute_values(mesh, "opacity")
        alpha = 1.0 / (1.0 + np.exp(-opacity)) if opacity is not None else np.ones(count, np.float32)
        rgba = np.stack([np.clip(0.5 + _SH_C0 * v, 0.0, 1.0) for v in dc] + [alpha], axis=1)
        colour = mesh.color_attributes.new("Col", "FLOAT_COLOR", "POINT")
        colour.data.foreach_set("color", rgba.astype(np.float32).ravel())
        mesh.color_attributes.active_color = colour
    scales = [_attribute_values(mesh, f"scale_{i}") for i in range(3)]
    radius = mesh.attributes.new("splat_radius", "FLOAT", "POINT")
    if count and all(v is not None for v in scales):  # 3DGS stores log scales
        values = np.exp(np.mean(np.stack(scales), axis=0)).astype(np.float32)
    else:
        values = np.full(count, SPLAT_POINT_RADIUS, dtype=np.float32)
    radius.data.foreach_set("value", values)


def _show_as_points(obj) -> None:
    """A Geometry Nodes modifier: vertices -> points sized by the splat, coloured by "Col"."""
    group = bpy.data.node_groups.new(f"{obj.name} points", "GeometryNodeTree")
    group.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    group.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    nodes, links = group.nodes, group.links
    source, sink = nodes.new("NodeGroupInput"), nodes.new("NodeGroupOutput")
    to_points = nodes.new("GeometryNodeMeshToPoints")
    radius = nodes.new("GeometryNodeInputNamedAttribute")
    radius.data_type = "FLOAT"
    radius.inputs["Name"].default_value = "splat_radius"
    set_material = nodes.new("GeometryNodeSetMaterial")
    set_material.inputs["Material"].default_value = _splat_material(obj.name)
    links.new(source.outputs[0], to_points.inputs["Mesh"])
    links.new(radius.outputs["Attribute"], to_points.inputs["Radius"])
    links.new(to_points.outputs["Points"], set_material.inputs["Geometry"])
    links.new(set_material.outputs["Geometry"], sink.inputs[0])
    modifier = obj.modifiers.new("Splat points", "NODES")
    modifier.node_group = group


def _node_material(name: str):
    material = bpy.data.materials.new(name)
    if bpy.app.version < (5, 0):  # 5.0+ always uses the node tree and deprecates the switch
        material.use_nodes = True
    return material


def _splat_material(name: str):
    material = _node_material(f"{name} splat")
    nodes = material.node_tree.nodes
    principled = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    colour = nodes.new("ShaderNodeAttribute")
    colour.attribute_name = "Col"
    material.node_tree.links.new(colour.outputs["Color"], principled.inputs["Base Color"])
    return material


# --- depth ---------------------------------------------------------------------------------------

def import_depth(context, job: dict) -> importer.ImportResult:
    result = importer.ImportResult.for_job(job)
    step_index, path = _result_file(job, "depth_image_url")
    if not path or not Path(path).is_file():
        log.warning("%s: no depth map was downloaded", job.get("label"))
        return result
    name = importer.asset_name(job)
    image = bpy.data.images.load(path, check_existing=True)  # a file next to the downloads
    image.name = f"{name} map"
    image.colorspace_settings.name = "Non-Color"  # depth values, not a colour to convert
    width, height = image.size
    if not width or not height:
        raise RuntimeError(f"{Path(path).name} is not an image Blender can read")
    obj = _depth_plane(context, name, width, height)
    texture = bpy.data.textures.new(f"{name} map", "IMAGE")
    texture.image = image
    texture.extension = "EXTEND"  # no wrap-around at the plane's edges
    modifier = obj.modifiers.new("Depth", "DISPLACE")
    modifier.texture, modifier.texture_coords, modifier.direction = texture, "UV", "Z"
    modifier.strength, modifier.mid_level = DEPTH_STRENGTH, 0.0
    source = _local_source_image(job, step_index)
    obj.data.materials.append(_depth_material(name, source or image))
    params = job["steps"][step_index].get("params") or {}
    step_meta = {**importer.base_metadata(job, step_index), "role": "depth", "part_name": "",
                 "source_file": path, "depth_image": image.name,
                 "depth_kind": params.get("kind") or "", "depth_strength": DEPTH_STRENGTH}
    metadata.write(obj, step_meta)
    result.preview = image  # also the asset's preview
    _land(context, job, result, obj, step_meta)
    log.info("imported the depth map %s (%d x %d px)", name, width, height)
    return result


def _depth_plane(context, name: str, width: int, height: int):
    import bmesh
    aspect = width / height
    size_x, size_y = (DEPTH_PLANE_SIZE, DEPTH_PLANE_SIZE / aspect) if aspect >= 1 else (
        DEPTH_PLANE_SIZE * aspect, DEPTH_PLANE_SIZE)
    segments = min(DEPTH_PLANE_SEGMENTS, max(width, height) - 1)
    seg_x = max(1, round(segments * size_x / DEPTH_PLANE_SIZE))
    seg_y = max(1, round(segments * size_y / DEPTH_PLANE_SIZE))
    mesh = bpy.data.meshes.new(name)
    bm = bmesh.new()
    try:
        bmesh.ops.create_grid(bm, x_segments=seg_x, y_segments=seg_y, size=0.5, calc_uvs=True)
        bmesh.ops.scale(bm, vec=(size_x, size_y, 1.0), verts=bm.verts)
        bm.to_mesh(mesh)
    finally:
        bm.free()
    obj = bpy.data.objects.new(name, mesh)
    context.collection.objects.link(obj)
    return obj


def _local_source_image(job: dict, step_index: int):
    """The image the depth map was made from, when it is a local file (a relief of the photo)."""
    source = (job["steps"][step_index].get("params") or {}).get("input") or ""
    if not source or not os.path.isfile(source):
        return None
    try:
        return bpy.data.images.load(source, check_existing=True)
    except RuntimeError:
        return None


def _depth_material(name: str, image):
    material = _node_material(f"{name} depth")
    nodes = material.node_tree.nodes
    principled = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    texture = nodes.new("ShaderNodeTexImage")
    texture.image = image
    material.node_tree.links.new(texture.outputs["Color"], principled.inputs["Base Color"])
    return material


IMPORT_HANDLERS = {SPLAT: import_splat, DEPTH: import_depth}

