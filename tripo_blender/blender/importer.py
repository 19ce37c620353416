"""Turns a finished job's files into Blender objects (main thread only).

Orientation: Tripo's GLBs are glTF (+Y up, the model's front towards +Z). Blender's glTF
importer converts that to Blender's +Z up with the front facing -Y, i.e. towards the viewer in
Front view (numpad 1): models stand upright and face you, at the scale Tripo made them (metres).
We keep that conversion and add no rotation of our own.

Every new asset is built by `place_asset`: generation results (`import_job`), re-imports, the
batch runner and the selection actions that make a new version (segment, low poly, rig) alike.
`glb_import` is the scoped glTF import they share with the actions that only borrow a result's
data (retexture, complete, animate). What lands in the scene:
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
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import bpy
from mathutils import Matrix

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
    notes: list = field(default_factory=list)  # what the user should know about this landing

    @property
    def object_names(self) -> list[str]:
        return [o.name for o in self.objects]

    @classmethod
    def for_job(cls, job: dict, **fields) -> "ImportResult":
        """A result of `job`, with every downloaded file keyed "<step>:<output>"."""
        files = {f"{i}:{k}": v for i, s in enumerate(job["steps"]) for k, v in s.get("files", {}).items()}
        return cls(job_id=job["job_id"], files=files, **fields)


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


def ensure_object_mode(context) -> None:
    """Leaves Edit/Sculpt/... mode of the active object, so its edits reach the mesh and the glTF
    operators can run. Only called for an action the user asked for: the runtime lands results
    by itself in Object Mode only."""
    obj = getattr(context, "object", None) or bpy.context.view_layer.objects.active
    if obj is not None and obj.mode != "OBJECT":
        try:
            bpy.ops.object.mode_set(mode="OBJECT")
        except RuntimeError as exc:
            log.warning("could not leave %s mode: %s", obj.mode, exc)


class GlbImport:
    """A GLB imported into the scene for as long as it is needed: `discard()` removes what was
    not kept (objects, and the meshes, materials, images, actions and collections left without
    users, the glTF importer's display helpers among them) and gives back the user's selection,
    active object and frame range."""

    KINDS = ("objects", "meshes", "materials", "images", "actions", "armatures", "collections",
             "textures")

    def __init__(self, context, path: str):
        self.context = context
        self.path = path
        scene = context.scene
        view_layer = context.view_layer
        self._frames = (scene.frame_start, scene.frame_end, scene.frame_current)
        # A view layer not yet synced after a deletion lists None for the removed objects.
        self._selected = [o for o in view_layer.objects if o is not None and o.select_get()]
        self._active = view_layer.objects.active
        before = {kind: set(getattr(bpy.data, kind)) for kind in self.KINDS}
        ensure_object_mode(context)
        bpy.ops.import_scene.gltf(filepath=str(path), **gltf_import_options())
        self.new = {kind: [d for d in getattr(bpy.data, kind) if d not in before[kind]]
                    for kind in self.KINDS}
        helper_collections = [c for c in self.new["collections"]
                              if c.name.startswith(GLTF_HELPER_COLLECTION)]
        self.helpers = [o for o in self.new["objects"]
                        if any(c in helper_collections for c in o.users_collection)]
        self.objects = [o for o in self.new["objects"] if o not in self.helpers]
        self.actions = list(self.new["actions"])
        self.kept: set = set()
        self.node_names = glb_node_names(path)

    @property
    def meshes(self) -> list:
        return [o for o in self.objects if o.type == "MESH"]

    @property
    def armature(self):
        return next((o for o in self.objects if o.type == "ARMATURE"), None)

    def part_name(self, obj) -> str:
        """The part an imported mesh is (its GLB node name, without Blender's '.001')."""
        if obj.name in self.node_names:
            return obj.name
        return _DUPLICATE_SUFFIX.sub("", obj.name)

    def keep(self, *objects) -> None:
        self.kept.update(objects)

    def discard(self) -> None:
        for obj in self.kept:  # bone shapes pointing at the helper sphere
            if obj.pose is not None:
                for pose_bone in obj.pose.bones:
                    if pose_bone.custom_shape in self.helpers:
                        pose_bone.custom_shape = None
        for obj in self.objects + self.helpers:
            if obj not in self.kept:
                try:
                    bpy.data.objects.remove(obj, do_unlink=True)
                except ReferenceError:
                    pass
        for kind in ("actions", "meshes", "armatures", "materials", "textures", "images"):
            for data in self.new[kind]:
                try:
                    if data.users == 0:
                        getattr(bpy.data, kind).remove(data)
                except ReferenceError:
                    pass
        for collection in self.new["collections"]:
            try:
                if not collection.all_objects:
                    bpy.data.collections.remove(collection)
            except ReferenceError:
                pass
        scene = self.context.scene
        scene.frame_start, scene.frame_end, current = self._frames
        scene.frame_set(current)
        view_layer = self.context.view_layer
        for obj in view_layer.objects:
            obj.select_set(False)
        for obj in self._selected:
            try:
                if obj.name in view_layer.objects:
                    obj.select_set(True)
            except ReferenceError:
                pass
        try:
            view_layer.objects.active = self._active
        except ReferenceError:
            pass


@contextmanager
def glb_import(context, path: str):
    """`with glb_import(context, path) as glb:` ... keep what stays, the rest goes on exit."""
    imported = GlbImport(context, path)
    try:
        yield imported
    finally:
        imported.discard()


def place_asset(context, job: dict, step_index: int, path: str, *, name: str, matrix=None,
                parent=None, collections=None, force_parts: bool = False,
                extra_meta: dict | None = None, replaces=(), mark_asset: bool = True) -> ImportResult:
    """Puts the model file of `job`'s step `step_index` into the scene as one asset: the only path
    a new asset takes, for generation, re-import, the batch runner and selection actions alike.

    `matrix`: where the asset's root goes (default: the job's `meta.location`, else the 3D
    cursor); `parent` and `collections`: the root's parent and the objects' collections (default:
    where the importer put them). `replaces`: objects the new asset stands in for; they are
    hidden and renamed "<name> (original)" so the new objects get the clean names.
    `mark_asset`: mark it for the Asset Browser (when the preference is on)."""
    result = ImportResult.for_job(job)
    if matrix is None:
        matrix = Matrix.Translation(job.get("meta", {}).get("location") or context.scene.cursor.location)
    with glb_import(context, path) as glb:
        if not glb.objects:
            raise RuntimeError(f"{Path(path).name} contained nothing to import")
        if not glb.meshes:
            raise RuntimeError(f"{Path(path).name} holds no mesh")
        glb.keep(*glb.objects)
        common = {**base_metadata(job, step_index), **(extra_meta or {})}
        part_names = list(glb.node_names)
        armature = glb.armature
        top_level = [o for o in glb.objects if o.parent not in glb.objects]
        world = {o: o.matrix_world.copy() for o in glb.objects}
        names: dict = {}  # applied last, after the replaced objects gave theirs up
        new_objects = list(glb.objects)
        if armature is not None:
            root = armature
            names[armature] = name
            for mesh in glb.meshes:
                names[mesh] = f"{name} mesh"
                metadata.write(mesh, {**common, "role": "model", "part_name": ""})
            metadata.write(armature, {**common, "role": "armature", "part_name": ""})
            root.matrix_world = matrix @ world[root]
        elif len(glb.meshes) > 1 or force_parts:
            root = bpy.data.objects.new(name, None)
            root.empty_display_type = "PLAIN_AXES"
            (context.collection or context.scene.collection).objects.link(root)
            names[root] = name
            for obj in top_level:
                obj.parent = root
                obj.matrix_parent_inverse = Matrix.Identity(4)
                obj.matrix_basis = world[obj]
            for mesh in glb.meshes:
                names[mesh] = glb.part_name(mesh)
                metadata.write(mesh, {**common, "role": "part", "part_name": glb.part_name(mesh)})
            metadata.write(root, {**common, "role": "asset", "part_name": "",
                                  "part_names": part_names})
            root.matrix_world = matrix
            new_objects.append(root)
        else:
            root = top_level[0] if len(top_level) == 1 else glb.meshes[0]
            names[root] = name
            for obj in glb.objects:
                metadata.write(obj, {**common, "role": "model", "part_name": ""})
            root.matrix_world = matrix @ world[root]
        if parent is not None:
            placed = root.matrix_world.copy()
            root.parent = parent
            root.matrix_world = placed
        for obj in new_objects if collections else ():
            for collection in list(obj.users_collection):
                collection.objects.unlink(obj)
            for collection in collections:
                collection.objects.link(obj)
        actions = list(glb.actions) if armature is not None else []
        for action in actions:
            action.use_fake_user = True  # survives the discard of what was not kept
        imported_armature_name = armature.name if armature is not None else ""
    if actions:
        for action in actions:
            action.name = clip_name(action.name, imported_armature_name)
        armature.animation_data_clear()  # the importer's own assignment; the NLA is rebuilt below
        result.actions = attach_actions(armature, actions, context.scene,
                                        slot_name=imported_armature_name)
    for obj in replaces:
        _hide_replaced(obj, job["job_id"])
    for obj, wanted in names.items():
        obj.name = wanted
        if obj.type == "MESH" and obj.data is not None and obj.data.users == 1:
            obj.data.name = wanted
    result.root, result.objects, result.armature = root, new_objects, armature
    result.preview = load_preview(preview_file(job), name)
    if result.preview is not None:
        metadata.write(root, {"preview_image": result.preview.name})
    if mark_asset:
        mark_as_asset(context, job, result, common, part_names if root.type == "EMPTY" else [])
    select_result(context, result)
    log.info("placed %s: %d object(s), %d action(s)%s", root.name, len(new_objects),
             len(result.actions), f", replacing {len(replaces)}" if replaces else "")
    return result


def mark_as_asset(context, job: dict, result: ImportResult, step_meta: dict, part_names: list[str]) -> None:
    """Marks a landed result for the Asset Browser (assets.mark); a failure there is logged, not
    raised: the objects are in the scene with their metadata, which is what was paid for."""
    try:
        assets.mark(context, job, result, step_meta, part_names)
    except Exception:  # noqa: BLE001 - keep what landed
        log.exception("%s could not be marked as an asset", result.root.name)


def select_result(context, result: ImportResult) -> None:
    """The landed objects become the selection, their root the active object."""
    view_layer = context.view_layer
    for obj in view_layer.objects:
        obj.select_set(obj in result.objects)
    view_layer.objects.active = result.root


def import_job(context, job: dict) -> ImportResult:
    """Imports a READY generation job's model (its last model file) as a new asset at the job's
    location or the 3D cursor; returns what was created (nothing when there is no model file)."""
    found = model_file(job)
    if found is None:
        return ImportResult.for_job(job)
    step_index, path = found
    return place_asset(context, job, step_index, path, name=asset_name(job),
                       force_parts=job.get("meta", {}).get("kind") == "parts")


def _hide_replaced(obj, job_id: str) -> None:
    """An object a new asset stands in for: hidden, renamed, and pointing at its replacement."""
    metadata.write(obj, {"replaced_by": job_id, "original_name": obj.name})
    if not obj.name.endswith(" (original)"):
        obj.name = f"{obj.name} (original)"
    obj.hide_set(True)
    obj.hide_render = True
    obj.select_set(False)


def clip_name(name: str, armature_name: str = "") -> str:
    """An imported action's clip name: "preset:walk" -> "walk"; Blender 4.2's glTF importer
    appends the armature's name ("walk_Armature")."""
    name = name.split(":")[-1]
    for suffix in (f"_{armature_name}", f"-{armature_name}"):
        if armature_name and name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _armature_slot(action, slot_name: str = ""):
    """The action's slot for an armature object (Blender 4.4+ slotted actions), or None."""
    slots = list(getattr(action, "slots", None) or [])
    for slot in slots:
        if slot_name and slot.identifier == f"OB{slot_name}":
            return slot
    objects = [slot for slot in slots if getattr(slot, "target_id_type", "OBJECT") == "OBJECT"]
    return (objects or slots or [None])[0]


def attach_actions(armature, actions: list, scene, slot_name: str = "") -> list[str]:
    """Stacks actions on the armature's NLA (one muted track each, named after the clip); the
    first becomes the active action and sets the scene's frame range. `slot_name`: the object the
    actions were made for (their slot is looked up by it in Blender 4.4+, where actions have
    slots)."""
    anim = armature.animation_data or armature.animation_data_create()
    names = []
    for action in actions:
        action.use_fake_user = True  # keep every clip in the file, not only the active one
        names.append(action.name)
        if not any(strip.action == action for track in anim.nla_tracks for strip in track.strips):
            track = anim.nla_tracks.new()
            track.name = action.name
            strip = track.strips.new(action.name, int(action.frame_range[0]), action)
            if hasattr(strip, "action_slot"):
                strip.action_slot = _armature_slot(action, slot_name)
            track.mute = True
    if actions:
        anim.action = actions[0]
        if hasattr(anim, "action_slot"):
            anim.action_slot = _armature_slot(actions[0], slot_name)
        start, end = actions[0].frame_range
        scene.frame_start, scene.frame_end = int(start), max(int(end), int(start) + 1)
    return names
