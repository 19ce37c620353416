"""Actions on the selection: what it is, what can be done with it, and how results land on it.

Three parts, all on the main thread:

- `analyze(objects)` reads the selection into a plain `Selection`: which Tripo asset it belongs to
  (by the `obj["tripo"]` metadata), which of its parts are selected, the task further actions
  chain on (`model_task_id`), and `Selection.reason(action)`: why an action is not possible ("" when
  it is). Refusals come from here, before any request is sent (and so before any credit is spent).
- `build_jobs(action, selection, **options)` turns an action into jobs (core.engine.jobs.Job). A selected
  mesh that did not come from Tripo is exported as GLB and becomes an `import_model` step first.
- The import handlers (`IMPORT_HANDLERS`, registered into blender.runtime by `register()`) apply a
  finished job to the scene, by `job.meta["kind"]`.

How results land (the user's own edits survive: existing objects keep their transforms, parents,
modifiers and collections):

- retexture: the selected parts (all parts / the model when none is selected) get the result's
  materials and UVs. When the result's mesh has the same topology, materials, material indices and
  UV layers are copied into the existing mesh; otherwise the object gets the result's mesh (the old
  mesh is kept with a fake user). Old materials are kept with a fake user so users can switch back.
- complete: the completed parts get the result's geometry (the old mesh kept with a fake user).
- segment / low poly (replace) / rig: a new asset takes the original's world transform, parent and
  collections; the original is hidden (viewport and render), renamed "<name> (original)" so the new
  objects get the clean names, and marked `replaced_by` in its metadata. Low poly can also be added
  beside the original instead.
- animate: every clip becomes a named Action on the existing armature, each on its own NLA track.
- rig check: `riggable` and the detected rig type are written onto the asset's metadata.
- convert: the job downloads straight into the chosen folder under a deterministic name
  (`06_export_full_stl.stl`, `08_export_part_stl__003__handle.stl`); nothing is imported.
- bring to Tripo: the object's metadata is written; its mesh is not changed.

Tripo space: a Tripo asset's geometry lives in its root object's local space (generated parts are
children of the root with identity transforms; a brought object is exported at the identity), so
results are placed with the root's world matrix.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix, Vector

from ..core.protocol import chains, errors, vocabulary
from ..core.engine.jobs import Job, Step
from ..core.engine.recipes import clean_options
from . import importer, metadata
from .settings import user_data_dir

log = logging.getLogger(__name__)

UID_PROPERTY = "tripo_uid"
KIND_PREFIX = "selection."

#: Action -> the task type it sends.
ACTION_TASKS = {
    "retexture": vocabulary.TEXTURE_MODEL,
    "segment": vocabulary.MESH_SEGMENTATION,
    "complete": vocabulary.MESH_COMPLETION,
    "lowpoly": vocabulary.HIGHPOLY_TO_LOWPOLY,
    "rig_check": vocabulary.ANIMATE_PRERIGCHECK,
    "rig": vocabulary.ANIMATE_RIG,
    "animate": vocabulary.ANIMATE_RETARGET,
    "convert": vocabulary.CONVERT_MODEL,
    "bring_to_tripo": vocabulary.IMPORT_MODEL,
}
ACTION_LABELS = {
    "retexture": "Retexture", "segment": "Segment", "complete": "Complete parts",
    "lowpoly": "Low poly", "rig_check": "Rig check", "rig": "Rig", "animate": "Animate",
    "convert": "Export", "bring_to_tripo": "Bring to Tripo",
}
#: Export file names are deterministic and numbered like a batch asset's steps (batchfile's
#: 06_export_full / 08_export_part): NN_export_full_<fmt>, NN_export_part_<fmt>__<idx>__<part>.
FULL_EXPORT_NUMBER = 6
PART_EXPORT_NUMBER = 8
EXPORTABLE_TYPES = ("MESH",)


# =========================================================================== object identity

def uid_of(obj) -> str:
    """A stable id for an object (a custom property), so a job finds it again after a rename."""
    value = obj.get(UID_PROPERTY)
    if not isinstance(value, str) or not value:
        value = uuid.uuid4().hex
        obj[UID_PROPERTY] = value
    return value


def find_object(uid: str, scene=None):
    """The object with this uid (one in the scene first), or None."""
    if not uid:
        return None
    found = [o for o in bpy.data.objects if o.get(UID_PROPERTY) == uid]
    if scene is not None:
        in_scene = [o for o in found if scene.objects.get(o.name) is o]
        found = in_scene or found
    return found[0] if found else None


def find_objects(uids, scene=None) -> list:
    out = []
    for uid in uids or ():
        obj = find_object(uid, scene)
        if obj is not None and obj not in out:
            out.append(obj)
    return out


# =========================================================================== metadata helpers

def _chain_entries(meta: dict) -> list[tuple[str, str]]:
    return [tuple(str(e).split(":", 1)) for e in meta.get("chain") or [] if ":" in str(e)]


def model_task_id_of(meta: dict) -> str:
    return str(meta.get("model_task_id") or meta.get("task_id") or "")


def model_task_type_of(meta: dict) -> str:
    """The task type of the object's model task (what the next action chains on)."""
    task_id = model_task_id_of(meta)
    if meta.get("model_task_type") and meta.get("model_task_id") == task_id:
        return str(meta["model_task_type"])
    if task_id and task_id == meta.get("task_id"):
        return str(meta.get("task_type") or "")
    for task_type, entry_id in reversed(_chain_entries(meta)):
        if entry_id == task_id:
            return task_type
    return str(meta.get("task_type") or "")


