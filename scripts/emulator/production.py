"""Turns a created task into its output files, in a worker thread.

Model outputs come from the asset factory (`factory_client.AssetFactory`, Blender in a
subprocess, cached on disk); images (generated images, multiview views, previews the factory
does not make) are PNGs written here. Each `_<task type>` method returns an `Output`; any
exception fails the task with error 1001 (server.py records it).

Task type -> factory op:
- text/image/multiview_to_model -> `model` (seed: `model_seed`, else from the prompt, else from
  the image bytes; the prompt of an image the emulator generated is passed on; `profile:
  realistic` when the task was created under `Config.asset_profile = "realistic"`)
- texture_model -> `texture` on the source's GLB; mesh_segmentation -> `segment` (with the
  source's part names); mesh_completion -> `complete`; highpoly_to_lowpoly -> `decimate`
- uv_unwrap -> `decimate` with a face limit above any mesh's count: the factory has no UV op, and
  that decimation is a plain re-export of the mesh (plus a UV preview PNG)
- animate_rig -> `rig`; animate_retarget -> `retarget`; `out_format: fbx` adds a `convert`
- convert_model -> `convert` of the source's GLB; import_model -> `import` of the uploaded file
- animate_prerigcheck, text_to_image, generate_image, generate_multiview_image,
  edit_multiview_image -> no factory call
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import catalog
from .images import write_depth_png, write_preview_png, write_splat_ply
from .state import FileSource, ImageRef, Task

log = logging.getLogger(__name__)

VIEWS = ("front", "left", "back", "right")
# Output files each model task exposes (as Tripo's v2 API documentation lists them, with v3's single
# model_url).
WITH_PREVIEW = (*catalog.GENERATION_TYPES, "texture_model")
UV_REEXPORT_FACE_LIMIT = 10**9


def seed_of(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) & 0x7FFFFFFF


@dataclass
class Output:
    files: dict  # output name -> Path
    glb: Path | None = None
    info: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    prompts: dict = field(default_factory=dict)  # Path of a generated image -> its subject


class Producer:
    """Produces outputs. `factory()` returns the AssetFactory (created on first use)."""

    def __init__(self, factory: Callable[[], object], image_dir: Path):
        self._factory = factory
        self._image_dir = Path(image_dir)

    def run(self, task: Task) -> Output:
        return getattr(self, "_" + task.type)(task)

    # --- helpers ------------------------------------------------------------------------------

    def _produce(self, op: str, params: dict, inputs: dict | None = None) -> dict:
        log.debug("factory %s %s", op, params)
        result = self._factory().produce(op, params, inputs)
        files = {name: Path(path) for name, path in result.get("files", {}).items()}
        if "model" not in files:
            raise RuntimeError(f"the asset factory's {op} gave no model file")
        return {"files": files, "info": dict(result.get("info") or {})}

    def _preview(self, text: str, variant: int = 0) -> Path:
        return write_preview_png(self._image_dir, text, variant=variant)

    def _source_glb(self, task: Task) -> Path:
        source = task.source
        if isinstance(source, Task):
            if source.glb is None:
                raise RuntimeError(f"source task {source.task_id} has no model")
            return source.glb
        if source.path is None:  # a foreign URL: a stand-in model named after it
            return self._model(source.label, seed_of(source.label))["files"]["model"]
        if source.format == "glb":
            return source.path
        return self._produce("import", {"format": source.format},
                             {"model": str(source.path)})["files"]["model"]

    def _source_info(self, task: Task) -> dict:
        return dict(task.source.info) if isinstance(task.source, Task) else {}

    def _model(self, prompt: str, seed: int, params: dict | None = None,
               profile: str = "light") -> dict:
        params = params or {}
        request = {
            "prompt": prompt, "seed": seed,
            "texture": params.get("texture", True), "pbr": params.get("pbr", True),
            "face_limit": params.get("face_limit"), "quad": params.get("quad", False),
            "generate_parts": params.get("generate_parts", False)}
        if profile != "light":  # light requests keep their old cache keys
            request["profile"] = profile
        return self._produce("model", request)

    def _model_output(self, task: Task, result: dict, *, glb: Path | None = None,
                      info: dict | None = None) -> Output:
        files = {"model": result["files"]["model"]}
        if task.type in WITH_PREVIEW:
            files["rendered_image"] = (result["files"].get("rendered_image")
                                       or self._preview(task.prompt or task.task_id))
        merged = {**(info if info is not None else self._source_info(task)), **result["info"]}
        return Output(files, glb=glb or files["model"], info=merged)

    def _out_format(self, task: Task, result: dict) -> Output:
        """Rig/retarget results: GLB, or FBX converted from it (the GLB stays the chain input)."""
        glb = result["files"]["model"]
        if task.params.get("out_format") == "fbx":
            params = {**_convert_params(catalog.CONVERT_DEFAULTS), "format": "FBX"}
            result = {**result, "files": self._produce("convert", params, {"model": str(glb)})["files"]}
        return self._model_output(task, result, glb=glb)

    # --- generation ---------------------------------------------------------------------------

    def _text_to_model(self, task: Task) -> Output:
        p = task.params
        seed = p["model_seed"] if p["model_seed"] is not None else seed_of(p["prompt"])
        return self._model_output(task, self._model(p["prompt"], seed, p, task.asset_profile),
                                  info={})

    def _image_model(self, task: Task, image: ImageRef) -> Output:
        p = task.params
        seed = p["model_seed"] if p["model_seed"] is not None else int(image.digest[:8], 16) & 0x7FFFFFFF
        prompt = image.prompt or f"object from image {image.digest[:12]}"
        return self._model_output(task, self._model(prompt, seed, p, task.asset_profile), info={})

    def _image_to_model(self, task: Task) -> Output:
        return self._image_model(task, task.images["image"])

    def _multiview_to_model(self, task: Task) -> Output:
        return self._image_model(task, task.images["views"][0])

    def _text_to_image(self, task: Task) -> Output:
        path = self._preview(task.params["prompt"])
        return Output({"generated_image": path}, prompts={path: task.prompt})

    def _generate_image(self, task: Task) -> Output:
        path = self._preview(f"{task.prompt}|{task.images['image'].digest}")
        return Output({"generated_image": path}, prompts={path: task.prompt})

    def _image_to_splat(self, task: Task) -> Output:
        # Our choice: the splat is a 3DGS PLY under `model_url` (apiv3 names one model output).
        image = task.images["image"]
        path = write_splat_ply(self._image_dir, f"{image.digest}|{task.params.get('model_seed')}")
        return Output({"splat": path})

    def _image_to_depth(self, task: Task) -> Output:
        image = task.images["image"]
        return Output({"depth_image": write_depth_png(self._image_dir, image.digest,
                                                      size=min(task.params["process_res"], 512))})

    def _views(self, task: Task, text: str) -> Output:
        files = {f"{view}_view": self._preview(text, variant) for variant, view in enumerate(VIEWS)}
        return Output(files, prompts={path: task.prompt for path in files.values()})

    def _generate_multiview_image(self, task: Task) -> Output:
        image = task.images["image"]
        return self._views(task, image.prompt or f"{task.params.get('prompt')}|{image.digest}")

    def _edit_multiview_image(self, task: Task) -> Output:
        digests = "|".join(v.digest for v in task.images["views"] if v is not None)
        return self._views(task, f"{task.prompt}|{digests}")

    # --- model tasks --------------------------------------------------------------------------

    def _texture_model(self, task: Task) -> Output:
        p = task.params
        text = (p["texture_prompt"] or {}).get("text")
        image = task.images.get("image")
        prompt = text or (image and (image.prompt or f"texture from image {image.digest[:12]}")) \
            or task.prompt or "texture"
        result = self._produce("texture", {"prompt": prompt, "part_names": p["part_names"],
                                           "pbr": p["pbr"]},
                               {"model": str(self._source_glb(task))})
        return self._model_output(task, result)

    def _import_model(self, task: Task) -> Output:
        source: FileSource = task.source
        if source.path is None:
            return self._model_output(task, self._model(source.label, seed_of(source.label)))
        result = self._produce("import", {"format": source.format}, {"model": str(source.path)})
        return self._model_output(task, result)

    def _mesh_segmentation(self, task: Task) -> Output:
        part_names = self._source_info(task).get("part_names")
        result = self._produce("segment", {"part_names": part_names},
                               {"model": str(self._source_glb(task))})
        return self._model_output(task, result)

    def _mesh_completion(self, task: Task) -> Output:
        part_names = task.params["part_names"] or self._source_info(task).get("part_names")
        result = self._produce("complete", {"part_names": part_names},
                               {"model": str(self._source_glb(task))})
        return self._model_output(task, result)

    def _highpoly_to_lowpoly(self, task: Task) -> Output:
        p = task.params
        result = self._produce("decimate", {"face_limit": p["face_limit"], "quad": p["quad"],
                                            "part_names": p["part_names"]},
                               {"model": str(self._source_glb(task))})
        return self._model_output(task, result)

    def _uv_unwrap(self, task: Task) -> Output:
        result = self._produce("decimate", {"face_limit": UV_REEXPORT_FACE_LIMIT, "quad": False,
                                            "part_names": None},
                               {"model": str(self._source_glb(task))})
        output = self._model_output(task, result)
        output.files["uv_render"] = self._preview(f"uv|{task.prompt or task.task_id}")
        return output

    def _animate_prerigcheck(self, task: Task) -> Output:
        riggable, rig_type = catalog.rig_check(task.prompt)
        return Output({}, extra={"riggable": riggable, "rig_type": rig_type})

    def _animate_rig(self, task: Task) -> Output:
        p = task.params
        rig_type = p["rig_type"] or catalog.rig_check(task.prompt)[1]
        result = self._produce("rig", {"rig_type": rig_type, "spec": p["spec"]},
                               {"model": str(self._source_glb(task))})
        result["info"].setdefault("rig_type", rig_type)
        return self._out_format(task, result)

    def _animate_retarget(self, task: Task) -> Output:
        p = task.params
        result = self._produce("retarget", {"animations": p["animations"],
                                            "animate_in_place": p["animate_in_place"]},
                               {"model": str(self._source_glb(task))})
        return self._out_format(task, result)

    def _convert_model(self, task: Task) -> Output:
        glb = self._source_glb(task)
        result = self._produce("convert", _convert_params(task.params), {"model": str(glb)})
        return self._model_output(task, result, glb=glb)


def _convert_params(params: dict) -> dict:
    keys = ("format", "flatten_bottom", "flatten_bottom_threshold", "pivot_to_center_bottom",
            "scale_factor", "face_limit", "with_animation", "export_orientation", "part_names",
            "texture_size", "texture_format", "fbx_preset")
    return {key: params.get(key) for key in keys}
