"""The vocabulary of Tripo tasks: the task types and their labels, model versions and the
defaults we send, the values each option takes, the rules between generation options and the
limits (each defined once; the panel builds its choices from them).

Plain Python, no ``bpy`` (see ``core/__init__``); it imports nothing else of ``core``.
"""

from __future__ import annotations

from typing import Optional

# --------------------------------------------------------------------------- task types

TEXT_TO_MODEL = "text_to_model"
IMAGE_TO_MODEL = "image_to_model"
MULTIVIEW_TO_MODEL = "multiview_to_model"
TEXT_TO_IMAGE = "text_to_image"
GENERATE_IMAGE = "generate_image"
GENERATE_MULTIVIEW_IMAGE = "generate_multiview_image"
EDIT_MULTIVIEW_IMAGE = "edit_multiview_image"
IMAGE_TO_SPLAT = "image_to_splat"
IMAGE_TO_DEPTH = "image_to_depth"
TEXTURE_MODEL = "texture_model"
MESH_SEGMENTATION = "mesh_segmentation"
MESH_COMPLETION = "mesh_completion"
HIGHPOLY_TO_LOWPOLY = "highpoly_to_lowpoly"
MESH_UV = "mesh_uv"
ANIMATE_PRERIGCHECK = "animate_prerigcheck"
ANIMATE_RIG = "animate_rig"
ANIMATE_RETARGET = "animate_retarget"
CONVERT_MODEL = "convert_model"
IMPORT_MODEL = "import_model"
#: The task types that make a new model from a prompt or images (the start of an asset).
GENERATION_TYPES: tuple[str, ...] = (TEXT_TO_MODEL, IMAGE_TO_MODEL, MULTIVIEW_TO_MODEL)

#: Task types Tripo retired, with what to tell the user.
RETIRED_TASK_TYPES: dict[str, str] = {
    "refine_model": (
        "refine_model was retired by Tripo: API v3 has no refine step. Generate again with a "
        "current model version (v3.x), which produces the final quality directly."
    ),
    "stylize_model": (
        "stylize_model was retired by Tripo: API v3 has no stylize step (lego, voxel, voronoi, "
        "minecraft). Describe the style in the prompt of a new generation instead."
    ),
}

#: Human names of the task types.
TASK_LABELS: dict[str, str] = {
    TEXT_TO_MODEL: "Text to model",
    IMAGE_TO_MODEL: "Image to model",
    MULTIVIEW_TO_MODEL: "Multiview to model",
    TEXT_TO_IMAGE: "Text to image",
    GENERATE_IMAGE: "Image to image",
    GENERATE_MULTIVIEW_IMAGE: "Image to multiview",
    EDIT_MULTIVIEW_IMAGE: "Edit multiview",
    IMAGE_TO_SPLAT: "Image to splat",
    IMAGE_TO_DEPTH: "Image to depth",
    TEXTURE_MODEL: "Texture",
    MESH_SEGMENTATION: "Segmentation",
    MESH_COMPLETION: "Part completion",
    HIGHPOLY_TO_LOWPOLY: "Smart low poly",
    MESH_UV: "UV unwrap",
    ANIMATE_PRERIGCHECK: "Rig check",
    ANIMATE_RIG: "Rig",
    ANIMATE_RETARGET: "Animation retarget",
    CONVERT_MODEL: "Convert",
    IMPORT_MODEL: "Import",
    "refine_model": "Refine (retired)",
    "stylize_model": "Stylize (retired)",
}


#: Other names the server may report for a task type (the uv step has no v2 name).
TASK_TYPE_ALIASES: dict[str, str] = {
    "uv_unwrap": MESH_UV,
    "smart_uv": MESH_UV,
    "uv": MESH_UV,
    "smart_lowpoly": HIGHPOLY_TO_LOWPOLY,
    "prerigcheck": ANIMATE_PRERIGCHECK,
}


