"""How finished selection actions land on the scene (main thread only). The runtime picks the
handler by `job.meta["kind"]` (see blender.landing).

The user's own edits survive: existing objects keep their transforms, parents, modifiers and
collections.

- retexture: the selected parts (all parts / the model when none is selected) get the result's
  materials and UVs. When the result's mesh has the same topology, materials, material indices and
  UV layers are copied into the existing mesh; otherwise the object gets the result's mesh (the old
  mesh is kept with a fake user). Old materials are kept with a fake user so users can switch back.
- complete: the completed parts get the result's geometry (the old mesh kept with a fake user).
- segment / low poly (replace) / rig: a new asset (importer.place_asset) takes the original's
  world transform, parent and collections; the original is hidden (viewport and render), renamed
  "<name> (original)" so the new objects get the clean names, and marked `replaced_by` in its
  metadata. Low poly can also be added beside the original instead.
- animate: every clip becomes a named Action on the existing armature, each on its own NLA track.
- rig check: `riggable` and the detected rig type are written onto the asset's metadata.
- bring to Tripo: the object's metadata is written; its mesh is not changed.

Tripo space: a Tripo asset's geometry lives in its root object's local space (generated parts are
children of the root with identity transforms; a brought object is exported at the identity), so
results are placed with the root's world matrix.
"""

from __future__ import annotations

import logging
import os

import numpy as np
from mathutils import Matrix, Vector

from ...core.protocol import vocabulary
from .. import importer, metadata
from .analysis import ACTION_TASKS, KIND_PREFIX, find_object, find_objects, rig_task_id_of

log = logging.getLogger(__name__)


def _mesh_array(mesh, attribute: str, collection: str, width: int, dtype=np.float64):
    items = getattr(mesh, collection)
    data = np.empty(len(items) * width, dtype=dtype)
    items.foreach_get(attribute, data)
    return data.reshape(-1, width) if width > 1 else data


def same_topology(mesh_a, mesh_b, matrix_b=None, tolerance: float = 1e-4) -> bool:
    """Whether two meshes have the same vertices (in order, `matrix_b` applied to b), faces and
    face corners."""
    if (len(mesh_a.vertices), len(mesh_a.polygons), len(mesh_a.loops)) != \
            (len(mesh_b.vertices), len(mesh_b.polygons), len(mesh_b.loops)):
        return False
    if not len(mesh_a.vertices):
        return True
    co_a = _mesh_array(mesh_a, "co", "vertices", 3)
    co_b = _mesh_array(mesh_b, "co", "vertices", 3)
    if matrix_b is not None and matrix_b != Matrix.Identity(4):
        m = np.array(matrix_b)
        co_b = co_b @ m[:3, :3].T + m[:3, 3]
    size = max(float(np.ptp(co_a, axis=0).max()), 1e-6)
    if float(np.abs(co_a - co_b).max()) > tolerance * max(size, 1.0):
        return False
    loops_a = _mesh_array(mesh_a, "vertex_index", "loops", 1, np.int64)
    loops_b = _mesh_array(mesh_b, "vertex_index", "loops", 1, np.int64)
    return bool(np.array_equal(loops_a, loops_b))


