"""Public scripting API, for `blender -b --python your_script.py` and the Python console.

    import importlib
    tripo = importlib.import_module("bl_ext.user_default.tripo_blender.api")
    tripo.configure(api_key="tsk_...")                  # or TRIPO_API_KEY in the environment
    result = tripo.generate("a wooden treasure chest", face_limit=8000)
    task_id = tripo.read_metadata(result.root)["task_id"]   # result.root: the imported object

Every call that waits runs the same engine as the panel: the worker thread does the network
work while this (main) thread blocks, imports the result and returns. Nothing here needs an
event loop, so it works the same in background mode and in the UI's Python console.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import bpy

from .blender import importer, metadata
from .blender import runtime as _runtime
from .blender.settings import OfflineError
from .core import costs
from .core.protocol import errors, request_models, vocabulary
from .core.engine import recipes
from .core.engine.jobs import ANALYSIS_KIND_OF_TASK, Job, Step

__all__ = [
    "configure", "generate", "submit", "wait", "wait_all", "run_task", "estimate",
    "read_metadata", "write_metadata", "tripo_objects", "Job", "Step", "JobFailed",
    "OfflineError", "errors",
    "retexture", "segment", "complete", "lowpoly", "rig_check", "rig", "animate", "convert",
    "bring_to_tripo", "import_task", "history", "reimport", "image_to_splat", "image_to_depth",
]


class JobFailed(RuntimeError):
    """A job ended without an imported result; `.job` is its final snapshot."""

    def __init__(self, job: dict):
        self.job = job
        message = (job.get("error") or {}).get("message") or f"job ended as {job.get('state')}"
        super().__init__(f"{job.get('label', job.get('job_id'))}: {message}")


@dataclass
class Result:
    job: dict                               # final snapshot (steps, task ids, files, credits)
    imported: importer.ImportResult | None  # None when the job had nothing to import

    @property
    def root(self):
        return self.imported.root if self.imported else None

    @property
    def objects(self) -> list:
        return self.imported.objects if self.imported else []

    @property
    def files(self) -> dict:
        return {f"{i + 1}:{key}": path for i, step in enumerate(self.job["steps"])
                for key, path in step.get("files", {}).items()}

    @property
    def task_ids(self) -> list[str]:
        return [s["task_id"] for s in self.job["steps"] if s.get("task_id")]


def configure(*, api_key: str | None = None, base_url: str | None = None,
              provider: str | None = None, download_dir: str | None = None,
              max_concurrent: int | None = None, creates_per_minute: int | None = None,
              max_task_retries: int | None = None, online: bool = True) -> None:
    """Settings for this Blender session (they override the add-on preferences).

    The key is kept in this process's environment (TRIPO_API_KEY), never in the .blend.
    """
    if online:
        bpy.context.preferences.system.use_online_access = True
    env = {"TRIPO_API_KEY": api_key, "TRIPO_API_BASE": base_url, "TRIPO_PROVIDER": provider,
           "TRIPO_DOWNLOAD_DIR": download_dir}
    if provider == "3daistudio":
        env.update({"AISTUDIO_API_KEY": api_key, "AISTUDIO_API_BASE": base_url,
                    "TRIPO_API_KEY": None, "TRIPO_API_BASE": None})
    for name, value in env.items():
        if value is not None:
            os.environ[name] = value
    for name, value in (("max_concurrent", max_concurrent), ("creates_per_minute", creates_per_minute),
                        ("max_task_retries", max_task_retries)):
        if value is not None:
            _runtime.ENGINE_OPTIONS[name] = value


def submit(job: Job) -> str:
    """Validates and submits a job; returns its id at once (the worker runs it)."""
    return _runtime.get_runtime().submit(job)


def wait(job_ids: list[str] | str, timeout: float | None = None, *, raise_on_failure: bool = True) -> list[Result]:
    """Blocks until the jobs are imported (or failed); returns their results in order."""
    ids = [job_ids] if isinstance(job_ids, str) else list(job_ids)
    runtime = _runtime.get_runtime()
    finals = runtime.wait(ids, timeout=timeout)
    results = []
    for job_id in ids:
        job = finals[job_id]
        if job.get("state") != "imported" and raise_on_failure:
            raise JobFailed(job)
        results.append(Result(job, runtime.results.get(job_id)))
    return results


def wait_all(timeout: float | None = None, *, raise_on_failure: bool = False) -> list[Result]:
    """Waits for every unfinished job, including the journal's jobs whose owner is gone
    (adopted now; a job another running Blender owns is left to it)."""
    runtime = _runtime.get_runtime()
    runtime.resume_journal()
    runtime.tick()
    ids = [j["job_id"] for j in runtime.active_jobs()]
    return wait(ids, timeout, raise_on_failure=raise_on_failure) if ids else []


def generate(prompt: str | None = None, *, image: str | None = None,
             multiview: list[str | None] | None = None, text_to_image: bool = False,
             name: str | None = None, location=None, wait_for_result: bool = True,
             timeout: float | None = None, **options):
    """Generates a model (text, image, multiview or text -> image -> model) and imports it.

    `options` are the request options (model, texture, pbr, face_limit, generate_parts, ...).
    Returns a Result, or the job id when wait_for_result is False.
    """
    options.setdefault("model", vocabulary.DEFAULT_GENERATION_MODEL)
    meta = {"location": list(location)} if location is not None else None
    job = recipes.generation_job(prompt=prompt, image=image, multiview=multiview,
                                 text_to_image=text_to_image, options=options, name=name, meta=meta)
    job_id = submit(job)
    return wait(job_id, timeout)[0] if wait_for_result else job_id


def run_task(task_type: str, source=None, *, name: str | None = None,
             wait_for_result: bool = True, timeout: float | None = None, **params):
    """Runs any task type. `source` is a Tripo object (its model task is used) or a task id.
    image_to_splat / image_to_depth with `input=` (an image) land as image_to_splat() and
    image_to_depth() do."""
    source_type = None
    if source is not None and not isinstance(source, str):
        meta = metadata.read(source)
        if not meta:
            raise errors.ValidationError(f"{source.name} did not come from Tripo (no metadata).")
        source, source_type = meta["model_task_id"], meta["task_type"]
    if source is None and task_type in ANALYSIS_KIND_OF_TASK:
        # Lands like image_to_splat() / image_to_depth(): a point cloud or a displaced plane.
        image = params.pop("input", None) or params.pop("image", None)
        if not image:
            raise errors.ValidationError(f"{task_type} needs an image (input=...).", field="input")
        job = recipes.analysis_job(ANALYSIS_KIND_OF_TASK[task_type], image, options=params, name=name)
    elif source is not None:
        job = recipes.chained_job(task_type, source, params, source_type=source_type,
                                  label=name or vocabulary.task_label(task_type))
    else:
        job = Job.new(name or vocabulary.task_label(task_type), [Step(task_type, params)],
                      {"name": name or vocabulary.task_label(task_type)})
    job_id = submit(job)
    return wait(job_id, timeout)[0] if wait_for_result else job_id


def image_to_splat(image: str, *, model_seed: int | None = None, name: str | None = None,
                   location=None, wait_for_result: bool = True, timeout: float | None = None):
    """A Gaussian splat of the subject of one image (a local file, file token or URL). The PLY is
    kept in the download folder (with its .task.json) and imported as a point cloud: a mesh of
    one vertex per splat with its attributes, shown as coloured points (`Result.root`); when
    Blender cannot read it, the job still ends imported, with no object, and the file in
    `Result.files`. Returns a Result (or the job id)."""
    return _analysis("splat", image, {"model_seed": model_seed}, name, location,
                     wait_for_result, timeout)


def image_to_depth(image: str, *, kind: str | None = None, process_res: int | None = None,
                   name: str | None = None, location=None, wait_for_result: bool = True,
                   timeout: float | None = None):
    """A depth map of one image (`kind` "gray" or "color", `process_res` 126-2016 px; Tripo's
    defaults gray / 504 are sent when not given). The PNG is kept in the download folder and
    loaded as an image (not packed), and a plane with the image's aspect ratio, displaced by it
    (1 m on its longer side, 0.25 m of relief: the "Depth" modifier), lands at the 3D cursor.
    Returns a Result (or the job id)."""
    return _analysis("depth", image, {"kind": kind, "process_res": process_res}, name, location,
                     wait_for_result, timeout)


def _analysis(kind: str, image: str, options: dict, name, location, wait_for_result, timeout):
    meta = {"location": list(location)} if location is not None else None
    job_id = submit(recipes.analysis_job(kind, image, options=options, name=name, meta=meta))
    return wait(job_id, timeout)[0] if wait_for_result else job_id


def import_task(task_id: str, *, name: str | None = None, wait_for_result: bool = True,
                timeout: float | None = None):
    """Imports a task made elsewhere with the same key (the web console, another machine): the
    worker reads it (GET /v3/tasks/{id}), waits for it if it still runs, downloads its outputs
    and imports them with its metadata, as a job made here would land: a model, or for an
    image_to_splat / image_to_depth task a point cloud / a displaced plane (see image_to_splat,
    image_to_depth). Nothing is created or billed. Returns a Result (or the job id)."""
    job_id = _runtime.get_runtime().import_task(task_id, name=name)
    return wait(job_id, timeout)[0] if wait_for_result else job_id


def history(query: str = "", *, refresh: bool = True) -> list:
    """Every task this machine knows (journals and sidecars), newest first, as
    core.engine.history.HistoryEntry; `query` keeps those whose prompt, task id, date (YYYY-MM-DD),
    type or state contain every word of it."""
    from .blender.history import get_history
    cache = get_history()
    if refresh or not cache.loaded:
        cache.refresh()
    return cache.search(query)


def reimport(task_id: str):
    """Imports a known task's downloaded model (or splat, or depth map) again, at the 3D cursor
    (no network); returns the ImportResult."""
    from .blender import history as _history
    cache = _history.get_history()
    entry = cache.get(task_id) or (cache.refresh() and cache.get(task_id))
    if entry is None:
        raise errors.ValidationError(f"Task {task_id} is not in this machine's history.")
    return _history.reimport(bpy.context, entry)


def estimate(task_type: str, *, provider: str | None = None, **params) -> costs.CostEstimate:
    """The provider's published-price estimate of a request (no request is sent).
    `provider` defaults to the configured one ("tripo" or "3daistudio")."""
    from .blender.settings import connection_settings
    from .core.providers import capabilities

    provider = provider or connection_settings().provider
    return capabilities.estimate(provider, request_models.build_request(task_type, **params))


def read_metadata(obj) -> dict | None:
    """The object's Tripo metadata as a plain dict (None if it did not come from Tripo)."""
    return metadata.read(obj)


