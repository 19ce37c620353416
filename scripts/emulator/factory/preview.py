"""Preview rendering (op `render`, and the preview image of every model op)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import bpy  # first: with the bpy module from PyPI, bmesh and mathutils only exist after it
import numpy as np
from mathutils import Vector

from .common import FactoryError, RENDER_SIZE
from .scene import import_model, link, mesh_objects, world_bbox

log = logging.getLogger("asset_factory")


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