def normalize_task_type(task_type: Optional[str]) -> Optional[str]:
    """The canonical (v2 vocabulary) name of a task type the server reported."""
    if task_type is None:
        return None
    text = str(task_type).strip()
    return TASK_TYPE_ALIASES.get(text, text) or None


def task_label(task_type: Optional[str]) -> str:
    """Human name of a task type (the raw name when unknown)."""
    if not task_type:
        return "unknown task"
    return TASK_LABELS.get(task_type, task_type)


# --------------------------------------------------------------------------- versions

# Every request sends its model version: the DEFAULT_* below are what we send when the user
# chose none (defined here once), so no result depends on what the server would pick.

#: Known generation model versions (text/image/multiview to model). First is the default.
#: P2-20260801 is Tripo's preview model (the official SDK tripo3d 1.0.0 lists it).
GENERATION_MODELS: tuple[str, ...] = (
    "v3.1-20260211",
    "v3.0-20250812",
    "v2.5-20250123",
    "P1-20260311",
    "P2-20260801",
)
DEFAULT_GENERATION_MODEL = "v3.1-20260211"
#: Preview models: accepted in requests, not offered in the panel.
PREVIEW_GENERATION_MODELS: tuple[str, ...] = ("P2-20260801",)
TEXTURE_MODELS: tuple[str, ...] = ("v2.5-20250123", "v3.0-20250812", "v3.5-20260815")
DEFAULT_TEXTURE_MODEL = "v3.0-20250812"
#: The texture model that takes texture_quality "fast" and delight.
TEXTURE_V35_MODEL = "v3.5-20260815"
RIG_MODELS: tuple[str, ...] = ("v1.0-20240301", "v2.5-20260210", "v3.0-20260909")
#: What we send (Tripo's current rig model).
DEFAULT_RIG_MODEL = "v3.0-20260909"
#: What the server uses when a request names no rig model (the official SDK tripo3d 1.0.0
#: documents v1.0-20240301 as the server default): the model of an old rig made without one.
SERVER_DEFAULT_RIG_MODEL = "v1.0-20240301"
SEGMENT_MODELS: tuple[str, ...] = ("v1.0-20250506", "v2.0-20260430")
DEFAULT_SEGMENT_MODEL = "v1.0-20250506"
SEGMENT_V2_MODEL = "v2.0-20260430"
DEFAULT_COMPLETION_MODEL = "v1.0-20250506"
#: Decimation models; the reference names them without dates. Dated forms are accepted too.
DECIMATE_MODELS: tuple[str, ...] = ("v1.0", "v2.0", "v3.0")
DEFAULT_DECIMATE_MODEL = "v2.0"
#: Smart low poly names as Tripo's product lists them; /v3/mesh/decimate takes only the short
#: form, so they are sent as it (the official SDK tripo3d 1.0.0 maps them the same way).
DECIMATE_MODEL_ALIASES: dict[str, str] = {
    "P-v1.0-20250506": "v1.0",
    "P-v2.0-20251225": "v2.0",
    "P-v2.0-20251226": "v2.0",
    "P-v3.0-20260909": "v3.0",
}

# --------------------------------------------------------------------------- enums

QUALITIES = ("standard", "detailed")
#: texture_quality of the texture step: "fast" needs the v3.5 texture model.
TEXTURE_QUALITIES = ("standard", "detailed", "fast")
DEPTH_KINDS = ("gray", "color")
DEPTH_PROCESS_RES_RANGE = (126, 2016)
TEXTURE_ALIGNMENTS = ("original_image", "geometry")
ORIENTATIONS = ("default", "align_image")
CONVERT_FORMATS = ("GLTF", "USDZ", "FBX", "OBJ", "STL", "3MF")
TEXTURE_FORMATS = ("BMP", "DPX", "HDR", "JPEG", "OPEN_EXR", "PNG", "TARGA", "TIFF", "WEBP")
FBX_PRESETS = ("blender", "mixamo", "3dsmax")
EXPORT_ORIENTATIONS = ("+x", "-x", "+y", "-y")
RIG_TYPES = ("biped", "quadruped", "hexapod", "octopod", "avian", "serpentine", "aquatic", "others")
RIG_SPECS = ("tripo", "mixamo", "actorcore", "unity", "unreal", "vrm")
#: Rig specs that need rig model v2.5 or v3.0.
RIG_SPECS_NEEDING_NEW_MODEL = ("unity", "unreal", "vrm")
RIG_OUT_FORMATS = ("glb", "fbx")
SEGMENTATION_GRANULARITIES = ("simple", "balanced", "detailed")
COMPLETION_MODES = ("ai_completion", "quick_cap")