def write_metadata(obj, **values) -> None:
    metadata.write(obj, values)


def tripo_objects(objects=None) -> list:
    """Objects that came from Tripo (default: all in the file)."""
    return [o for o in (objects if objects is not None else bpy.data.objects) if metadata.is_from_tripo(o)]


# --- actions on objects already in the scene (retexture, segment, rig, convert, ...) ------------
# `objects`: the objects to act on (one object, a list, or None for the current selection), read
# like the panel reads the selection: parts of ONE Tripo asset (none / its root = the whole asset),
# or one mesh that did not come from Tripo (it is imported into Tripo first). A selection that
# cannot take the action raises errors.ValidationError with the reason; nothing is sent then.

def _selection_jobs(action: str, objects, **options) -> list[Job]:
    from .blender.selection import analysis, jobs
    if objects is not None and not isinstance(objects, (list, tuple, set)):
        objects = [objects]
    sel = analysis.analyze(list(objects) if objects is not None else None)
    return jobs.build_jobs(action, sel, **options)


def _run_jobs(jobs: list[Job], wait_for_result: bool, timeout: float | None):
    from .core.engine.jobs import validate_chain
    for job in jobs:  # every job is checked before the first one is sent
        validate_chain(job)
    ids = [submit(job) for job in jobs]
    return wait(ids, timeout) if wait_for_result else ids


