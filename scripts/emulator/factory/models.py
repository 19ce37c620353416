"""Modelling (op `model`): procedural props, and the realistic profile (what Tripo really returns)."""

from __future__ import annotations

import logging
import math
import random
import re
from pathlib import Path

import bpy  # first: with the bpy module from PyPI, bmesh and mathutils only exist after it
import bmesh
import numpy as np
from mathutils import Matrix, Vector

from .common import FactoryError, colour_from, digest, glb_json, rng_for, safe_name
from .scene import (
    decimate_object,
    decimate_total,
    export_glb,
    grey,
    join_objects,
    join_triangles,
    link,
    make_material,
    make_pattern_image,
    order_key,
    principled_nodes,
    triangle_count,
)
from .preview import render_preview

log = logging.getLogger("asset_factory")


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
