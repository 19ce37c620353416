"""Where a finished job enters the scene (main thread only).

`land(context, job)` is how the runtime and the batch runner land every finished job. It picks
the handler by `job.meta["kind"]`: a selection action applies its result to the asset it was
made for (blender.selection.apply), a splat or depth map lands as a point cloud or a displaced
plane (blender.image_results), and everything else is a new asset (importer.import_job).
`land_again(context, job)` is re-import (History, the Jobs panel): a new copy at the 3D cursor.

Every new asset, whichever path asks for it (generation, a selection action's new version, the
batch runner, re-import from History or the Jobs panel), is built by importer.place_asset.
"""

from __future__ import annotations

import logging

from . import image_results, importer
from .selection import apply as selection_apply

log = logging.getLogger(__name__)

#: job.meta["kind"] -> handler(context, job) -> importer.ImportResult.
HANDLERS = {**selection_apply.IMPORT_HANDLERS, **image_results.IMPORT_HANDLERS}


def land(context, job: dict) -> importer.ImportResult:
    """Lands a finished job's result. A result whose target is gone (deleted, or undone) is paid
    for, so it lands as a new asset instead; `result.notes` then says so."""
    handler = HANDLERS.get((job.get("meta") or {}).get("kind"), importer.import_job)
    try:
        return handler(context, job)
    except importer.TargetGone as exc:
        log.warning("%s: %s; landing it as a new asset", job.get("label") or job["job_id"], exc)
        result = importer.import_job(context, job)
        result.notes.append(f"{exc}; the result was added as a new asset")
        return result


def is_image_result(job: dict) -> bool:
    """A splat or depth map job: its files are no GLB, and image_results lands them."""
    return (job.get("meta") or {}).get("kind") in image_results.IMPORT_HANDLERS


def land_again(context, job: dict) -> importer.ImportResult:
    """Lands a job's downloaded result once more, as a new copy at the 3D cursor: a splat or
    depth map as such, anything else (a selection action's result too) as a new asset."""
    job = {**job, "meta": {k: v for k, v in (job.get("meta") or {}).items() if k != "location"}}
    if is_image_result(job):
        return image_results.IMPORT_HANDLERS[job["meta"]["kind"]](context, job)
    if importer.model_file(job) is None:
        raise RuntimeError("the job has no downloaded model to import")
    return importer.import_job(context, job)