def _one(results):
    return results[0] if isinstance(results, list) and len(results) == 1 else results


def retexture(objects=None, prompt: str | None = None, *, image: str | None = None,
              style_image: str | None = None, wait_for_result: bool = True,
              timeout: float | None = None, **options):
    """Textures the given parts (or the whole asset) again: one texture_model task with
    part_names = the parts; only those parts get the new materials. `image` / `style_image` are
    local files, file tokens or URLs. Returns a Result (or the job id)."""
    jobs = _selection_jobs("retexture", objects, prompt=prompt, image=image, style_image=style_image,
                           **options)
    return _one(_run_jobs(jobs, wait_for_result, timeout))


def segment(objects=None, *, model: str | None = None, granularity: str | None = None,
            wait_for_result: bool = True, timeout: float | None = None, **options):
    """Splits the asset into named parts (mesh_segmentation); the original is hidden.
    `granularity` (simple / balanced / detailed) needs model "v2.0-20260430"."""
    if granularity is not None:
        options["segmentation_granularity"] = granularity
    jobs = _selection_jobs("segment", objects, model=model, **options)
    return _one(_run_jobs(jobs, wait_for_result, timeout))


def complete(objects=None, *, wait_for_result: bool = True, timeout: float | None = None, **options):
    """Completes the given parts of a segmented asset (mesh_completion on its segmentation)."""
    jobs = _selection_jobs("complete", objects, **options)
    return _one(_run_jobs(jobs, wait_for_result, timeout))


