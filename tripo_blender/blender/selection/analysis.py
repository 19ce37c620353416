"""What the selection is, as far as Tripo actions are concerned (main thread only).

`analyze(objects)` reads the selected objects into a plain `Selection`: which Tripo asset they
belong to (by the `obj["tripo"]` metadata), which of its parts are selected, the task further
actions chain on (`model_task_id`), and `Selection.reason(action)`: why an action is not possible
("" when it is). Refusals come from here, before any request is sent (and so before any credit
is spent). Objects are found again by a uid custom property, so a rename does not lose them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import bpy

from ...core.protocol import chains, errors, vocabulary
from .. import metadata

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
