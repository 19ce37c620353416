"""Where an object came from, stored on the object itself.

Every object this extension imports (meshes, parts, armatures, the asset's root) carries one
custom property group, `obj["tripo"]`, so a .blend remembers where each asset came from and what
can be done with it next. Readable from any script:

    meta = obj["tripo"]            # or tripo_blender.api.read_metadata(obj) for a plain dict
    meta["task_id"], meta["task_type"], meta["part_name"]

Schema (version 1). Every value is a string, a float, a bool, a 32-bit int or a list of strings:
Blender's ID properties overflow on larger ints, so timestamps are ISO strings, seeds and other
request parameters live in `params_json`, and anything else too big becomes a string.

    schema          1
    provider        "tripo" | "3daistudio"
    role            "model" | "part" | "armature" | "asset" | "splat" | "depth"
    asset_id        id shared by every object of one asset (the job that made it)
    job_id          the job that imported this object
    task_id         the task whose output this object is
    task_type       e.g. "text_to_model", "texture_model", "animate_retarget"
    source_task_id  the task this one was made from ("" for a generation)
    model_task_id   the task to chain further actions on (texture, segment, rig, convert ...)
    chain           ["text_to_model:<id>", "animate_rig:<id>", ...] every task that led here
    prompt, negative_prompt, images (list of file names), texture_prompt
    params_json     the request parameters, as JSON
    model_version   the `model` parameter of the generation
    part_name       the part's name in Tripo's output ("" when not a part)
    part_names      every part of the asset (on the asset's root)
    credits         credits the task consumed (float; 0 when unknown)
    created_at, completed_at   ISO-8601 strings from Tripo
    preview_image   name of the bpy image holding the rendered preview ("" if none)
    imported_at     ISO-8601 time of the import
    source_file     splat / depth: the kept PLY / PNG the object was made from
    point_count     splat: its number of points
    depth_image, depth_kind, depth_strength   depth: the bpy image, "gray"/"color", the relief
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

PROPERTY = "tripo"
SCHEMA_VERSION = 1
INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1


def id_property_value(value):
    """Converts a plain value to something Blender's ID properties store without loss."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if INT32_MIN <= value <= INT32_MAX else str(value)
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return json.dumps(value, sort_keys=True, default=str)


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write(obj, values: dict) -> None:
    """Sets (or updates) the object's Tripo metadata."""
    current = read(obj) or {}
    current.update(values)
    current["schema"] = SCHEMA_VERSION
    obj[PROPERTY] = {key: id_property_value(value) for key, value in current.items()}


def read(obj) -> dict | None:
    """The object's Tripo metadata as a plain dict, or None for objects not from Tripo."""
    group = obj.get(PROPERTY) if obj is not None else None
    if group is None or not hasattr(group, "to_dict"):
        return None
    return group.to_dict()


def is_from_tripo(obj) -> bool:
    meta = read(obj)
    return bool(meta and meta.get("task_id"))


def params(obj) -> dict:
    meta = read(obj) or {}
    try:
        return json.loads(meta.get("params_json") or "{}")
    except ValueError:
        return {}