def rig_task_id_of(meta: dict) -> str:
    if meta.get("rig_task_id"):
        return str(meta["rig_task_id"])
    for task_type, entry_id in reversed(_chain_entries(meta)):
        if task_type == vocabulary.ANIMATE_RIG:
            return entry_id
    return ""


def sanitize_name(name: str, default: str = "part") -> str:
    """A file-system-safe name: letters, digits, '.', '_' and '-' only."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", name or "").strip("._")
    return text[:64] or default


# =========================================================================== analysis

@dataclass
class Selection:
    """What the selected objects are, as far as Tripo actions are concerned."""

    selected: list = field(default_factory=list)
    tripo: list = field(default_factory=list)      # selected objects with Tripo metadata
    foreign: list = field(default_factory=list)    # selected meshes without it (can be brought)
    unusable: list = field(default_factory=list)   # selected objects without it that are not meshes
    asset_ids: list = field(default_factory=list)
    asset_id: str = ""
    name: str = ""
    root: object = None
    members: list = field(default_factory=list)    # every live object of the asset
    parts: list = field(default_factory=list)      # selected part objects
    all_parts: list = field(default_factory=list)
    whole: bool = True
    model_task_id: str = ""
    model_task_type: str = ""
    rig_task_id: str = ""
    problem: str = ""                              # why no asset action is possible

    @property
    def part_names(self) -> list[str]:
        """Part names of the selected parts (empty when the whole asset is selected)."""
        if self.whole:
            return []
        return [(metadata.read(o) or {}).get("part_name") or o.name for o in self.parts]

    @property
    def known_parts(self) -> list[str]:
        """The asset's parts as its metadata lists them (as its part objects name them when the
        list is missing)."""
        listed = [str(n) for n in (self.root_meta.get("part_names") or []) if n]
        if listed:
            return listed
        return sorted({(metadata.read(o) or {}).get("part_name") or o.name for o in self.all_parts})

    @property
    def root_meta(self) -> dict:
        return (metadata.read(self.root) or {}) if self.root is not None else {}

    @property
    def bring(self):
        """The one foreign mesh an action imports first (None for a Tripo asset)."""
        return self.foreign[0] if not self.tripo and len(self.foreign) == 1 else None

    @property
    def source_type(self) -> str:
        return vocabulary.IMPORT_MODEL if self.bring is not None else self.model_task_type

    def part_index(self, obj) -> int:
        """1-based index of a part in the asset's part list (the export file names use it)."""
        name = (metadata.read(obj) or {}).get("part_name") or obj.name
        order = list(self.root_meta.get("part_names") or [])
        if name in order:
            return order.index(name) + 1
        names = sorted((metadata.read(o) or {}).get("part_name") or o.name for o in self.all_parts)
        return names.index(name) + 1 if name in names else len(names) + 1

    # --- refusals ----------------------------------------------------------------------------
    def reason(self, action: str, **options) -> str:  # noqa: C901 - one rule after another
        """Why `action` cannot run on this selection ("" when it can)."""
        if action == "bring_to_tripo":
            if self.foreign:
                return ""
            if self.unusable:
                return (f"{_names(self.unusable)} has no Tripo metadata and is not a mesh, so it "
                        "cannot be exported to Tripo.")
            if self.tripo:
                return "The selection already comes from Tripo."
            return "Select a mesh to bring to Tripo."
        if self.problem:
            return self.problem
        label = ACTION_LABELS.get(action, action)
        if self.bring is not None and action in ("complete", "animate"):
            return (f"{self.bring.name} is not a Tripo asset yet: "
                    + ("completion needs a segmented asset (segment it first)." if action == "complete"
                       else "animations need a rigged asset (rig it first)."))
        if action == "complete":
            if self.source_type != vocabulary.MESH_SEGMENTATION:
                return (f"Completion needs a segmented asset: segment {self.name} first (its model "
                        f"comes from a {vocabulary.task_label(self.source_type)} task).")
            return ""
        if action == "animate":
            if not self.rig_task_id:
                return (f"Animations need a rigged asset: rig {self.name} first "
                        "(retargeting only takes a rig task).")
            return ""
        if action == "convert" and options.get("per_part") and not (self.parts or self.all_parts):
            return (f"{self.name} has no parts: turn off One File per Selected Part, or segment "
                    "it first.")
        task_type = ACTION_TASKS.get(action)
        if task_type is None:
            return f"Unknown action '{action}'."
        try:
            chains.check_chain(task_type, self.source_type)
        except errors.TripoError as exc:
            return f"{label}: {exc.message}"
        return ""

    def summary(self) -> list[str]:
        """Lines for the panel: what is selected."""
        if self.bring is not None:
            return [f"{self.bring.name}: not from Tripo", "Actions import it first (import_model)"]
        if self.problem or not self.asset_id:
            return [self.problem or "Nothing selected"]
        lines = [f"Asset: {self.name}"]
        if self.whole:
            lines.append(f"Whole asset ({len(self.all_parts)} parts)" if self.all_parts else "Whole asset")
        else:
            lines.append(f"Parts ({len(self.parts)} of {len(self.all_parts)}): {', '.join(self.part_names)}")
        lines.append(f"Model: {vocabulary.task_label(self.model_task_type)} {self.model_task_id[:8]}")
        meta = self.root_meta
        if "riggable" in meta:
            lines.append(f"Riggable: {'yes' if meta['riggable'] else 'no'}"
                         + (f", {meta.get('rig_type_detected')}" if meta.get("rig_type_detected") else ""))
        if self.rig_task_id:
            lines.append(f"Rigged ({self.rig_task_id[:8]})")
        return lines


