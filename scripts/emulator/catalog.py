"""What each apiv3 create route accepts, what it costs and which source tasks it chains from.

Pure functions over the request body: no HTTP, no state. `ROUTES` maps a create route to its
`RouteSpec`; `spec.validate(body)` returns the normalised parameters (defaults filled in) or
raises `ApiError` (400 code 1004, 2015 or 2017); `spec.cost(params)` is the credit estimate.

Credit costs (3D AI Studio's published price list, as of 2026-11, where it has a figure; our
choice otherwise):

| task | credits |
|---|---|
| text-to-model | 20 (P1: 60) |
| image-to-model, multiview-to-model | 40 (P1: 80) |
|  + texture=true | +20 standard / +40 detailed (P1 too) |
|  + geometry_quality detailed / smart_low_poly / generate_parts / quad (not P1) | +40 / +20 / +40 / +10 |
| texture | 20 standard / 40 detailed, +10 with `texture_prompt.style_image` |
| convert | 10 basic, 20 when any option differs from its default, +10 with quad=true |
| segment | 80 |
| complete | 20 (our choice) |
| decimate (smart low poly) | 10 (our choice) |
| uv | 10 (our choice) |
| rig | 25 (our choice) |
| retarget | 10 per animation (our choice) |
| rig-check, import | 0 (our choice) |
| text-to-image, image-to-image, image-to-multiview, edit-multiview | 10 (our choice) |

Chain rules: those of Tripo's v2 API documentation (which task's output each task accepts) with
`refine_model`/`stylize_model` gone, plus: the new uv task chains like smart low poly; convert also
accepts smart low poly and uv results (the v2 documentation converts a low-poly result); rig and rig-check accept every model-producing task
except convert (whose output is not a GLB).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .errors import ApiError, invalid

# --- model versions ---------------------------------------------------------------------------

GENERATION_MODELS = ("v3.1-20260211", "v3.0-20250812", "v2.5-20250123", "P1-20260311",
                     "P2-20260801")
DEPRECATED_GENERATION_MODELS = ("v1.3-20240522", "v1.4-20240625", "v2.0-20240919")
TEXTURE_MODELS = ("v2.5-20250123", "v3.0-20250812", "v3.5-20260815")
RIG_MODELS = ("v1.0-20240301", "v2.5-20260210", "v3.0-20260909")
SEGMENT_MODELS = ("v1.0-20250506", "v2.0-20260430")
DECIMATE_MODELS = ("v1.0", "v2.0", "v3.0")
TEXTURE_V35 = "v3.5-20260815"

# --- enums ------------------------------------------------------------------------------------

QUALITIES = ("standard", "detailed")
TEXTURE_QUALITIES = ("standard", "detailed", "fast")
DEPTH_KINDS = ("gray", "color")
TEXTURE_ALIGNMENTS = ("original_image", "geometry")
ORIENTATIONS = ("default", "align_image")
CONVERT_FORMATS = ("GLTF", "USDZ", "FBX", "OBJ", "STL", "3MF")
TEXTURE_FORMATS = ("BMP", "DPX", "HDR", "JPEG", "OPEN_EXR", "PNG", "TARGA", "TIFF", "WEBP")
FBX_PRESETS = ("blender", "mixamo", "3dsmax")
EXPORT_ORIENTATIONS = ("+x", "-x", "+y", "-y")
RIG_TYPES = ("biped", "quadruped", "hexapod", "octopod", "avian", "serpentine", "aquatic", "others")
RIG_SPECS = ("tripo", "mixamo", "actorcore", "unity", "unreal", "vrm")
RIG_SPECS_NEEDING_NEWER_MODEL = ("unity", "unreal", "vrm")
OUT_FORMATS = ("glb", "fbx")
SEGMENT_GRANULARITIES = ("simple", "balanced", "detailed")
COMPLETION_MODES = ("ai_completion", "quick_cap")
UPLOAD_FORMATS = ("png", "jpeg", "jpg", "webp", "glb", "fbx", "obj", "stl")
# The content type an upload of each format carries (multipart part and presigned PUT), as the
# official SDK tripo3d 1.0.0 sends it from Python's mimetypes tables (FBX has no registered type).
UPLOAD_CONTENT_TYPES = {
    "png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "webp": "image/webp",
    "glb": "model/gltf-binary", "fbx": "application/octet-stream", "obj": "model/obj",
    "stl": "model/stl",
}

BIPED_PRESETS = ("idle", "walk", "run", "dive", "climb", "jump", "slash", "shoot", "hurt", "fall",
                 "turn")
# Presets for other rig types, with the rig type each needs.
TYPED_PRESETS = {
    "preset:quadruped:walk": "quadruped",
    "preset:hexapod:walk": "hexapod",
    "preset:octopod:walk": "octopod",
    "preset:serpentine:march": "serpentine",
    "preset:aquatic:march": "aquatic",
}

MAX_PROMPT = 1024
MAX_NEGATIVE_PROMPT = 255
MAX_ANIMATIONS = 5

# --- task types -------------------------------------------------------------------------------

GENERATION_TYPES = ("text_to_model", "image_to_model", "multiview_to_model")
IMAGE_TYPES = ("text_to_image", "generate_image")
IMAGE_ANALYSIS_TYPES = ("image_to_splat", "image_to_depth")
MULTIVIEW_IMAGE_TYPES = ("generate_multiview_image", "edit_multiview_image")
UV_TYPE = "uv_unwrap"  # the new smart UV task; apiv3 names no v2 type for it
# Tasks whose output is a model (a GLB, except convert_model's chosen format).
MODEL_TYPES = (*GENERATION_TYPES, "texture_model", "import_model", "mesh_segmentation",
               "mesh_completion", "highpoly_to_lowpoly", UV_TYPE, "animate_rig", "animate_retarget",
               "convert_model")
RIGGABLE_SOURCES = tuple(t for t in MODEL_TYPES if t != "convert_model")

CHAIN_SOURCES = {
    "texture_model": (*GENERATION_TYPES, "texture_model", "import_model"),
    "mesh_segmentation": (*GENERATION_TYPES, "texture_model", "import_model", "highpoly_to_lowpoly"),
    "mesh_completion": ("mesh_segmentation",),
    "highpoly_to_lowpoly": (*GENERATION_TYPES, "texture_model", "import_model", "mesh_segmentation",
                            "mesh_completion"),
    UV_TYPE: (*GENERATION_TYPES, "texture_model", "import_model", "mesh_segmentation",
              "mesh_completion", "highpoly_to_lowpoly"),
    "animate_prerigcheck": RIGGABLE_SOURCES,
    "animate_rig": RIGGABLE_SOURCES,
    "animate_retarget": ("animate_rig",),
    "convert_model": (*GENERATION_TYPES, "texture_model", "import_model", "highpoly_to_lowpoly",
                      UV_TYPE, "animate_rig", "animate_retarget", "convert_model"),
}

# Routes that once existed and are refused with 2016 (matched on the last path segment).
RETIRED_ROUTE_WORDS = ("refine", "stylize")


# --- parameter reading ------------------------------------------------------------------------

class _Seen(dict):
    """A request body that remembers which keys a validator read: whatever it never read is a
    key the route does not know."""

    def __init__(self, body: dict):
        super().__init__(body)
        self.seen: set = set()

    def get(self, key, default=None):
        self.seen.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.seen.add(key)
        return super().__getitem__(key)


def strict(validate: Callable[[dict], dict], prefix: str = "") -> Callable[[dict], dict]:
    """`validate` that also refuses keys it does not know (1004 naming the first), so that a
    misspelled option fails instead of being ignored, as a validating server answers."""
    def run(body: dict) -> dict:
        seen = _Seen(body)
        out = validate(seen)
        unknown = sorted(set(body) - seen.seen)
        if unknown:
            raise invalid(f"{prefix}{unknown[0]} is not a parameter of this route")
        return out
    return run


class Params:
    """Reads typed parameters from a request body; every problem is a 1004 naming the field."""

    def __init__(self, body: dict):
        self.body = body
        self.out: dict = {}

    def _get(self, key, required):
        value = self.body.get(key)
        if value is None and required:
            raise invalid(f"{key} is required")
        return value

    def string(self, key, *, required=False, max_len=None, default=None, nonempty=True):
        value = self._get(key, required)
        if value is None:
            value = default
        elif not isinstance(value, str):
            raise invalid(f"{key} must be a string")
        elif nonempty and required and not value.strip():
            raise invalid(f"{key} must not be empty")
        elif max_len is not None and len(value) > max_len:
            raise invalid(f"{key} must be at most {max_len} characters (got {len(value)})")
        self.out[key] = value
        return value

    def boolean(self, key, default=False):
        value = self.body.get(key)
        if value is None:
            value = default
        elif not isinstance(value, bool):
            raise invalid(f"{key} must be true or false")
        self.out[key] = value
        return value

    def integer(self, key, lo=None, hi=None, *, required=False, default=None, what=""):
        value = self._get(key, required)
        if value is None:
            value = default
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
                raise invalid(f"{key} must be an integer")
            value = int(value)
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise invalid(f"{key} must be between {lo} and {hi}{what} (got {value})")
        self.out[key] = value
        return value

    def number(self, key, lo, hi, *, default=None):
        value = self.body.get(key)
        if value is None:
            value = default
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise invalid(f"{key} must be a number")
            if not lo <= value <= hi:
                raise invalid(f"{key} must be between {lo} and {hi} (got {value})")
        self.out[key] = value
        return value

    def choice(self, key, values, *, default=None, required=False):
        value = self._get(key, required)
        if value is None:
            value = default
        elif value not in values:
            raise invalid(f"{key} must be one of {', '.join(values)} (got {value!r})")
        self.out[key] = value
        return value

    def names(self, key):
        value = self.body.get(key)
        if value is not None:
            if (not isinstance(value, list) or not value
                    or not all(isinstance(v, str) and v for v in value)):
                raise invalid(f"{key} must be a non-empty list of names")
        self.out[key] = value
        return value

    def seeds(self, *keys):
        for key in keys:
            self.integer(key, 0, 2**31 - 1)

    def ref(self, key, *, required=False):
        """An `input`-like reference: a task id, a file token or a URL (resolved by the server)."""
        value = self._get(key, required)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise invalid(f"{key} must be a task id, a file token or a URL")
        self.out[key] = value
        return value


def _prompt(p: Params, required=True):
    p.string("prompt", required=required, max_len=MAX_PROMPT)
    p.string("negative_prompt", max_len=MAX_NEGATIVE_PROMPT)


# --- validators -------------------------------------------------------------------------------

def _generation(kind: str) -> Callable[[dict], dict]:
    def validate(body: dict) -> dict:
        p = Params(body)
        model = body.get("model")
        if model is None:
            raise invalid(f"model is required on generation (one of {', '.join(GENERATION_MODELS)})")
        if not isinstance(model, str):
            raise invalid("model must be a string")
        if model in DEPRECATED_GENERATION_MODELS:
            raise ApiError(400, 2015, f"model version {model} is deprecated")
        if model not in GENERATION_MODELS:
            raise ApiError(400, 2017, f"invalid model version {model!r} "
                                      f"(one of {', '.join(GENERATION_MODELS)})")
        p.out["model"] = model
        p1 = model.startswith("P1-")
        if p1:
            for key in ("quad", "smart_low_poly", "generate_parts"):
                if body.get(key):
                    raise invalid(f"{key} is not supported by {model}")
            if body.get("geometry_quality") is not None:
                raise invalid(f"geometry_quality is not supported by {model}")
        if kind == "text":
            _prompt(p)
        elif kind == "image":
            p.ref("input", required=True)
        else:
            inputs = body.get("inputs")
            task_ref = multiview_task_ref(inputs)
            if task_ref is not None:  # [{"task_id": id}]: the views of a multiview image task
                p.out["inputs"] = None
                p.out["input"] = task_ref
            else:
                validate_views(body)
                p.out["inputs"] = inputs
        if kind != "text":
            p.choice("texture_alignment", TEXTURE_ALIGNMENTS, default="original_image")
            p.choice("orientation", ORIENTATIONS, default="default")
            p.boolean("enable_image_autofix")
        texture = p.boolean("texture", True)
        pbr = p.boolean("pbr", True)
        p.choice("texture_quality", QUALITIES, default="standard")
        p.choice("geometry_quality", QUALITIES)
        if p1:
            p.integer("face_limit", 48, 20000, what=f" for {model}")
        else:
            p.integer("face_limit", 500, 500000)
        p.seeds("image_seed", "model_seed", "texture_seed")
        p.boolean("auto_size")
        quad = p.boolean("quad")
        p.boolean("smart_low_poly")
        p.boolean("export_uv", True)
        p.choice("compress", ("geometry",))
        if p.boolean("generate_parts"):
            if texture or pbr:
                raise invalid("generate_parts needs texture=false and pbr=false "
                              "(both default to true)")
            if quad:
                raise invalid("generate_parts cannot be combined with quad")
        return p.out
    return validate


def multiview_task_ref(inputs) -> str | None:
    """The task id of `inputs: [{"task_id": id}]` (how the official SDK tripo3d 1.0.0 names a
    multiview image task as the source of multiview-to-model), else None."""
    if not (isinstance(inputs, list) and len(inputs) == 1 and isinstance(inputs[0], dict)):
        return None
    entry = inputs[0]
    unknown = sorted(set(entry) - {"task_id"})
    if unknown:
        raise invalid(f"inputs[0].{unknown[0]} is not a field of a task reference (only task_id)")
    task_id = entry.get("task_id")
    if not isinstance(task_id, str) or not task_id.strip():
        raise invalid("inputs[0].task_id must be a task id")
    return task_id


def validate_views(body: dict, key="inputs") -> None:
    inputs = body.get(key)
    if not isinstance(inputs, list) or len(inputs) != 4:
        raise invalid(f"{key} must list exactly 4 views [front, left, back, right] (null for a missing one)")
    if any(v is not None and (not isinstance(v, str) or not v.strip()) for v in inputs):
        raise invalid(f"each entry of {key} must be a task id, a file token, a URL or null")
    if inputs[0] is None:
        raise invalid(f"{key}: the front view (first entry) is required")
    if sum(v is not None for v in inputs) < 2:
        raise invalid(f"{key}: at least two views are required")


def _text_to_image(body):
    p = Params(body)
    _prompt(p)
    p.string("model")
    p.seeds("image_seed")
    return p.out


def _image_to_image(body):
    """One reference (`input`) or several (`inputs`), a prompt and/or a `template`, `t_pose`,
    `sketch_to_render` (the official SDK tripo3d 1.0.0's options)."""
    p = Params(body)
    template = p.string("template")
    _prompt(p, required=template is None)
    refs = body.get("inputs")
    if refs is not None:
        if body.get("input") is not None:
            raise invalid("give input or inputs, not both")
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) and r.strip()
                                                              for r in refs):
            raise invalid("inputs must be a non-empty list of task ids, file tokens or URLs")
        p.out["inputs"] = list(refs)
        p.out["input"] = refs[0]  # the subject comes from the first reference
    else:
        p.ref("input", required=True)
    p.string("model")
    p.seeds("image_seed")
    p.boolean("t_pose")
    p.boolean("sketch_to_render")
    return p.out


