"""Selection actions as jobs: `build_jobs(action, selection, **options)` turns an action on an
analysed selection into jobs (core.engine.jobs.Job), refusing what the selection cannot take
with the reason (nothing is sent then). A selected mesh that did not come from Tripo is exported
as GLB and becomes an `import_model` step first. Convert jobs download straight into the chosen
folder under deterministic names; nothing of theirs is imported.
"""

from __future__ import annotations

import logging
import os
import re

import bpy

from ...core.batch.batchfile import STAGES, part_stem
from ...core.engine.jobs import Job, Step
from ...core.engine.recipes import clean_options
from ...core.files import safe_name
from ...core.protocol import errors, vocabulary
from .. import importer, metadata
from ..settings import user_data_dir
from .analysis import ACTION_TASKS, KIND_PREFIX, Selection, uid_of

log = logging.getLogger(__name__)


def _export_glb(obj) -> str:
    """Writes the object's mesh as GLB (object space: Tripo space is the object's local space)."""
    folder = user_data_dir("uploads")
    path = os.path.join(folder, f"{safe_name(obj.name, 'object', 64)}_{uid_of(obj)[:8]}.glb")
    copy = bpy.data.objects.new(f"{obj.name}", obj.data)  # same mesh, identity transform
    scene = bpy.context.scene
    scene.collection.objects.link(copy)
    view_layer = bpy.context.view_layer
    selected = [o for o in view_layer.objects if o.select_get()]
    active = view_layer.objects.active
    try:
        importer.ensure_object_mode(bpy.context)  # edit-mode changes reach the mesh first
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
    """Export file names are deterministic and numbered like a batch asset's stages:
    06_export_full_<fmt>, 08_export_part_<fmt>__<index>__<part>."""
    fmt = fmt.lower()
    if part_name is None:
        return f"{STAGES['export_full']}_{fmt}"
    return part_stem("export_part", index, part_name, fmt)


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
            raise errors.ValidationError(f"Choose an export format: {', '.join(vocabulary.CONVERT_FORMATS)}.")
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