def _names(objects, limit: int = 3) -> str:
    names = [o.name for o in objects[:limit]]
    more = len(objects) - limit
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def _is_exportable(obj) -> bool:
    return obj.type in EXPORTABLE_TYPES and obj.data is not None and len(obj.data.polygons) > 0


def _asset_members(scene, asset_id: str, replaced: bool) -> list:
    out = []
    for obj in scene.objects:
        group = obj.get(metadata.PROPERTY)  # read two keys, not the whole group: panels call this
        if group is None or not hasattr(group, "get") or group.get("asset_id") != asset_id:
            continue
        if bool(group.get("replaced_by")) == replaced:
            out.append(obj)
    return out


def _find_root(members: list):
    for roles in (("asset", "armature"), ("model",)):
        for obj in members:
            meta = metadata.read(obj) or {}
            if meta.get("role") in roles and obj.parent not in members:
                return obj
    return None


def analyze(objects=None, scene=None) -> Selection:
    """Reads the selection (default: the context's selected objects)."""
    scene = scene or bpy.context.scene
    if objects is None:
        objects = list(getattr(bpy.context, "selected_objects", None) or [])
    sel = Selection(selected=list(objects))
    for obj in sel.selected:
        if metadata.is_from_tripo(obj):
            sel.tripo.append(obj)
        elif _is_exportable(obj):
            sel.foreign.append(obj)
        else:
            sel.unusable.append(obj)
    if not sel.selected:
        sel.problem = "Select a Tripo asset, some of its parts, or a mesh to bring to Tripo."
        return sel
    if not sel.tripo:
        if len(sel.foreign) > 1:
            sel.problem = (f"{len(sel.foreign)} objects that did not come from Tripo are selected: "
                           "bring them to Tripo first, or select one.")
        elif not sel.foreign:
            sel.problem = (f"{_names(sel.unusable)} has no Tripo metadata and is not a mesh that "
                           "could be exported to Tripo.")
        elif sel.unusable:
            sel.problem = f"{_names(sel.unusable)} has no Tripo metadata: deselect it."
        if sel.bring is not None:
            sel.name = sel.bring.name
        return sel
    if sel.foreign or sel.unusable:
        sel.problem = (f"The selection mixes Tripo objects and other objects "
                       f"({_names(sel.foreign + sel.unusable)}): bring those to Tripo on their own.")
    metas = {obj.name: metadata.read(obj) or {} for obj in sel.tripo}
    sel.asset_ids = sorted({m.get("asset_id") or "" for m in metas.values()})
    if len(sel.asset_ids) > 1:
        names = []
        for asset_id in sel.asset_ids:
            members = [o for o in sel.tripo if metas[o.name].get("asset_id") == asset_id]
            root = _find_root(_asset_members(scene, asset_id, False)) or members[0]
            names.append(root.name)
        sel.problem = (f"The selection holds parts of {len(sel.asset_ids)} different Tripo assets "
                       f"({', '.join(names)}); select parts of one asset.")
        return sel
    sel.asset_id = sel.asset_ids[0]
    replaced = any(metas[o.name].get("replaced_by") for o in sel.tripo)
    sel.members = _asset_members(scene, sel.asset_id, replaced) or list(sel.tripo)
    sel.root = _find_root(sel.members) or sel.tripo[0]
    sel.name = sel.root.name
    role = lambda o: (metadata.read(o) or {}).get("role")  # noqa: E731
    sel.all_parts = sorted((o for o in sel.members if role(o) == "part"), key=lambda o: o.name)
    sel.parts = sorted((o for o in sel.tripo if role(o) == "part"), key=lambda o: o.name)
    sel.whole = (sel.root in sel.selected or not sel.parts
                 or set(sel.parts) == set(sel.all_parts))
    # The root speaks for the asset: every action updates its model task on all members.
    root_meta = metadata.read(sel.root) or {}
    sel.model_task_id = model_task_id_of(root_meta)
    sel.model_task_type = model_task_type_of(root_meta)
    sel.rig_task_id = rig_task_id_of(root_meta)
    if not sel.model_task_id and not sel.problem:
        sel.problem = f"{sel.name} has Tripo metadata but no task to continue from."
    return sel