def _image_to_splat(body):
    p = Params(body)
    p.ref("input", required=True)
    p.seeds("model_seed")
    return p.out


def _image_to_depth(body):
    """`kind` and `process_res` default to what the official SDK tripo3d 1.0.0 documents as the
    server's defaults (gray, 504)."""
    p = Params(body)
    p.ref("input", required=True)
    p.choice("kind", DEPTH_KINDS, default="gray")
    p.integer("process_res", 126, 2016, default=504)
    return p.out


def _image_to_multiview(body):
    p = Params(body)
    _prompt(p, required=False)
    p.ref("input", required=True)
    p.string("model")
    return p.out


VIEWS = ("front", "left", "back", "right")


def _edit_multiview(body):
    """`input` (an image-to-multiview task) and `prompts`, one `{"view", "prompt"}` per view
    to edit: what the official SDK tripo3d 1.0.0 sends."""
    p = Params(body)
    p.ref("input", required=True)
    prompts = body.get("prompts")
    if prompts is None:
        raise invalid("prompts is required (a list of {view, prompt})")
    if not isinstance(prompts, list) or not prompts:
        raise invalid("prompts must be a non-empty list of {view, prompt}")
    seen = set()
    for index, entry in enumerate(prompts):
        if not isinstance(entry, dict):
            raise invalid(f"prompts[{index}] must be an object {{view, prompt}}")
        unknown = sorted(set(entry) - {"view", "prompt"})
        if unknown:
            raise invalid(f"prompts[{index}].{unknown[0]} is not a field (only view and prompt)")
        view, text = entry.get("view"), entry.get("prompt")
        if view not in VIEWS:
            raise invalid(f"prompts[{index}].view must be one of {', '.join(VIEWS)} (got {view!r})")
        if view in seen:
            raise invalid(f"prompts[{index}].view: the {view} view is listed twice")
        seen.add(view)
        if not isinstance(text, str) or not text.strip():
            raise invalid(f"prompts[{index}].prompt must be a non-empty string")
        if len(text) > MAX_PROMPT:
            raise invalid(f"prompts[{index}].prompt must be at most {MAX_PROMPT} characters")
    p.out["prompts"] = [dict(entry) for entry in prompts]
    return p.out


