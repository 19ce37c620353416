"""Quality checks of an imported asset (main thread only).

`check_asset(objects, **thresholds)` looks at the mesh objects of one asset and answers a plain
dict, ready for JSON, the report and the object's metadata:

    {"passed": False, "failed": ["faces"],
     "checks": {"faces": {"passed": False, "value": 5120, "limit": 4000, "message": "..."}, ...},
     "stats": {"meshes": 1, "faces": 5120, "vertices": 3400, "size": [1.2, 0.8, 0.9], ...}}

Checks (a threshold of None skips the check, which then passes with `"limit": null`):
- faces / vertices: totals over the asset's meshes, against the requested face limit (the
  vertex check uses the same number: a triangle mesh has about half as many vertices as faces,
  so a vertex count above the face limit means something went wrong);
- bounding_box: the world-space size; its largest side within [min_size, max_size] metres;
- non_manifold_edges: edges not shared by exactly two faces, counted after welding the split
  vertices that UV seams leave in every imported glTF (otherwise each seam would count);
- loose_geometry: vertices without edges and edges without faces;
- textures: image texture nodes whose image is missing or has no pixels, and, when textures were
  required, materials without any image texture;
- parts: the number of mesh objects, at least `min_parts`.

A splat or a depth map (`output` "splat" / "depth", see blender/image_results) is no model: a
point cloud is all loose vertices and a depth plane has open edges by design, and neither has
faces to count against a face limit. So they get the checks that mean something for them:
- points (splat): the point cloud holds at least one point;
- depth_image (depth): the image displacing the plane is loaded, has pixels and its file exists;
- bounding_box, as above.

A check never raises: bad or unusual geometry turns into a failed check with a message.
"""

from __future__ import annotations

import logging
import os

import bpy
import bmesh

log = logging.getLogger(__name__)

WELD_DISTANCE = 1e-5


def _mesh_objects(objects) -> list:
    out = []
    for obj in objects or []:
        try:
            if obj is not None and obj.type == "MESH" and obj.data is not None:
                out.append(obj)
        except ReferenceError:  # removed meanwhile
            continue
    return out


def _check(passed, value, limit, message: str) -> dict:
    return {"passed": passed, "value": value, "limit": limit, "message": message}


def _limit_check(value: int, limit, what: str) -> dict:
    if limit is None:
        return _check(True, value, None, f"{value} {what} (no limit requested)")
    ok = value <= int(limit)
    word = "within" if ok else "above"
    return _check(ok, value, int(limit), f"{value} {what}, {word} the limit of {int(limit)}")


def _geometry_counts(obj) -> dict:
    """Non-manifold edges (after welding seam splits), loose vertices and loose edges."""
    bm = bmesh.new()
    try:
        bm.from_mesh(obj.data)
        loose_verts = sum(1 for v in bm.verts if not v.link_edges)
        loose_edges = sum(1 for e in bm.edges if not e.link_faces)
        if bm.verts:
            bmesh.ops.remove_doubles(bm, verts=list(bm.verts), dist=WELD_DISTANCE)
        non_manifold = sum(1 for e in bm.edges if e.link_faces and not e.is_manifold)
        return {"non_manifold_edges": non_manifold, "loose_vertices": loose_verts,
                "loose_edges": loose_edges}
    finally:
        bm.free()


def _image_problem(image) -> str | None:
    if image is None:
        return "an image texture node has no image"
    try:
        if image.source in ("GENERATED", "VIEWER", "MOVIE", "SEQUENCE"):
            return None
        if image.packed_file is None and image.filepath:
            path = bpy.path.abspath(image.filepath, library=image.library)
            if not os.path.isfile(path):
                return f"image '{image.name}' points to a missing file ({image.filepath})"
        width, height = image.size[:]
        if width == 0 or height == 0:
            return f"image '{image.name}' has no pixels"
    except (ReferenceError, RuntimeError) as exc:
        return f"image could not be read: {exc}"
    return None