def transfer_surface(target, source, *, geometry: bool = False) -> str:
    """Gives `target` the materials and UVs of `source` (an imported result object); with
    `geometry` (or when the topologies differ) its mesh. Returns "surface" or "mesh"."""
    old = target.data
    for material in old.materials:
        if material is not None:
            material.use_fake_user = True  # the user can switch back
    new = source.data
    matrix = source.matrix_world.copy()
    if not geometry and same_topology(old, new, matrix):
        old.materials.clear()
        for material in new.materials:
            old.materials.append(material)
        if len(old.polygons):
            indices = _mesh_array(new, "material_index", "polygons", 1, np.int32)
            old.polygons.foreach_set("material_index", indices)
        for layer in new.uv_layers:
            dest = old.uv_layers.get(layer.name) or old.uv_layers.new(name=layer.name)
            uv = np.empty(len(new.loops) * 2, dtype=np.float32)
            layer.data.foreach_get("uv", uv)
            dest.data.foreach_set("uv", uv)
        if new.uv_layers.active is not None and old.uv_layers.get(new.uv_layers.active.name):
            old.uv_layers.active = old.uv_layers[new.uv_layers.active.name]
        old.update()
        for slot in target.material_slots:
            if slot.link == "OBJECT":
                slot.link = "DATA"
        return "surface"
    if new.users > 1:
        new = new.copy()
    if matrix != Matrix.Identity(4):
        new.transform(matrix)
    old.use_fake_user = True
    new.name = f"{old.name} {'completed' if geometry else 'textured'}"
    target.data = new
    for slot in target.material_slots:
        if slot.link == "OBJECT":
            slot.link = "DATA"
    return "mesh"


def _step_index(job: dict, task_type: str) -> int:
    for index in range(len(job["steps"]) - 1, -1, -1):
        if job["steps"][index]["task_type"] == task_type:
            return index
    return len(job["steps"]) - 1


def _result_file(job: dict) -> str:
    found = importer.model_file(job)
    if found is None:
        raise RuntimeError("the job downloaded no model file")
    return found[1]


def _update_fields(job: dict, step_index: int) -> dict:
    common = importer.base_metadata(job, step_index)
    keys = ("provider", "job_id", "task_id", "task_type", "source_task_id", "model_task_id", "chain",
            "params_json", "credits", "created_at", "completed_at", "imported_at")
    values = {k: common[k] for k in keys}
    values["model_task_type"] = common["task_type"]
    if job.get("meta", {}).get("texture_prompt"):
        values["texture_prompt"] = job["meta"]["texture_prompt"]
    return values


def _pointer_fields(job: dict, step_index: int) -> dict:
    step = job["steps"][step_index]
    return {"model_task_id": step.get("task_id") or "", "model_task_type": step["task_type"]}


def _apply_bring(context, job: dict):
    """Writes the import task's metadata onto a brought object (its mesh is not changed)."""
    meta = job.get("meta", {})
    uid = meta.get("bring_uid")
    if not uid:
        return None
    obj = find_object(uid, context.scene)
    if obj is None:
        raise importer.TargetGone(f"{meta.get('bring_name', 'the object')} is no longer in the file")
    index = _step_index(job, vocabulary.IMPORT_MODEL)
    values = importer.base_metadata(job, index)
    values.update({"role": "model", "part_name": "", "model_task_type": vocabulary.IMPORT_MODEL,
                   "prompt": "", "source_file": os.path.basename(job["steps"][index]["params"].get("input", ""))})
    if job["steps"][index].get("files", {}).get("model_url"):
        values["part_names"] = importer.glb_node_names(job["steps"][index]["files"]["model_url"])
    metadata.write(obj, values)
    return obj


def _targets_and_members(context, job: dict):
    meta = job.get("meta", {})
    scene = context.scene
    members = find_objects(meta.get("members"), scene)
    targets = find_objects(meta.get("targets"), scene)
    root = find_object(meta.get("root_uid", ""), scene)
    return root, members, targets


def _result(job: dict, objects=(), root=None, armature=None, actions=()) -> importer.ImportResult:
    return importer.ImportResult.for_job(job, root=root, objects=list(objects), armature=armature,
                                         actions=list(actions))


def apply_bring(context, job: dict) -> importer.ImportResult:
    obj = _apply_bring(context, job)
    return _result(job, [obj] if obj else [], root=obj)