# =========================================================================== jobs

def _export_glb(obj) -> str:
    """Writes the object's mesh as GLB (object space: Tripo space is the object's local space)."""
    folder = user_data_dir("uploads")
    path = os.path.join(folder, f"{sanitize_name(obj.name, 'object')}_{uid_of(obj)[:8]}.glb")
    copy = bpy.data.objects.new(f"{obj.name}", obj.data)  # same mesh, identity transform
    scene = bpy.context.scene
    scene.collection.objects.link(copy)
    view_layer = bpy.context.view_layer
    selected = [o for o in view_layer.objects if o.select_get()]
    active = view_layer.objects.active
    try:
        _ensure_object_mode(bpy.context)  # edit-mode changes reach the mesh first
        for other in selected:
            other.select_set(False)
        copy.select_set(True)
        view_layer.objects.active = copy
        bpy.ops.export_scene.gltf(filepath=path, export_format="GLB", use_selection=True,
                                  export_apply=False, export_yup=True, export_animations=False,
                                  export_materials="EXPORT")
    finally:
        bpy.data.objects.remove(copy, do_unlink=True)
        for other in selected:
            if other.name in view_layer.objects:
                other.select_set(True)
        view_layer.objects.active = active
    log.info("exported %s to %s for import_model", obj.name, path)
    return path


def _base_meta(sel: Selection, action: str, label: str) -> dict:
    meta = {"kind": KIND_PREFIX + action, "name": label, "action": action,
            "asset_name": sel.name}
    if sel.bring is not None:
        obj = sel.bring
        meta.update({"bring_uid": uid_of(obj), "targets": [uid_of(obj)], "members": [uid_of(obj)],
                     "root_uid": uid_of(obj), "bring_name": obj.name})
        return meta
    root_meta = sel.root_meta
    targets = sel.members if sel.whole else sel.parts
    meta.update({
        "asset_id": sel.asset_id,
        "root_uid": uid_of(sel.root),
        "members": [uid_of(o) for o in sel.members],
        "targets": [uid_of(o) for o in targets if o.type == "MESH"],
        "part_names": sel.part_names,
        "chain": list(root_meta.get("chain") or []),
        "prompt": root_meta.get("prompt") or "",
        "images": list(root_meta.get("images") or []),
        "source_task_id": sel.model_task_id,
        "source_type": sel.model_task_type,
        "rig_task_id": sel.rig_task_id,
    })
    return meta