def lowpoly(objects=None, *, face_limit: int | None = None, quad: bool | None = None,
            replace: bool = False, wait_for_result: bool = True, timeout: float | None = None,
            **options):
    """Smart low poly of the asset (or of the given parts): a new asset beside the original, or
    in its place with the original hidden (`replace=True`)."""
    jobs = _selection_jobs("lowpoly", objects, face_limit=face_limit, quad=quad, replace=replace,
                           **options)
    return _one(_run_jobs(jobs, wait_for_result, timeout))


def rig_check(objects=None, *, timeout: float | None = None) -> dict:
    """Asks Tripo whether the asset can be rigged: {"riggable": bool, "rig_type": str, "task_id"}.
    The answer is also written onto the asset's metadata (riggable, rig_type_detected)."""
    result = _one(_run_jobs(_selection_jobs("rig_check", objects), True, timeout))
    step = result.job["steps"][-1]
    output = (step.get("task") or {}).get("output") or {}
    return {"riggable": bool(output.get("riggable")), "rig_type": output.get("rig_type") or "",
            "task_id": step.get("task_id") or ""}


def rig(objects=None, *, rig_type: str | None = None, spec: str | None = None,
        model: str | None = None, animations=None, wait_for_result: bool = True,
        timeout: float | None = None, **options):
    """Rigs the asset (the armature replaces the original, which is hidden); with `animations`,
    then adds them as named actions (see animate). Returns the rig's Result."""
    jobs = _selection_jobs("rig", objects, rig_type=rig_type, spec=spec, model=model, **options)
    if not wait_for_result:
        return _one(_run_jobs(jobs, False, timeout))
    result = _one(_run_jobs(jobs, True, timeout))
    if animations:
        animate(result.root, animations, timeout=timeout)
    return result


def animate(objects=None, animations=("preset:idle", "preset:walk"), *, wait_for_result: bool = True,
            timeout: float | None = None, **options) -> list:
    """Adds preset animations to a rigged asset as named actions on its armature (NLA tracks).
    More than 5 become several retarget tasks, each on the rig task. Returns their Results."""
    jobs = _selection_jobs("animate", objects, animations=list(animations) if not isinstance(
        animations, str) else animations, **options)
    return _run_jobs(jobs, wait_for_result, timeout)


def convert(objects=None, format: str = "STL", folder: str = "//tripo_export/", *,
            per_part: bool = False, wait_for_result: bool = True, timeout: float | None = None,
            **options) -> list:
    """Converts the asset (or one file per given part, `per_part=True`) with convert_model and
    saves the files into `folder` under deterministic names (06_export_full_stl.stl,
    08_export_part_stl__003__handle.stl). Options: flatten_bottom, pivot_to_center_bottom,
    pack_uv, scale_factor, face_limit, texture_size, texture_format, fbx_preset,
    export_orientation, with_animation, ... Returns the file paths (or the job ids)."""
    from .blender.selection.jobs import export_files
    jobs = _selection_jobs("convert", objects, format=format, folder=folder, per_part=per_part,
                           **options)
    results = _run_jobs(jobs, wait_for_result, timeout)
    if not wait_for_result:
        return results
    return [path for result in results for path in export_files(result.job)]


def bring_to_tripo(objects=None, *, wait_for_result: bool = True, timeout: float | None = None) -> list:
    """Uploads meshes that did not come from Tripo (import_model, one task each); their metadata
    makes them Tripo assets (their meshes are not changed). Returns the Results."""
    return _run_jobs(_selection_jobs("bring_to_tripo", objects), wait_for_result, timeout)