def _texture_state(meshes) -> tuple[int, list[str], int]:
    """(image textures found, problems, materials without any image)."""
    images, problems, bare = 0, [], 0
    seen = set()
    for obj in meshes:
        for slot in obj.material_slots:
            material = slot.material
            if material is None or material.name in seen:
                continue
            seen.add(material.name)
            nodes = material.node_tree.nodes if _shades_with_nodes(material) else []
            textures = [n for n in nodes if n.type == "TEX_IMAGE"]
            if not textures:
                bare += 1
            for node in textures:
                images += 1
                problem = _image_problem(node.image)
                if problem:
                    problems.append(f"{material.name}: {problem}")
    return images, problems, bare


def _world_bounds(meshes) -> tuple[list[float], list[float]] | None:
    from mathutils import Vector

    low = [float("inf")] * 3
    high = [float("-inf")] * 3
    found = False
    for obj in meshes:
        if not len(obj.data.vertices):
            continue
        for corner in obj.bound_box:
            point = obj.matrix_world @ Vector(corner)
            for axis in range(3):
                low[axis] = min(low[axis], point[axis])
                high[axis] = max(high[axis], point[axis])
            found = True
    return (low, high) if found else None


def check_asset(objects, *, max_faces=None, max_vertices=None, min_size=0.01, max_size=100.0,
                max_non_manifold_edges=0, max_loose=0, require_textures=False, min_parts=None,
                output="model", **_ignored) -> dict:
    """QC of one asset's objects (the ImportResult's objects); `output` "model", "splat" or
    "depth" chooses the checks. Never raises."""
    checks: dict[str, dict] = {}
    stats: dict = {}
    try:
        meshes = _mesh_objects(objects)
        stats["meshes"] = len(meshes)
        try:
            bpy.context.view_layer.update()  # world matrices after the importer moved the root
        except Exception:  # noqa: BLE001 - e.g. no view layer in an odd context
            pass
    except Exception as exc:  # noqa: BLE001
        meshes = []
        checks["meshes"] = _check(False, None, None, f"the asset's objects could not be read: {exc}")
    if not meshes and "meshes" not in checks:
        checks["meshes"] = _check(False, 0, None, "the asset has no mesh")

    def guarded(name: str, fn) -> None:
        try:
            checks[name] = fn()
        except Exception as exc:  # noqa: BLE001 - QC reports, it never stops the run
            log.warning("QC check %s failed to run: %s", name, exc)
            checks[name] = _check(False, None, None, f"the check could not run: {exc}")

    def faces():
        count = sum(len(o.data.polygons) for o in meshes)
        stats["faces"] = count
        stats["triangles"] = sum(max(0, len(p.vertices) - 2) for o in meshes for p in o.data.polygons)
        return _limit_check(count, max_faces, "faces")

    def vertices():
        count = sum(len(o.data.vertices) for o in meshes)
        stats["vertices"] = count
        return _limit_check(count, max_vertices, "vertices")

    def bounding_box():
        bounds = _world_bounds(meshes)
        if bounds is None:
            return _check(False, None, [min_size, max_size], "no geometry, so no bounding box")
        size = [round(h - l, 6) for l, h in zip(*bounds)]
        stats["size"] = size
        stats["bounds_min"] = [round(v, 6) for v in bounds[0]]
        stats["bounds_max"] = [round(v, 6) for v in bounds[1]]
        largest = max(size)
        shown = " x ".join(f"{v:.3g}" for v in size)
        if min_size is not None and largest < float(min_size):
            return _check(False, size, [min_size, max_size],
                          f"{shown} m: smaller than {min_size} m (degenerate or wrongly scaled)")
        if max_size is not None and largest > float(max_size):
            return _check(False, size, [min_size, max_size], f"{shown} m: larger than {max_size} m")
        return _check(True, size, [min_size, max_size], f"{shown} m")

    geometry: dict = {}

    def gather():
        if not geometry:
            totals = {"non_manifold_edges": 0, "loose_vertices": 0, "loose_edges": 0}
            for obj in meshes:
                for key, value in _geometry_counts(obj).items():
                    totals[key] += value
            geometry.update(totals)
            stats.update(totals)
        return geometry

    def non_manifold():
        value = gather()["non_manifold_edges"]
        if max_non_manifold_edges is None:
            return _check(True, value, None, f"{value} non-manifold edge(s) (not checked)")
        ok = value <= int(max_non_manifold_edges)
        return _check(ok, value, int(max_non_manifold_edges),
                      f"{value} non-manifold edge(s)" + ("" if ok else f", more than {max_non_manifold_edges}"))

    def loose():
        counts = gather()
        value = counts["loose_vertices"] + counts["loose_edges"]
        text = f"{counts['loose_vertices']} loose vertices, {counts['loose_edges']} loose edges"
        if max_loose is None:
            return _check(True, value, None, text + " (not checked)")
        return _check(value <= int(max_loose), value, int(max_loose), text)

    def textures():
        found, problems, bare = _texture_state(meshes)
        stats["image_textures"] = found
        if problems:
            return _check(False, found, None, "; ".join(problems[:5]))
        if require_textures and (found == 0 or bare):
            what = "no image texture at all" if found == 0 else f"{bare} material(s) without an image texture"
            return _check(False, found, None, f"textures were asked for but the asset has {what}")
        return _check(True, found, None, f"{found} image texture(s), none missing")

    def parts():
        count = len(meshes)
        stats["parts"] = count
        if min_parts is None:
            return _check(True, count, None, f"{count} mesh object(s)")
        ok = count >= int(min_parts)
        return _check(ok, count, int(min_parts),
                      f"{count} part(s)" + ("" if ok else f", fewer than {min_parts}"))

    def points():
        count = sum(len(o.data.vertices) for o in meshes)
        stats["points"] = count
        return _check(count > 0, count, 1, f"{count} splat point(s)" if count else "the splat has no points")

    def depth_image():
        images = [m.texture.image for o in meshes for m in o.modifiers
                  if m.type == "DISPLACE" and m.texture is not None and m.texture.type == "IMAGE"]
        if not images:
            return _check(False, 0, None, "no depth map displaces the plane")
        problems = [p for p in map(_image_problem, images) if p]
        if problems:
            return _check(False, len(images), None, "; ".join(problems))
        stats["depth_image_size"] = list(images[0].size[:])
        width, height = stats["depth_image_size"]
        return _check(True, len(images), None, f"depth map '{images[0].name}', {width} x {height} px")

    checks_of = {
        "model": (("faces", faces), ("vertices", vertices), ("bounding_box", bounding_box),
                  ("non_manifold_edges", non_manifold), ("loose_geometry", loose),
                  ("textures", textures), ("parts", parts)),
        "splat": (("points", points), ("bounding_box", bounding_box)),
        "depth": (("depth_image", depth_image), ("bounding_box", bounding_box)),
    }
    if meshes:
        for name, fn in checks_of.get(output, checks_of["model"]):
            guarded(name, fn)
    failed = [name for name, check in checks.items() if not check.get("passed")]
    return {"passed": not failed, "failed": failed, "checks": checks, "stats": stats}


def summary(result: dict) -> str:
    """One line: "QC ok" or "QC FAILED: faces (5120 faces, above the limit of 4000)"."""
    if not result:
        return "QC not run"
    if result.get("passed"):
        return "QC ok"
    details = [f"{name} ({result['checks'][name].get('message', '')})" for name in result.get("failed", [])]
    return "QC FAILED: " + "; ".join(details)


def _shades_with_nodes(material) -> bool:
    """Blender 5.0+ always shades with the node tree (and deprecates `use_nodes`); before, a
    material may keep a node tree it does not use."""
    if material.node_tree is None:
        return False
    return bpy.app.version >= (5, 0) or material.use_nodes