def _job(sel: Selection, action: str, params: dict, *, label: str, meta: dict | None = None,
         source_task_id: str | None = None, source_type: str | None = None,
         file_stem: str = "", downloads=("model_url",)) -> Job:
    """One job: [import_model of a foreign mesh] + the action's step."""
    task_type = ACTION_TASKS[action]
    job_meta = {**_base_meta(sel, action, label), **(meta or {})}
    params = clean_options(params)
    if sel.bring is not None:
        steps = [Step(vocabulary.IMPORT_MODEL, {"input": _export_glb(sel.bring)}, downloads=())]
        if task_type != vocabulary.IMPORT_MODEL:
            steps.append(Step(task_type, params, input_from=0, file_stem=file_stem, downloads=downloads))
        else:
            steps[0].downloads = downloads
    else:
        steps = [Step(task_type, {"input": source_task_id or sel.model_task_id, **params},
                      file_stem=file_stem, downloads=downloads)]
        job_meta["source_type"] = source_type or sel.model_task_type
    return Job.new(label, steps, job_meta)


def parse_animations(text_or_list, rig_model: str | None = None) -> list[str]:
    """'idle, walk' / ['preset:idle', ...] -> presets; plain biped names on v1.0 rigs become
    'preset:biped:<name>' (the form v1.0 rigs take)."""
    items = text_or_list if isinstance(text_or_list, (list, tuple)) else re.split(r"[,;\s]+", text_or_list or "")
    out = []
    v1 = (rig_model or vocabulary.DEFAULT_RIG_MODEL).startswith("v1.0")
    for item in items:
        item = str(item).strip()
        if not item:
            continue
        if not item.startswith("preset:"):
            item = f"preset:{item}"
        name = item[len("preset:"):]
        if v1 and ":" not in name and f"preset:biped:{name}" in vocabulary.ANIMATION_PRESETS:
            item = f"preset:biped:{name}"
        if item not in out:
            out.append(item)
    return out


def _rig_model_of(sel: Selection) -> str:
    """The model version of the asset's rig task (when unknown, the server's default: a rig
    made before we sent the model version got that one)."""
    for obj in [sel.root] + list(sel.members):
        meta = metadata.read(obj) or {}
        if meta.get("rig_model"):
            return str(meta["rig_model"])
        if meta.get("task_type") == vocabulary.ANIMATE_RIG and metadata.params(obj).get("model"):
            return str(metadata.params(obj)["model"])
    return vocabulary.SERVER_DEFAULT_RIG_MODEL


def export_folder(folder: str) -> str:
    """An absolute folder for exports ('//' is relative to the .blend; an unsaved file uses the
    extension's user folder)."""
    folder = folder or "//tripo_export/"
    if folder.startswith("//") and not bpy.data.filepath:
        folder = os.path.join(user_data_dir("exports"), folder[2:])
    return os.path.abspath(bpy.path.abspath(folder))


def export_stem(fmt: str, part_name: str | None = None, index: int = 0) -> str:
    fmt = fmt.lower()
    if part_name is None:
        return f"{FULL_EXPORT_NUMBER:02d}_export_full_{fmt}"
    return f"{PART_EXPORT_NUMBER:02d}_export_part_{fmt}__{index:03d}__{sanitize_name(part_name)}"


CONVERT_OPTIONS = ("flatten_bottom", "flatten_bottom_threshold", "pivot_to_center_bottom", "pack_uv",
                   "scale_factor", "face_limit", "texture_size", "texture_format", "fbx_preset",
                   "export_orientation", "with_animation", "quad", "force_symmetry", "bake",
                   "export_vertex_colors", "animate_in_place")


def _shown(name: str, limit: int = 60) -> str:
    return repr(name if len(name) <= limit else name[:limit] + "…")


def check_part_names(sel: Selection, names) -> None:
    """Every name must be a part the asset is known to have (its metadata's part list, else its
    part objects): Tripo refuses any other with a 400, so it is refused here, before a request,
    naming the unknown part and listing the real ones."""
    if not names:
        return
    known = list(sel.known_parts)
    unknown = [n for n in names if n not in known]
    if not unknown:
        return
    shown = ", ".join(_shown(str(n)) for n in unknown[:3]) + (f" and {len(unknown) - 3} more"
                                                            if len(unknown) > 3 else "")
    if not known:
        raise errors.ValidationError(f"{sel.name} has no known parts, so part {shown} cannot be "
                                     "used: segment it first, or act on the whole asset.",
                                     field="part_names")
    raise errors.ValidationError(
        f"{sel.name} has no part {shown}; its parts are: {', '.join(known)}.", field="part_names")