def _texture(body):
    """Texture; its defaults are the official SDK tripo3d 1.0.0's declared ones."""
    p = Params(body)
    p.ref("input", required=True)
    # Our choice: the model the official SDK tripo3d 1.0.0 declares as its default (it always
    # sends one, so the server's own default is not visible in it).
    model = p.choice("model", TEXTURE_MODELS, default="v2.5-20250123")
    p.boolean("texture", True)
    p.boolean("pbr", True)
    quality = p.choice("texture_quality", TEXTURE_QUALITIES, default="standard")
    if quality == "fast" and model != TEXTURE_V35:
        raise invalid(f"texture_quality fast needs texture model {TEXTURE_V35}")
    if body.get("delight") is not None and model != TEXTURE_V35:
        raise invalid(f"delight needs texture model {TEXTURE_V35}")
    p.boolean("delight")
    p.choice("texture_alignment", TEXTURE_ALIGNMENTS, default="original_image")
    p.seeds("model_seed", "texture_seed")
    p.names("part_names")
    p.boolean("bake", True)
    p.choice("compress", ("geometry",))
    prompt = body.get("texture_prompt")
    if prompt is not None:
        if not isinstance(prompt, dict):
            raise invalid("texture_prompt must be an object {text | image | style_image}")
        unknown = sorted(set(prompt) - {"text", "image", "style_image"})
        if unknown:
            raise invalid(f"texture_prompt.{unknown[0]} is not a parameter of texture_prompt "
                          "(text, image, style_image)")
        tp = Params(prompt)
        tp.string("text", max_len=MAX_PROMPT)
        tp.ref("image")
        tp.ref("style_image")
        if not any(tp.out.values()):
            raise invalid("texture_prompt needs text, image or style_image")
        if tp.out["text"] is not None and not tp.out["text"].strip():
            raise invalid("texture_prompt.text must not be empty")
        p.out["texture_prompt"] = tp.out
    else:
        p.out["texture_prompt"] = None
    return p.out