def _apply_in_place(context, job: dict, task_type: str, *, geometry: bool) -> importer.ImportResult:
    """Retexture / complete: the targets get the result's surface (or geometry)."""
    _apply_bring(context, job)
    root, members, targets = _targets_and_members(context, job)
    if not targets:
        raise importer.TargetGone(f"the objects of {job['meta'].get('asset_name', 'the asset')} are no longer in the file")
    index = _step_index(job, task_type)
    path = _result_file(job)
    changed = []
    with importer.glb_import(context, path) as result:
        by_part = {result.part_name(o): o for o in result.meshes}
        for target in targets:
            part = (metadata.read(target) or {}).get("part_name") or ""
            source = by_part.get(part) if part else None
            if source is None and len(result.meshes) == 1 and (not part or len(targets) == 1):
                source = result.meshes[0]
            if source is None:
                log.warning("%s: no part named %r in the result; left as it was", target.name, part)
                continue
            how = transfer_surface(target, source, geometry=geometry)
            log.info("%s: new %s from the result's %s", target.name,
                     "materials and UVs" if how == "surface" else "mesh", source.name)
            changed.append(target)
        part_names = [result.part_name(o) for o in result.meshes]
    if not changed:
        raise RuntimeError("the result holds none of the selected parts")
    fields = _update_fields(job, index)
    for obj in changed:
        metadata.write(obj, fields)
    pointer = _pointer_fields(job, index)
    for obj in members:
        if obj not in changed:
            metadata.write(obj, pointer)
    if root is not None and root not in changed:
        metadata.write(root, {**fields, "part_names": part_names} if len(part_names) > 1 else fields)
    log.info("%s: %d object(s) changed", job["label"], len(changed))
    return _result(job, changed, root=root)


def apply_retexture(context, job: dict) -> importer.ImportResult:
    return _apply_in_place(context, job, vocabulary.TEXTURE_MODEL, geometry=False)


def apply_complete(context, job: dict) -> importer.ImportResult:
    return _apply_in_place(context, job, vocabulary.MESH_COMPLETION, geometry=True)


def _world_bounds(objects) -> tuple[Vector, Vector] | None:
    points = []
    for obj in objects:
        if obj.type == "MESH":
            points += [obj.matrix_world @ Vector(corner) for corner in obj.bound_box]
    if not points:
        return None
    lo = Vector((min(p.x for p in points), min(p.y for p in points), min(p.z for p in points)))
    hi = Vector((max(p.x for p in points), max(p.y for p in points), max(p.z for p in points)))
    return lo, hi


def _new_asset(context, job: dict, *, name: str, replace: bool, role_extra: dict | None = None,
               offset: bool = False, force_parts: bool = False) -> importer.ImportResult:
    """Imports a result as a new asset in the original's place (replace) or beside it: its world
    transform, parent and collections."""
    original = _apply_bring(context, job)
    root, members, _targets = _targets_and_members(context, job)
    if original is not None:
        root, members = original, [original]
    task_type = ACTION_TASKS[job["meta"]["action"]]
    matrix = root.matrix_world.copy() if root is not None else Matrix.Translation(context.scene.cursor.location)
    if offset and root is not None:
        bounds = _world_bounds(members)
        if bounds is not None:
            width = max(bounds[1].x - bounds[0].x, 0.1)
            matrix = Matrix.Translation(Vector((width * 1.25, 0.0, 0.0))) @ matrix
    collections = (list(root.users_collection) if root is not None else []) or \
        [context.collection or context.scene.collection]
    extra = {"asset_id": job["job_id"], "model_task_type": task_type, **(role_extra or {})}
    if job["meta"].get("prompt"):
        extra["prompt"] = job["meta"]["prompt"]
    # Not marked for the Asset Browser: the original's mark (and collection) stays the asset's.
    return importer.place_asset(context, job, _step_index(job, task_type), _result_file(job),
                                name=name, matrix=matrix, collections=collections,
                                parent=root.parent if root is not None else None,
                                force_parts=force_parts, extra_meta=extra,
                                replaces=members if replace else (), mark_asset=False)


def apply_segment(context, job: dict) -> importer.ImportResult:
    return _new_asset(context, job, name=job["meta"].get("asset_name") or job["label"], replace=True,
                      force_parts=True)


def apply_lowpoly(context, job: dict) -> importer.ImportResult:
    replace = bool(job["meta"].get("replace"))
    base = job["meta"].get("asset_name") or job["label"]
    return _new_asset(context, job, name=base if replace else f"{base} low poly", replace=replace,
                      offset=not replace)