def build_jobs(action: str, sel: Selection, **options) -> list[Job]:
    """The jobs of an action on a selection. Raises errors.ValidationError with the reason when
    the selection cannot take it (nothing is sent then), including part names the asset does
    not have."""
    jobs = _build_jobs(action, sel, **options)
    if action != "bring_to_tripo":
        for job in jobs:
            for step in job.steps:
                check_part_names(sel, step.params.get("part_names"))
    return jobs


def _build_jobs(action: str, sel: Selection, **options) -> list[Job]:
    if action == "bring_to_tripo":
        reason = sel.reason(action)
        if reason:
            raise errors.ValidationError(reason)
        return [_job(Selection(selected=[obj], foreign=[obj], name=obj.name), action, {},
                     label=f"Bring {obj.name} to Tripo") for obj in sel.foreign]

    per_part = bool(options.pop("per_part", False))
    reason = sel.reason(action, per_part=per_part)
    if reason:
        raise errors.ValidationError(reason)
    name = sel.name
    if action == "retexture":
        prompt = {"text": options.pop("prompt", None) or None,
                  "image": _abspath(options.pop("image", None)),
                  "style_image": _abspath(options.pop("style_image", None))}
        prompt = {k: v for k, v in prompt.items() if v}
        params = {"texture_prompt": prompt or None, "part_names": sel.part_names or None, **options}
        what = f"{len(sel.part_names)} part(s) of {name}" if sel.part_names else name
        return [_job(sel, action, params, label=f"Retexture {what}",
                     meta={"texture_prompt": prompt.get("text") or ""})]
    if action == "segment":
        model = options.pop("model", None)
        if model != vocabulary.SEGMENT_V2_MODEL:
            for key in ("segmentation_granularity", "split_by_connectivity", "ref_image"):
                options.pop(key, None)
        params = {"model": model, **options}
        return [_job(sel, action, params, label=f"Segment {name}")]
    if action == "complete":
        params = {"part_names": sel.part_names or None, **options}
        return [_job(sel, action, params, label=f"Complete parts of {name}")]
    if action == "lowpoly":
        replace = bool(options.pop("replace", False))
        params = {"part_names": sel.part_names or None, **options}
        if not params.get("quad"):
            params.pop("quad", None)
        return [_job(sel, action, params, label=f"Low poly {name}", meta={"replace": replace})]
    if action == "rig_check":
        return [_job(sel, action, {}, label=f"Rig check {name}", downloads=())]
    if action == "rig":
        spec = options.get("spec")
        if spec in vocabulary.RIG_SPECS_NEEDING_NEW_MODEL and not options.get("model"):
            options["model"] = vocabulary.RIG_MODELS[1]
        return [_job(sel, action, options, label=f"Rig {name}",
                     meta={"rig_model": options.get("model") or vocabulary.DEFAULT_RIG_MODEL})]
    if action == "animate":
        animations = parse_animations(options.pop("animations", None) or [], _rig_model_of(sel))
        if not animations:
            raise errors.ValidationError("Choose at least one animation (e.g. preset:walk, preset:idle).")
        chunks = [animations[i:i + vocabulary.MAX_ANIMATIONS]
                  for i in range(0, len(animations), vocabulary.MAX_ANIMATIONS)]
        jobs = []
        for number, chunk in enumerate(chunks, 1):
            clips = ", ".join(a.split(":")[-1] for a in chunk)
            label = f"Animate {name}: {clips}"
            jobs.append(_job(sel, action, {"animations": chunk, **options}, label=label,
                             source_task_id=sel.rig_task_id, source_type=vocabulary.ANIMATE_RIG,
                             meta={"animations": chunk, "batch": number, "batches": len(chunks)}))
        return jobs
    if action == "convert":
        fmt = str(options.pop("format", "") or "").upper()
        if fmt not in vocabulary.CONVERT_FORMATS:
            raise errors.ValidationError(
                f"Choose an export format: {', '.join(vocabulary.CONVERT_FORMATS)}.")
        folder = export_folder(options.pop("folder", None) or "")
        unknown = set(options) - set(CONVERT_OPTIONS)
        if unknown:
            raise errors.ValidationError(f"Unknown export option(s): {', '.join(sorted(unknown))}.")
        if fmt != "FBX":
            options.pop("fbx_preset", None)
        targets = [(None, 0)] if not per_part else [
            ((metadata.read(o) or {}).get("part_name") or o.name, sel.part_index(o))
            for o in (sel.parts or sel.all_parts)]
        jobs = []
        for part, index in targets:
            stem = export_stem(fmt, part, index)
            params = {"format": fmt, "part_names": [part] if part else None, **options}
            label = f"Export {name} {fmt}" + (f" ({part})" if part else "")
            job = _job(sel, action, params, label=label, file_stem=stem,
                       meta={"no_import": True, "export_folder": folder, "format": fmt,
                             "export_part": part or ""})
            job.out_dir = folder
            jobs.append(job)
        return jobs
    raise errors.ValidationError(f"Unknown action '{action}'.")