# The official SDK tripo3d 1.0.0's declared defaults (it leaves values equal to them unsent).
CONVERT_DEFAULTS = {
    "quad": False, "force_symmetry": False, "face_limit": None, "flatten_bottom": False,
    "flatten_bottom_threshold": 0.01, "texture_size": 4096, "texture_format": "JPEG",
    "scale_factor": 1.0, "pivot_to_center_bottom": False, "with_animation": True,
    "pack_uv": False, "bake": True, "part_names": None, "export_vertex_colors": False,
    "fbx_preset": "blender", "export_orientation": "+x", "animate_in_place": False,
}


def _convert(body):
    p = Params(body)
    p.ref("input", required=True)
    p.choice("format", CONVERT_FORMATS, required=True)
    d = CONVERT_DEFAULTS
    for key in ("quad", "force_symmetry", "flatten_bottom", "pivot_to_center_bottom",
                "with_animation", "pack_uv", "bake", "export_vertex_colors", "animate_in_place"):
        p.boolean(key, d[key])
    p.integer("face_limit", 100, 500000)
    p.number("flatten_bottom_threshold", 0, 1, default=d["flatten_bottom_threshold"])
    p.integer("texture_size", 64, 8192, default=d["texture_size"])
    p.choice("texture_format", TEXTURE_FORMATS, default=d["texture_format"])
    p.number("scale_factor", 1e-6, 1e6, default=d["scale_factor"])
    p.names("part_names")
    p.choice("fbx_preset", FBX_PRESETS, default=d["fbx_preset"])
    p.choice("export_orientation", EXPORT_ORIENTATIONS, default=d["export_orientation"])
    return p.out


