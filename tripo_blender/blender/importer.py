"""Turns a finished job's files into Blender objects (main thread only).

Orientation: Tripo's GLBs are glTF (+Y up, the model's front towards +Z). Blender's glTF
importer converts that to Blender's +Z up with the front facing -Y, i.e. towards the viewer in
Front view (numpad 1): models stand upright and face you, at the scale Tripo made them (metres).
We keep that conversion and add no rotation of our own.

What lands in the scene:
- a plain model: its mesh object, named after the asset, at the 3D cursor;
- parts (generate_parts, segmentation): one object per part, named after the part, parented to
  an Empty named after the asset (select the Empty for the whole asset, a child for one part);
- a rig: the armature (named after the asset) with its skinned mesh as a child, and every
  animation of the file as a named Action, each on its own NLA track, the first one active;
- the rendered preview, packed into the .blend as an image named "<asset> preview";
- the asset marked for the Asset Browser, with that preview, tags and a catalog (assets.py).
"""

from __future__ import annotations

import json
import logging
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import bpy

from ..core.engine.jobs import record_credits
from ..core.protocol import vocabulary
from . import assets, metadata

log = logging.getLogger(__name__)

_DUPLICATE_SUFFIX = re.compile(r"\.\d{3}$")


class TargetGone(RuntimeError):
    """The objects a result was meant for are no longer in the file (deleted, or undone)."""


@dataclass
class ImportResult:
    job_id: str
    root: object = None
    objects: list = field(default_factory=list)
    armature: object = None
    actions: list = field(default_factory=list)
    preview: object = None
    files: dict = field(default_factory=dict)

    @property
    def object_names(self) -> list[str]:
        return [o.name for o in self.objects]


def glb_node_names(path: str | Path) -> list[str]:
    """Mesh node names straight from a GLB's JSON chunk (the authoritative part names)."""
    with open(path, "rb") as handle:
        header = handle.read(20)
        if len(header) < 20 or header[:4] != b"glTF":
            return []
        chunk_length, chunk_type = struct.unpack_from("<II", header, 12)
        if chunk_type != 0x4E4F534A:  # "JSON"
            return []
        document = json.loads(handle.read(chunk_length))
    return [node.get("name", "") for node in document.get("nodes", []) if "mesh" in node]


#: The collection the glTF importer puts its helper objects in (the bone-shape sphere).
GLTF_HELPER_COLLECTION = "glTF_not_exported"


def gltf_import_options() -> dict:
    """Options for bpy.ops.import_scene.gltf: no bone-shape sphere where the importer can skip
    it (`disable_bone_shape`, not in every Blender version). Bones then draw as Blender's own."""
    props = bpy.ops.import_scene.gltf.get_rna_type().properties
    return {"disable_bone_shape": True} if "disable_bone_shape" in props else {}


def remove_import_helpers(new_objects: list, collections_before: set) -> list:
    """Removes what the glTF importer made for display only (its bone-shape sphere and the
    helper collection holding it), so no untagged stray object lands; returns the rest."""
    helpers = [o for o in new_objects
               if any(c.name.startswith(GLTF_HELPER_COLLECTION) for c in o.users_collection)]
    if helpers:
        for obj in new_objects:
            if obj.pose is not None:
                for pose_bone in obj.pose.bones:
                    if pose_bone.custom_shape in helpers:
                        pose_bone.custom_shape = None
        for helper in helpers:
            mesh = helper.data
            bpy.data.objects.remove(helper, do_unlink=True)
            if mesh is not None and mesh.users == 0:
                bpy.data.meshes.remove(mesh)
    for collection in set(bpy.data.collections) - collections_before:
        if collection.name.startswith(GLTF_HELPER_COLLECTION) and not collection.all_objects:
            bpy.data.collections.remove(collection)
    return [o for o in new_objects if o not in helpers]


def asset_name(job: dict) -> str:
    name = job.get("meta", {}).get("name") or job.get("label") or "Tripo asset"
    name = re.sub(r"\s+", " ", name).strip()
    return name[:48] or "Tripo asset"


def model_file(job: dict) -> tuple[int, str] | None:
    """The last step that produced a model file Blender can import (GLB/glTF)."""
    for index in range(len(job["steps"]) - 1, -1, -1):
        path = job["steps"][index].get("files", {}).get("model_url")
        if path and Path(path).suffix.lower() in (".glb", ".gltf"):
            return index, path
    return None


def preview_file(job: dict) -> str | None:
    for step in reversed(job["steps"]):
        path = step.get("files", {}).get("rendered_image_url")
        if path and Path(path).is_file():
            return path
    return None


def chain_of(job: dict, upto: int) -> list[str]:
    chain = list(job.get("meta", {}).get("chain") or [])
    chain += [f"{s['task_type']}:{s['task_id']}" for s in job["steps"][: upto + 1] if s.get("task_id")]
    return chain