def _abspath(path):
    if not path:
        return None
    path = str(path)
    if path.startswith(("http://", "https://", "file_")):
        return path
    return os.path.abspath(bpy.path.abspath(path))


def export_files(job: dict) -> list[str]:
    """The exported files of a finished convert job."""
    return [s["files"]["model_url"] for s in job.get("steps", [])
            if s.get("task_type") == vocabulary.CONVERT_MODEL and s.get("files", {}).get("model_url")]


# =========================================================================== applying results

def _ensure_object_mode(context) -> None:
    obj = getattr(context, "object", None) or bpy.context.view_layer.objects.active
    if obj is not None and obj.mode != "OBJECT":
        try:
            bpy.ops.object.mode_set(mode="OBJECT")
        except RuntimeError as exc:
            log.warning("could not leave %s mode: %s", obj.mode, exc)


class _Imported:
    """A GLB imported into the scene; `discard()` removes what was not kept (objects, and the
    meshes, materials, images, actions, collections left without users)."""

    KINDS = ("objects", "meshes", "materials", "images", "actions", "armatures", "collections",
             "textures")

    def __init__(self, context, path: str):
        self.context = context
        self.path = path
        scene = context.scene
        view_layer = context.view_layer
        self._frames = (scene.frame_start, scene.frame_end, scene.frame_current)
        self._selected = [o for o in view_layer.objects if o.select_get()]
        self._active = view_layer.objects.active
        before = {kind: set(getattr(bpy.data, kind)) for kind in self.KINDS}
        _ensure_object_mode(context)
        bpy.ops.import_scene.gltf(filepath=str(path), **importer.gltf_import_options())
        self.new = {kind: [d for d in getattr(bpy.data, kind) if d not in before[kind]]
                    for kind in self.KINDS}
        helpers = [c for c in self.new["collections"] if c.name.startswith("glTF_not_exported")]
        self.helpers = [o for o in self.new["objects"] if any(c in helpers for c in o.users_collection)]
        self.objects = [o for o in self.new["objects"] if o not in self.helpers]
        self.actions = list(self.new["actions"])
        self.kept: set = set()
        self.node_names = importer.glb_node_names(path)

    @property
    def meshes(self) -> list:
        return [o for o in self.objects if o.type == "MESH"]

    @property
    def armature(self):
        return next((o for o in self.objects if o.type == "ARMATURE"), None)

    def part_name(self, obj) -> str:
        if obj.name in self.node_names:
            return obj.name
        return re.sub(r"\.\d{3}$", "", obj.name)

    def keep(self, *objects) -> None:
        self.kept.update(objects)

    def discard(self) -> None:
        for obj in self.kept:  # bone shapes of the glTF importer's helper collection
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
def imported(context, path: str):
    result = _Imported(context, path)
    try:
        yield result
    finally:
        result.discard()


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
    return importer.ImportResult(job_id=job["job_id"], root=root, objects=list(objects),
                                 armature=armature, actions=list(actions),
                                 files={f"{i}:{k}": v for i, s in enumerate(job["steps"])
                                        for k, v in s.get("files", {}).items()})


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
    with imported(context, path) as result:
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


