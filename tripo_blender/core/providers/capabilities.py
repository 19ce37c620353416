"""What each provider offers, for the README's support table and the UI.

Plain data and functions: no network, no API key, no ``bpy``. The UI greys out an action with
:func:`feature_unavailable_reason` (the reason goes in the tooltip or a label) before anything
is sent; the providers refuse the same requests with the same reasons
(``TripoV3Provider.supports``, ``AIStudioProvider.supports`` / ``unsupported_options``).

    from tripo_blender.core import capabilities
    capabilities.feature_unavailable_reason("3daistudio", "animate_rig")      # -> "3D AI Studio ..."
    capabilities.feature_unavailable_reason("3daistudio", "texture_model",
                                            {"part_names": ["wheel"]})        # -> per-part reason
    capabilities.support_table_markdown()                                    # the README table
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from . import aistudio
from ..protocol import request_models, vocabulary

__all__ = [
    "PROVIDERS",
    "PROVIDER_LABELS",
    "Feature",
    "FEATURES",
    "provider_key",
    "feature",
    "feature_unavailable_reason",
    "support_table",
    "support_table_markdown",
]

TRIPO = "tripo"
AISTUDIO = aistudio.PROVIDER_NAME  # "3daistudio"
PROVIDERS: tuple[str, ...] = (TRIPO, AISTUDIO)
PROVIDER_LABELS: dict[str, str] = {TRIPO: "Tripo (apiv3)", AISTUDIO: "3D AI Studio"}

_ALIASES = {"tripo": TRIPO, "tripo_v3": TRIPO, "tripo-v3": TRIPO, "apiv3": TRIPO,
            "3daistudio": AISTUDIO, "aistudio": AISTUDIO, "3d_ai_studio": AISTUDIO,
            "3d ai studio": AISTUDIO}


def provider_key(name: Optional[str]) -> str:
    """The canonical provider name (``"tripo"`` or ``"3daistudio"``) of a settings or
    ``Provider.name`` value; unknown names raise ``ValueError``."""
    key = _ALIASES.get(str(name or TRIPO).strip().lower())
    if key is None:
        raise ValueError(f"unknown provider {name!r} (one of {', '.join(PROVIDERS)})")
    return key


@dataclass(frozen=True)
class Feature:
    """One row of the support table: ``support[provider]`` is None when offered, else why not."""

    key: str
    label: str
    task_types: tuple[str, ...] = ()
    support: Mapping[str, Optional[str]] = field(default_factory=dict)
    note: Mapping[str, str] = field(default_factory=dict)  # a remark on a supported cell

    def reason(self, provider: str) -> Optional[str]:
        return self.support.get(provider_key(provider))

    def available(self, provider: str) -> bool:
        return self.reason(provider) is None


def _studio(task_type: str) -> Optional[str]:
    return aistudio.supports(task_type)


FEATURES: tuple[Feature, ...] = (
    Feature("text_to_model", "Text to 3D", (vocabulary.TEXT_TO_MODEL,),
            {TRIPO: None, AISTUDIO: None}, {AISTUDIO: "v3.0 and v3.1 models"}),
    Feature("image_to_model", "Image to 3D", (vocabulary.IMAGE_TO_MODEL,),
            {TRIPO: None, AISTUDIO: None}, {AISTUDIO: "local images sent inline, up to 10 MB"}),
    Feature("multiview_to_model", "Multiview to 3D", (vocabulary.MULTIVIEW_TO_MODEL,),
            {TRIPO: None, AISTUDIO: None}, {AISTUDIO: "2–4 views, no view slots"}),
    Feature("image_generation", "Image generation (text/image to image, multiview images)",
            (vocabulary.TEXT_TO_IMAGE, vocabulary.GENERATE_IMAGE,
             vocabulary.GENERATE_MULTIVIEW_IMAGE, vocabulary.EDIT_MULTIVIEW_IMAGE),
            {TRIPO: None, AISTUDIO: _studio(vocabulary.TEXT_TO_IMAGE)}),
    Feature("image_analysis", "Image to splat, image to depth map",
            (vocabulary.IMAGE_TO_SPLAT, vocabulary.IMAGE_TO_DEPTH),
            {TRIPO: None, AISTUDIO: _studio(vocabulary.IMAGE_TO_SPLAT)},
            {TRIPO: "panel, scripting API, batch files with output = \"splat\" or \"depth\", "
                   "import by task id; a splat lands as a point cloud, a depth map as an image and "
                   "a displaced plane"}),
    Feature("texture_model", "Texturing (whole model)", (vocabulary.TEXTURE_MODEL,),
            {TRIPO: None, AISTUDIO: None}, {AISTUDIO: "from a model URL or file"}),
    Feature("texture_parts", "Per-part texturing", (vocabulary.TEXTURE_MODEL,),
            {TRIPO: None, AISTUDIO: aistudio.PART_NAMES_REASON + "."}),
    Feature("mesh_segmentation", "Segmentation", (vocabulary.MESH_SEGMENTATION,),
            {TRIPO: None, AISTUDIO: None}, {AISTUDIO: "no options"}),
    Feature("mesh_completion", "Part completion", (vocabulary.MESH_COMPLETION,),
            {TRIPO: None, AISTUDIO: _studio(vocabulary.MESH_COMPLETION)}),
    Feature("highpoly_to_lowpoly", "Smart low poly", (vocabulary.HIGHPOLY_TO_LOWPOLY,),
            {TRIPO: None, AISTUDIO: _studio(vocabulary.HIGHPOLY_TO_LOWPOLY)}),
    Feature("mesh_uv", "UV unwrap", (vocabulary.MESH_UV,),
            {TRIPO: None, AISTUDIO: _studio(vocabulary.MESH_UV)}),
    Feature("animate_prerigcheck", "Rig check", (vocabulary.ANIMATE_PRERIGCHECK,),
            {TRIPO: None, AISTUDIO: _studio(vocabulary.ANIMATE_PRERIGCHECK)}),
    Feature("animate_rig", "Rig", (vocabulary.ANIMATE_RIG,),
            {TRIPO: None, AISTUDIO: _studio(vocabulary.ANIMATE_RIG)}),
    Feature("animate_retarget", "Animations", (vocabulary.ANIMATE_RETARGET,),
            {TRIPO: None, AISTUDIO: _studio(vocabulary.ANIMATE_RETARGET)}),
    Feature("convert_model", "Convert (GLTF, USDZ, FBX, OBJ, STL, 3MF)", (vocabulary.CONVERT_MODEL,),
            {TRIPO: None, AISTUDIO: None},
            {AISTUDIO: "whole model only; textures up to 4096 px"}),
    Feature("import_model", "Import a model file", (vocabulary.IMPORT_MODEL,),
            {TRIPO: None, AISTUDIO: _studio(vocabulary.IMPORT_MODEL)}),
    Feature("balance", "Credit balance", (),
            {TRIPO: None, AISTUDIO: None}, {AISTUDIO: "wallet; no frozen credits"}),
    Feature("usage_reconciliation", "Usage-based reconciliation of lost creates", (),
            {TRIPO: None,
             AISTUDIO: "3D AI Studio has no task listing: after a lost create request the user "
                       "decides whether to resubmit (that may bill twice)."}),
    Feature("batch_polling", "Batch status polling", (),
            {TRIPO: None,
             AISTUDIO: "3D AI Studio has no batch status route: one request per task, within "
                       "its rate limit (about 3 requests a minute by default), so finished "
                       "tasks are noticed later."}),
)

_BY_KEY = {f.key: f for f in FEATURES}


def feature(key: str) -> Feature:
    return _BY_KEY[key]


def _tripo_reason(task_type: str) -> Optional[str]:
    task_type = vocabulary.normalize_task_type(task_type) or ""
    if task_type in vocabulary.RETIRED_TASK_TYPES:
        return vocabulary.RETIRED_TASK_TYPES[task_type]
    if task_type not in request_models.REQUEST_CLASSES:
        return f"Tripo API v3 has no task type '{task_type}'."
    return None


def feature_unavailable_reason(provider_name: str, task_type: str,
                               params: Optional[Mapping[str, Any]] = None) -> Optional[str]:
    """Why ``provider_name`` cannot run ``task_type`` with ``params`` (the request options as a
    plain dict, None = unset; may be partial), or None when it can. No network round trip: the
    UI calls this to grey out actions and options. Whether the values themselves are valid is
    the request validation's business (``request_models.build_request``), not this function's."""
    provider = provider_key(provider_name)
    if provider == AISTUDIO:
        return aistudio.unsupported_params(task_type, params)
    return _tripo_reason(task_type)


def support_table() -> list[tuple[str, dict[str, str]]]:
    """Rows ``(feature label, {provider: "yes" | "yes (note)" | "no: reason"})``."""
    rows = []
    for item in FEATURES:
        cells = {}
        for provider in PROVIDERS:
            reason = item.support.get(provider)
            if reason is None:
                note = item.note.get(provider)
                cells[provider] = f"yes ({note})" if note else "yes"
            else:
                cells[provider] = f"no: {reason}"
        rows.append((item.label, cells))
    return rows


def support_table_markdown() -> str:
    """The support table as Markdown, one column per provider (for the README)."""
    header = "| Feature | " + " | ".join(PROVIDER_LABELS[p] for p in PROVIDERS) + " |"
    lines = [header, "|---|" + "---|" * len(PROVIDERS)]
    for label, cells in support_table():
        lines.append(f"| {label} | " + " | ".join(cells[p].replace("|", "/")
                                                 for p in PROVIDERS) + " |")
    return "\n".join(lines)


def estimate(provider_name: str, request: request_models.TaskRequest):
    """The provider's own published price for ``request`` (an estimate, never a bill)."""
    if provider_key(provider_name) == AISTUDIO:
        return aistudio.estimate_credits(request)
    from ..costs import estimate_credits

    return estimate_credits(request)
