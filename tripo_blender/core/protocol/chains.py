"""Tripo's chain rules: which task's result each task type accepts as its ``input``.

Checked for every step of a chain before anything is sent (the job engine, the batch planner and
the selection actions all call :func:`check_chain`), so a chain Tripo would refuse costs nothing.
"""

from __future__ import annotations

from typing import Optional, Union

from .errors import RetiredTaskType, ValidationError
from .records import TaskStatus
from .vocabulary import (
    ANIMATE_PRERIGCHECK,
    ANIMATE_RETARGET,
    ANIMATE_RIG,
    CONVERT_MODEL,
    EDIT_MULTIVIEW_IMAGE,
    GENERATE_IMAGE,
    GENERATE_MULTIVIEW_IMAGE,
    GENERATION_TYPES,
    HIGHPOLY_TO_LOWPOLY,
    IMAGE_TO_DEPTH,
    IMAGE_TO_MODEL,
    IMAGE_TO_SPLAT,
    IMPORT_MODEL,
    MESH_COMPLETION,
    MESH_SEGMENTATION,
    MESH_UV,
    MULTIVIEW_TO_MODEL,
    RETIRED_TASK_TYPES,
    TEXTURE_MODEL,
    TEXT_TO_IMAGE,
    normalize_task_type,
    task_label,
)

_GEN = frozenset(GENERATION_TYPES)

#: Task types whose result is a 3D model.
MODEL_PRODUCING_TYPES: frozenset[str] = _GEN | {
    TEXTURE_MODEL, IMPORT_MODEL, MESH_SEGMENTATION, MESH_COMPLETION, HIGHPOLY_TO_LOWPOLY,
    MESH_UV, ANIMATE_RIG, ANIMATE_RETARGET, CONVERT_MODEL,
}
#: Task types whose result is an image (or a set of views).
IMAGE_PRODUCING_TYPES: frozenset[str] = frozenset(
    {TEXT_TO_IMAGE, GENERATE_IMAGE, GENERATE_MULTIVIEW_IMAGE, EDIT_MULTIVIEW_IMAGE}
)

#: Which source task types a step accepts as its ``input`` task: Tripo's chain rules as its v2
#: API documentation listed them, adapted to v3.
CHAIN_RULES: dict[str, frozenset[str]] = {
    TEXTURE_MODEL: _GEN | {TEXTURE_MODEL, IMPORT_MODEL},
    MESH_SEGMENTATION: _GEN | {TEXTURE_MODEL, IMPORT_MODEL, HIGHPOLY_TO_LOWPOLY},
    MESH_COMPLETION: frozenset({MESH_SEGMENTATION}),
    HIGHPOLY_TO_LOWPOLY: _GEN | {TEXTURE_MODEL, IMPORT_MODEL, MESH_SEGMENTATION, MESH_COMPLETION},
    # "Any model-producing task", except convert (its output may be FBX/STL/USDZ, not a GLB).
    ANIMATE_PRERIGCHECK: MODEL_PRODUCING_TYPES - {CONVERT_MODEL},
    ANIMATE_RIG: MODEL_PRODUCING_TYPES - {CONVERT_MODEL},
    ANIMATE_RETARGET: frozenset({ANIMATE_RIG}),
    # Those rules plus smart low poly and uv (Tripo's v2 documentation converts a low-poly result).
    # Not mesh_segmentation / mesh_completion (v2 noted completion output cannot be converted):
    # run smart low poly on them first.
    CONVERT_MODEL: _GEN | {TEXTURE_MODEL, IMPORT_MODEL, ANIMATE_RIG, ANIMATE_RETARGET,
                           CONVERT_MODEL, HIGHPOLY_TO_LOWPOLY, MESH_UV},
    # New in v3; assumed to take the static models the mesh steps take.
    MESH_UV: _GEN | {TEXTURE_MODEL, IMPORT_MODEL, MESH_SEGMENTATION, MESH_COMPLETION,
                     HIGHPOLY_TO_LOWPOLY},
    # Image inputs given as a task id (assumed from the v3 "input may be a task id" rule).
    IMAGE_TO_MODEL: frozenset({TEXT_TO_IMAGE, GENERATE_IMAGE}),
    GENERATE_IMAGE: frozenset({TEXT_TO_IMAGE, GENERATE_IMAGE}),
    IMAGE_TO_SPLAT: frozenset({TEXT_TO_IMAGE, GENERATE_IMAGE}),
    IMAGE_TO_DEPTH: frozenset({TEXT_TO_IMAGE, GENERATE_IMAGE}),
    GENERATE_MULTIVIEW_IMAGE: frozenset({TEXT_TO_IMAGE, GENERATE_IMAGE}),
    EDIT_MULTIVIEW_IMAGE: frozenset({GENERATE_MULTIVIEW_IMAGE, EDIT_MULTIVIEW_IMAGE}),
    # multiview ``input`` = a multiview image task (a view slot may hold an image task's id).
    MULTIVIEW_TO_MODEL: frozenset({GENERATE_MULTIVIEW_IMAGE, EDIT_MULTIVIEW_IMAGE}),
}

_CHAIN_HINTS: dict[str, str] = {
    ANIMATE_RETARGET: "Retargeting needs a rig task: rig the model first, then animate the rig",
    MESH_COMPLETION: "Completion needs a segmentation task: segment the model first",
    TEXTURE_MODEL: "Texturing needs a generated, textured or imported model",
}


def check_chain(task_type: str, source_type: Optional[str],
                source_status: Optional[Union[TaskStatus, str]] = None) -> None:
    """Raise :class:`ValidationError` unless a ``task_type`` step may take the result of a
    ``source_type`` task (and, when given, the source finished successfully)."""
    if task_type in RETIRED_TASK_TYPES:
        raise RetiredTaskType(RETIRED_TASK_TYPES[task_type], field="type")
    task_type = normalize_task_type(task_type) or ""
    source_type = normalize_task_type(source_type)
    allowed = CHAIN_RULES.get(task_type)
    if allowed is None:
        raise ValidationError(
            f"{task_label(task_type)} does not take another task as its input.", field="input"
        )
    if source_type not in allowed:
        hint = _CHAIN_HINTS.get(task_type)
        accepted = ", ".join(sorted(task_label(t) for t in allowed))
        src = task_label(source_type) if source_type else "unknown"
        text = f"{hint} (the source is a {src} task)." if hint else (
            f"{task_label(task_type)} cannot take the result of a {src} task; it accepts: "
            f"{accepted}."
        )
        raise ValidationError(text, field="input")
    if source_status is not None:
        status = TaskStatus(source_status) if not isinstance(source_status, TaskStatus) \
            else source_status
        if status is not TaskStatus.SUCCESS:
            raise ValidationError(
                f"The source {task_label(source_type)} task has not finished successfully "
                f"(status: {status.value}); wait for it or pick another one.",
                field="input",
            )