def _hide_replaced(objects: list, job_id: str) -> None:
    for obj in objects:
        metadata.write(obj, {"replaced_by": job_id, "original_name": obj.name})
        if not obj.name.endswith(" (original)"):
            obj.name = f"{obj.name} (original)"
        obj.hide_set(True)
        obj.hide_render = True
        obj.select_set(False)


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
    """Imports a result as a new asset in the original's place (replace) or beside it."""
    original = _apply_bring(context, job)
    root, members, _targets = _targets_and_members(context, job)
    if original is not None:
        root, members = original, [original]
    task_type = ACTION_TASKS[job["meta"]["action"]]
    index = _step_index(job, task_type)
    path = _result_file(job)
    matrix = root.matrix_world.copy() if root is not None else Matrix.Translation(context.scene.cursor.location)
    parent = root.parent if root is not None else None
    collections = (list(root.users_collection) if root is not None else []) or \
        [context.collection or context.scene.collection]
    if offset and root is not None:
        bounds = _world_bounds(members)
        if bounds is not None:
            width = max(bounds[1].x - bounds[0].x, 0.1)
            matrix = Matrix.Translation(Vector((width * 1.25, 0.0, 0.0))) @ matrix

    with imported(context, path) as result:
        if not result.meshes:
            raise RuntimeError(f"{Path(path).name} holds no mesh")
        result.keep(*result.objects)
        common = importer.base_metadata(job, index)
        common.update({"asset_id": job["job_id"], "model_task_type": task_type, **(role_extra or {})})
        if job["meta"].get("prompt"):
            common["prompt"] = job["meta"]["prompt"]
        part_names = [result.part_name(o) for o in result.meshes]
        armature = result.armature
        top = [o for o in result.objects if o.parent not in result.objects]
        world = {o: o.matrix_world.copy() for o in result.objects}
        desired: dict = {}
        if armature is not None:
            new_root = armature
            desired[armature] = name
            for mesh in result.meshes:
                desired[mesh] = f"{name} mesh"
                metadata.write(mesh, {**common, "role": "model", "part_name": ""})
            metadata.write(armature, {**common, "role": "armature", "part_name": ""})
            new_root.matrix_world = matrix @ world[armature]
            new_objects = list(result.objects)
        elif len(result.meshes) > 1 or force_parts:
            new_root = bpy.data.objects.new(name, None)
            new_root.empty_display_type = "PLAIN_AXES"
            (context.collection or context.scene.collection).objects.link(new_root)
            desired[new_root] = name
            for obj in top:
                obj.parent = new_root
                obj.matrix_parent_inverse = Matrix.Identity(4)
                obj.matrix_basis = world[obj]
            for mesh in result.meshes:
                part = result.part_name(mesh)
                desired[mesh] = part
                metadata.write(mesh, {**common, "role": "part", "part_name": part})
            metadata.write(new_root, {**common, "role": "asset", "part_name": "",
                                      "part_names": part_names})
            new_root.matrix_world = matrix
            new_objects = list(result.objects) + [new_root]
        else:
            new_root = result.meshes[0]
            desired[new_root] = name
            for obj in result.objects:
                metadata.write(obj, {**common, "role": "model", "part_name": ""})
            new_root.matrix_world = matrix @ world[new_root]
            new_objects = list(result.objects)
        if parent is not None:
            world_matrix = new_root.matrix_world.copy()
            new_root.parent = parent
            new_root.matrix_world = world_matrix
        for obj in new_objects:
            for collection in list(obj.users_collection):
                collection.objects.unlink(obj)
            for collection in collections:
                collection.objects.link(obj)
        new_actions = list(result.actions) if armature is not None else []
        for action in new_actions:
            action.use_fake_user = True
    actions = []
    if new_actions:
        for action in new_actions:
            action.name = clip_name(action.name, armature.name)
        slot_name = armature.name
        armature.animation_data_clear()
        actions = attach_actions(armature, new_actions, context.scene, slot_name=slot_name)
    if replace and members:
        _hide_replaced(members, job["job_id"])
    for obj, wanted in desired.items():
        obj.name = wanted
        if obj.type == "MESH" and obj.data is not None and obj.data.users == 1:
            obj.data.name = wanted
    view_layer = context.view_layer
    for obj in view_layer.objects:
        obj.select_set(obj in new_objects)
    view_layer.objects.active = new_root
    # The result's frame range only matters for animations.
    log.info("%s: new asset %s (%d objects)%s", job["label"], new_root.name, len(new_objects),
             ", original hidden" if replace else "")
    return _result(job, new_objects, root=new_root, armature=armature, actions=actions)


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
    with imported(context, path) as result:
        temp_armature = result.armature
        temp_name = temp_armature.name if temp_armature else ""
        actions = list(result.actions)
        for action in actions:
            action.name = clip_name(action.name, temp_name)
            action.use_fake_user = True
        if temp_armature is not None and temp_armature.animation_data is not None:
            temp_armature.animation_data_clear()
    names = attach_actions(armature, actions, context.scene, slot_name=temp_name)
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
    first becomes the active action. `slot_name`: the object the actions were made for (their
    slot is looked up by it in Blender 4.4+, where actions have slots)."""
    anim = armature.animation_data or armature.animation_data_create()
    names = []
    for action in actions:
        action.use_fake_user = True
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


def register() -> None:
    from . import runtime
    runtime.IMPORT_HANDLERS.update(IMPORT_HANDLERS)


def unregister() -> None:
    from . import runtime
    for kind in IMPORT_HANDLERS:
        runtime.IMPORT_HANDLERS.pop(kind, None)