_BIPED_ANIMATIONS = (
    "idle", "walk", "run", "dive", "climb", "jump", "slash", "shoot", "hurt", "fall", "turn",
)
#: Known animation presets for retargeting (v1.0 rigs use ``preset:biped:<name>``).
ANIMATION_PRESETS: tuple[str, ...] = (
    tuple(f"preset:{n}" for n in _BIPED_ANIMATIONS)
    + tuple(f"preset:biped:{n}" for n in _BIPED_ANIMATIONS)
    + (
        "preset:quadruped:walk",
        "preset:hexapod:walk",
        "preset:octopod:walk",
        "preset:serpentine:march",
        "preset:aquatic:march",
    )
)
MAX_ANIMATIONS = 5

#: The four views of a multiview input, in the order ``inputs`` lists them.
MULTIVIEW_SLOTS = ("front", "left", "back", "right")

# --------------------------------------------------------------------------- option rules

#: Options P1 generation models do not take.
P1_REFUSED_OPTIONS: tuple[str, ...] = ("quad", "smart_low_poly", "generate_parts", "geometry_quality")


def is_p1_model(model: str) -> bool:
    return model.upper().startswith("P1-")


def generation_option_conflicts(model: str, *, texture: bool, pbr: bool, quad: bool,
                                generate_parts: bool) -> dict[str, str]:
    """Generation options the other choices rule out, each with a short reason: the rules
    :meth:`.request_models._GenerationRequest.check` enforces, for a UI that greys options out before sending."""
    reasons = {}
    if is_p1_model(model):
        reasons.update(dict.fromkeys(P1_REFUSED_OPTIONS, "P1 models do not take this option"))
    if generate_parts:
        reasons.setdefault("texture", "Generate Parts needs Texture off")
        reasons.setdefault("pbr", "Generate Parts needs PBR off")
        reasons.setdefault("quad", "Generate Parts cannot be combined with Quad")
    elif quad:
        reasons.setdefault("generate_parts", "Parts cannot be combined with Quad")
    elif texture or pbr:
        reasons.setdefault("generate_parts", "Parts need Texture and PBR off")
    return reasons


def texture_option_conflicts(model: str | None) -> dict[str, str]:
    """Texturing options the texture model version rules out, each with a short reason: the
    rules :meth:`.request_models.TextureModelRequest.check` enforces, for a UI that greys them
    out. "texture_quality" concerns its value "fast" only."""
    if (model or DEFAULT_TEXTURE_MODEL) == TEXTURE_V35_MODEL:
        return {}
    needs = f"needs texture model {TEXTURE_V35_MODEL}"
    return {"texture_quality": f"texture_quality 'fast' {needs}", "delight": f"delight {needs}"}

# --------------------------------------------------------------------------- limits

PROMPT_MAX = 1024
NEGATIVE_PROMPT_MAX = 255
FACE_LIMIT_RANGE = (500, 500_000)
FACE_LIMIT_RANGE_P1 = (48, 20_000)
DECIMATE_FACE_RANGE = (500, 20_000)
DECIMATE_QUAD_FACE_RANGE = (500, 10_000)
IMAGE_MIN_SIDE = 20
IMAGE_MAX_SIDE = 6000
IMAGE_FORMATS = ("png", "jpeg", "webp")
MODEL_FILE_FORMATS = ("glb", "fbx", "obj", "stl")
#: Uploads are capped at 150 MB by the API.
MAX_UPLOAD_BYTES = 150 * 1024 * 1024