def base_metadata(job: dict, step_index: int) -> dict:
    step = job["steps"][step_index]
    meta = job.get("meta", {})
    task = step.get("task") or {}
    params = dict(step.get("params") or {})
    source = params.get("input") or ""
    if step.get("input_from") is not None:
        source = job["steps"][step["input_from"]].get("task_id") or ""
    generation = next((s for s in job["steps"] if s["task_type"] in vocabulary.GENERATION_TYPES), None)
    return {
        "provider": job.get("provider") or "tripo",
        "asset_id": meta.get("asset_id") or job["job_id"],
        "job_id": job["job_id"],
        "task_id": step.get("task_id") or "",
        "task_type": step["task_type"],
        "source_task_id": meta.get("source_task_id", "") if step_index == 0 and not source else source,
        "model_task_id": step.get("task_id") or "",
        "chain": chain_of(job, step_index),
        "prompt": meta.get("prompt") or params.get("prompt") or "",
        "negative_prompt": params.get("negative_prompt") or "",
        "images": meta.get("images") or [],
        "texture_prompt": meta.get("texture_prompt") or "",
        "params_json": json.dumps(params, sort_keys=True, default=str),
        "model_version": (generation or step).get("params", {}).get("model") or params.get("model") or "",
        "credits": record_credits(job),
        "created_at": task.get("created_at") or "",
        "completed_at": task.get("completed_at") or "",
        "imported_at": metadata.now_iso(),
    }


def load_preview(path: str | None, name: str):
    if not path:
        return None
    try:
        image = bpy.data.images.load(path, check_existing=True)
    except RuntimeError as exc:  # an unreadable preview must not lose the model
        log.warning("preview %s could not be loaded: %s", path, exc)
        return None
    image.name = f"{name} preview"
    image.pack()
    return image


def import_job(context, job: dict) -> ImportResult:
    """Imports a READY job's model into context.scene; returns what was created."""
    result = ImportResult(job_id=job["job_id"], files={
        f"{i}:{k}": v for i, s in enumerate(job["steps"]) for k, v in s.get("files", {}).items()})
    found = model_file(job)
    if found is None:
        return result
    step_index, path = found
    name = asset_name(job)

    objects_before = set(bpy.data.objects)
    actions_before = set(bpy.data.actions)
    collections_before = set(bpy.data.collections)
    bpy.ops.import_scene.gltf(filepath=path, **gltf_import_options())
    new_objects = [o for o in bpy.data.objects if o not in objects_before]
    new_actions = [a for a in bpy.data.actions if a not in actions_before]
    new_objects = remove_import_helpers(new_objects, collections_before)
    if not new_objects:
        raise RuntimeError(f"{Path(path).name} contained nothing to import")

    part_names = glb_node_names(path)
    meshes = [o for o in new_objects if o.type == "MESH"]
    armature = next((o for o in new_objects if o.type == "ARMATURE"), None)
    top_level = [o for o in new_objects if o.parent not in new_objects]
    common = base_metadata(job, step_index)
    kind = job.get("meta", {}).get("kind")

    imported_armature_name = armature.name if armature is not None else ""
    if armature is not None:
        root = armature
        root.name = name
        for mesh in meshes:
            mesh.name = f"{name} mesh"
            metadata.write(mesh, {**common, "role": "model", "part_name": ""})
        metadata.write(root, {**common, "role": "armature", "part_name": ""})
    elif len(meshes) > 1 or kind == "parts":
        root = bpy.data.objects.new(name, None)
        root.empty_display_type = "PLAIN_AXES"
        context.collection.objects.link(root)
        for obj in top_level:
            obj.parent = root
        for mesh in meshes:
            part = _DUPLICATE_SUFFIX.sub("", mesh.name) if mesh.name not in part_names else mesh.name
            metadata.write(mesh, {**common, "role": "part", "part_name": part})
        metadata.write(root, {**common, "role": "asset", "part_name": "", "part_names": part_names})
        new_objects.append(root)
    else:
        root = top_level[0] if len(top_level) == 1 else meshes[0]
        root.name = name
        for obj in new_objects:
            metadata.write(obj, {**common, "role": "model", "part_name": ""})

    root.location = job.get("meta", {}).get("location") or context.scene.cursor.location
    result.preview = load_preview(preview_file(job), name)
    if result.preview is not None:
        metadata.write(root, {"preview_image": result.preview.name})

    if armature is not None and new_actions:
        result.actions = _attach_actions(armature, new_actions, context.scene, imported_armature_name)

    result.root, result.objects, result.armature = root, new_objects, armature
    try:
        assets.mark(context, job, result, common, part_names if root.type == "EMPTY" else [])
    except Exception:  # noqa: BLE001 - the model is in the scene with its metadata: keep it
        log.exception("%s could not be marked as an asset", name)

    for obj in context.view_layer.objects:
        obj.select_set(obj in new_objects)
    context.view_layer.objects.active = root
    log.info("imported %s: %d object(s), %d action(s)", name, len(new_objects), len(result.actions))
    return result


def _clean_action_name(name: str, armature_names: tuple[str, ...]) -> str:
    """"preset:walk" -> "walk"; Blender 4.2's importer also appends the armature: "walk_Armature"."""
    name = name.split(":")[-1]
    for armature_name in armature_names:
        for suffix in (f"_{armature_name}", f"-{armature_name}"):
            if armature_name and name.endswith(suffix):
                return name[: -len(suffix)]
    return name


def _attach_actions(armature, actions: list, scene, imported_name: str = "") -> list[str]:
    """Names every action after its animation and stacks them on NLA tracks, first one active."""
    anim = armature.animation_data or armature.animation_data_create()
    names = []
    for action in actions:
        action.name = _clean_action_name(action.name, (imported_name, armature.name))
        action.use_fake_user = True  # keep every clip in the file, not only the active one
        names.append(action.name)
        if not any(strip.action == action for track in anim.nla_tracks for strip in track.strips):
            track = anim.nla_tracks.new()
            track.name = action.name
            track.strips.new(action.name, int(action.frame_range[0]), action)
            track.mute = True
    anim.action = actions[0]
    start, end = actions[0].frame_range
    scene.frame_start, scene.frame_end = int(start), max(int(end), int(start) + 1)
    return names