def _import(body):
    p = Params(body)
    p.ref("input", required=True)
    return p.out


def _rig_check(body):
    p = Params(body)
    p.ref("input", required=True)
    return p.out


def _rig(body):
    p = Params(body)
    p.ref("input", required=True)
    # v1.0-20240301: the server default the official SDK tripo3d 1.0.0 documents.
    model = p.choice("model", RIG_MODELS, default=RIG_MODELS[0])
    # The official SDK tripo3d 1.0.0 declares biped and leaves it unsent, so biped is what a
    # request without rig_type gets (the rig check reports the detected type separately).
    p.choice("rig_type", RIG_TYPES, default="biped")
    spec = p.choice("spec", RIG_SPECS, default="tripo")
    if spec in RIG_SPECS_NEEDING_NEWER_MODEL and model == RIG_MODELS[0]:
        raise invalid(f"spec {spec} needs rig model {RIG_MODELS[1]} or {RIG_MODELS[2]}")
    p.choice("out_format", OUT_FORMATS, default="glb")
    return p.out


def preset_rig_type(animation: str) -> str | None:
    """The rig type a preset needs, or None for an unknown preset."""
    if animation in TYPED_PRESETS:
        return TYPED_PRESETS[animation]
    name = animation.removeprefix("preset:").removeprefix("biped:")
    if animation.startswith("preset:") and name in BIPED_PRESETS:
        return "biped"
    return None