def apply_rig(context, job: dict) -> importer.ImportResult:
    index = _step_index(job, vocabulary.ANIMATE_RIG)
    step = job["steps"][index]
    extra = {"rig_task_id": step.get("task_id") or "",
             "rig_model": step["params"].get("model") or vocabulary.DEFAULT_RIG_MODEL,
             "rig_type": step["params"].get("rig_type") or
             ((step.get("task") or {}).get("output") or {}).get("rig_type") or "",
             "rig_spec": step["params"].get("spec") or "tripo"}
    return _new_asset(context, job, name=job["meta"].get("asset_name") or job["label"], replace=True,
                      role_extra=extra)


def apply_rig_check(context, job: dict) -> importer.ImportResult:
    _apply_bring(context, job)
    root, members, _targets = _targets_and_members(context, job)
    index = _step_index(job, vocabulary.ANIMATE_PRERIGCHECK)
    step = job["steps"][index]
    output = (step.get("task") or {}).get("output") or {}
    riggable = output.get("riggable")
    rig_type = output.get("rig_type") or output.get("topology") or ""
    values = {"riggable": bool(riggable), "rig_type_detected": str(rig_type or ""),
              "rig_check_task_id": step.get("task_id") or ""}
    for obj in members or ([root] if root is not None else []):
        metadata.write(obj, values)
    settings = getattr(context.scene, "tripo", None)
    if settings is not None and rig_type in vocabulary.RIG_TYPES:
        try:
            settings.rig_type = rig_type
        except (TypeError, AttributeError):
            pass
    log.info("%s: riggable=%s rig_type=%s", job["label"], riggable, rig_type)
    return _result(job, [], root=root)


def apply_animate(context, job: dict) -> importer.ImportResult:
    """Every clip of the result becomes a named Action on the asset's existing armature."""
    root, members, _targets = _targets_and_members(context, job)
    armature = next((o for o in [root] + members if o is not None and o.type == "ARMATURE"), None)
    if armature is None:
        raise importer.TargetGone(f"the armature of {job['meta'].get('asset_name', 'the asset')} is no longer in the file")
    index = _step_index(job, vocabulary.ANIMATE_RETARGET)
    path = _result_file(job)
    with importer.glb_import(context, path) as result:
        temp_armature = result.armature
        temp_name = temp_armature.name if temp_armature else ""
        actions = list(result.actions)
        for action in actions:
            action.name = importer.clip_name(action.name, temp_name)
            action.use_fake_user = True
        if temp_armature is not None and temp_armature.animation_data is not None:
            temp_armature.animation_data_clear()
    names = importer.attach_actions(armature, actions, context.scene, slot_name=temp_name)
    fields = _update_fields(job, index)
    fields["rig_task_id"] = job["meta"].get("rig_task_id") or rig_task_id_of(metadata.read(armature) or {})
    known = list((metadata.read(armature) or {}).get("animations") or [])
    fields["animations"] = known + [n for n in names if n not in known]
    metadata.write(armature, fields)
    pointer = {**_pointer_fields(job, index), "rig_task_id": fields["rig_task_id"]}
    for obj in members:
        if obj is not armature:
            metadata.write(obj, pointer)
    log.info("%s: %d action(s) on %s", job["label"], len(names), armature.name)
    return _result(job, [armature], root=armature, armature=armature, actions=names)



IMPORT_HANDLERS = {
    KIND_PREFIX + "retexture": apply_retexture,
    KIND_PREFIX + "complete": apply_complete,
    KIND_PREFIX + "segment": apply_segment,
    KIND_PREFIX + "lowpoly": apply_lowpoly,
    KIND_PREFIX + "rig": apply_rig,
    KIND_PREFIX + "rig_check": apply_rig_check,
    KIND_PREFIX + "animate": apply_animate,
    KIND_PREFIX + "bring_to_tripo": apply_bring,
}