def _retarget(body):
    p = Params(body)
    p.ref("input", required=True)
    animations = body.get("animations")
    single = body.get("animation")
    if animations is None:
        if single is None:
            raise invalid("animation or animations is required")
        animations = [single]
    elif single is not None:
        raise invalid("give either animation or animations, not both")
    if not isinstance(animations, list) or not animations:
        raise invalid("animations must be a non-empty list of presets")
    if len(animations) > MAX_ANIMATIONS:
        raise invalid(f"at most {MAX_ANIMATIONS} animations per task (got {len(animations)})")
    for animation in animations:
        if not isinstance(animation, str) or preset_rig_type(animation) is None:
            raise invalid(f"unknown animation preset {animation!r}")
    p.out["animations"] = list(animations)
    p.choice("out_format", OUT_FORMATS, default="glb")
    p.boolean("export_with_geometry", False)  # the official SDK's declared default
    p.boolean("animate_in_place")
    return p.out


def _segment(body):
    p = Params(body)
    p.ref("input", required=True)
    model = p.choice("model", SEGMENT_MODELS, default=SEGMENT_MODELS[0])
    if model == SEGMENT_MODELS[0]:
        for key in ("segmentation_granularity", "split_by_connectivity", "ref_image"):
            if body.get(key) is not None:
                raise invalid(f"{key} needs segmentation model {SEGMENT_MODELS[1]}")
    p.choice("segmentation_granularity", SEGMENT_GRANULARITIES, default="balanced")
    p.boolean("split_by_connectivity")
    p.ref("ref_image")
    return p.out


def _complete(body):
    p = Params(body)
    p.ref("input", required=True)
    p.string("model")
    p.names("part_names")
    p.choice("completion_mode", COMPLETION_MODES, default="ai_completion")
    return p.out


def _decimate(body):
    p = Params(body)
    p.ref("input", required=True)
    model = body.get("model")
    model = "v2.0" if model is None else model  # the server default the SDK documents
    if not isinstance(model, str) or not any(model == m or model.startswith(m + "-")
                                             for m in DECIMATE_MODELS):
        raise invalid(f"model must be one of {', '.join(DECIMATE_MODELS)} (got {model!r})")
    p.out["model"] = model
    quad = p.boolean("quad")
    if quad:
        p.integer("face_limit", 500, 10000, default=5000, what=" quads")
    else:
        p.integer("face_limit", 500, 20000, default=10000, what=" triangles")
    p.boolean("bake", True)
    p.names("part_names")
    if p.boolean("smart_uv") and not model.startswith("v3.0"):
        raise invalid("smart_uv needs decimation model v3.0")
    return p.out


def _uv(body):
    p = Params(body)
    p.ref("input", required=True)
    p.string("model")
    return p.out


# --- costs ------------------------------------------------------------------------------------

def _generation_cost(kind: str) -> Callable[[dict], int]:
    def cost(params: dict) -> int:
        p1 = params["model"].startswith("P1-")
        total = {"text": 20, "image": 40, "multiview": 40}[kind] + (40 if p1 else 0)
        if params["texture"]:
            total += 40 if params["texture_quality"] == "detailed" else 20
        if not p1:
            total += 40 if params.get("geometry_quality") == "detailed" else 0
            total += 20 if params["smart_low_poly"] else 0
            total += 40 if params["generate_parts"] else 0
            total += 10 if params["quad"] else 0
        return total
    return cost


def _texture_cost(params):
    total = 40 if params["texture_quality"] == "detailed" else 20
    if (params.get("texture_prompt") or {}).get("style_image"):
        total += 10
    return total


def _convert_cost(params):
    advanced = any(params.get(key) != default for key, default in CONVERT_DEFAULTS.items())
    return (20 if advanced else 10) + (10 if params["quad"] else 0)


def _flat(credits: int) -> Callable[[dict], int]:
    return lambda params: credits


# --- the route table --------------------------------------------------------------------------

@dataclass(frozen=True)
class RouteSpec:
    type: str
    validate: Callable[[dict], dict]
    cost: Callable[[dict], int]


ROUTES: dict[str, RouteSpec] = {
    "/v3/generation/text-to-model": RouteSpec("text_to_model", _generation("text"), _generation_cost("text")),
    "/v3/generation/image-to-model": RouteSpec("image_to_model", _generation("image"), _generation_cost("image")),
    "/v3/generation/multiview-to-model": RouteSpec("multiview_to_model", _generation("multiview"),
                                                   _generation_cost("multiview")),
    "/v3/generation/text-to-image": RouteSpec("text_to_image", _text_to_image, _flat(10)),
    "/v3/generation/image-to-image": RouteSpec("generate_image", _image_to_image, _flat(10)),
    "/v3/generation/image-to-multiview": RouteSpec("generate_multiview_image", _image_to_multiview, _flat(10)),
    "/v3/generation/edit-multiview": RouteSpec("edit_multiview_image", _edit_multiview, _flat(10)),
    "/v3/generation/image-to-splat": RouteSpec("image_to_splat", _image_to_splat, _flat(10)),
    "/v3/generation/image-to-depth": RouteSpec("image_to_depth", _image_to_depth, _flat(10)),
    "/v3/models/texture": RouteSpec("texture_model", _texture, _texture_cost),
    "/v3/models/convert": RouteSpec("convert_model", _convert, _convert_cost),
    "/v3/models/import": RouteSpec("import_model", _import, _flat(0)),
    "/v3/animations/rig-check": RouteSpec("animate_prerigcheck", _rig_check, _flat(0)),
    "/v3/animations/rig": RouteSpec("animate_rig", _rig, _flat(25)),
    "/v3/animations/retarget": RouteSpec("animate_retarget", _retarget,
                                         lambda params: 10 * len(params["animations"])),
    "/v3/mesh/segment": RouteSpec("mesh_segmentation", _segment, _flat(80)),
    "/v3/mesh/complete": RouteSpec("mesh_completion", _complete, _flat(20)),
    "/v3/mesh/decimate": RouteSpec("highpoly_to_lowpoly", _decimate, _flat(10)),
    "/v3/mesh/uv": RouteSpec(UV_TYPE, _uv, _flat(10)),
}


# Every route refuses keys it does not know.
ROUTES = {route: RouteSpec(spec.type, strict(spec.validate), spec.cost)
          for route, spec in ROUTES.items()}


def is_retired_route(path: str) -> bool:
    last = path.rstrip("/").rsplit("/", 1)[-1]
    return any(last.startswith(word) for word in RETIRED_ROUTE_WORDS)


def check_chain(task_type: str, source_type: str, allowed: tuple | None = None) -> None:
    """Raises 2006 when `task_type` cannot take a `source_type` task as its input (`allowed`:
    the accepted source types, by default the chain rules above)."""
    allowed = allowed or CHAIN_SOURCES.get(task_type)
    if allowed is not None and source_type not in allowed:
        raise ApiError(400, 2006, f"{task_type} cannot use a {source_type} task as input "
                                  f"(accepted: {', '.join(allowed)})")


# --- rig types from prompts -------------------------------------------------------------------

_RIG_WORDS = (
    (("dog", "cat", "horse", "wolf"), "quadruped"),
    (("bird",), "avian"),
    (("snake",), "serpentine"),
    (("fish", "shark"), "aquatic"),
)


def rig_check(prompt: str | None) -> tuple[bool, str]:
    """(riggable, rig_type) the emulator reports for a model made from `prompt`."""
    text = (prompt or "").lower()
    riggable = "rock" not in text
    for words, rig_type in _RIG_WORDS:
        if any(word in text for word in words):
            return riggable, rig_type
    return riggable, "biped"
