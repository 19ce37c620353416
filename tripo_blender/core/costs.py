"""Credit estimates for task requests.

Tripo does not publish a price list for apiv3; the only table at hand is a reseller's
(3D AI Studio's published price list for Tripo v3.0/v3.1, as of 2026-11). Every figure here is
therefore an estimate,
shown as such ("≈ 40 credits (estimate)"); what a finished task reports in
``credits_consumed`` is the truth. Task types without any published price get a guess that
is marked ``is_guess=True`` and described as "rough guess".

No ``bpy`` here (see ``core/__init__``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .protocol import request_models, vocabulary

__all__ = ["CostEstimate", "estimate_credits", "PUBLISHED_SOURCE", "GUESSED_SOURCE",
           "GUESSED_PRICES"]

PUBLISHED_SOURCE = "3D AI Studio's published price list for Tripo v3.0/v3.1 (as of 2026-11)"
GUESSED_SOURCE = "no published price; the add-on's guess"

# 3D AI Studio's published prices.
_GEN_BASE = {vocabulary.TEXT_TO_MODEL: 20.0, vocabulary.IMAGE_TO_MODEL: 40.0,
             vocabulary.MULTIVIEW_TO_MODEL: 40.0}
_GEN_BASE_P1 = {vocabulary.TEXT_TO_MODEL: 60.0, vocabulary.IMAGE_TO_MODEL: 80.0,
                vocabulary.MULTIVIEW_TO_MODEL: 80.0}
_TEXTURE = {"standard": 20.0, "detailed": 40.0}
_GEOMETRY_DETAILED = 40.0
_SMART_LOW_POLY = 20.0
_GENERATE_PARTS = 40.0
_QUAD = 10.0
# "fast" (texture model v3.5) has no published price: guessed at the standard price.
_TEXTURE_MODEL = {"standard": 20.0, "detailed": 40.0, "fast": 20.0}
_STYLE_IMAGE = 10.0
_CONVERT_BASIC = 10.0
_CONVERT_ADVANCED = 20.0
_CONVERT_QUAD = 10.0
_SEGMENTATION = 80.0

#: Guesses for task types without a published price (credits; per clip for retarget).
GUESSED_PRICES: dict[str, float] = {
    vocabulary.TEXT_TO_IMAGE: 10.0,
    vocabulary.GENERATE_IMAGE: 10.0,
    vocabulary.GENERATE_MULTIVIEW_IMAGE: 10.0,
    vocabulary.EDIT_MULTIVIEW_IMAGE: 10.0,
    vocabulary.IMAGE_TO_SPLAT: 10.0,
    vocabulary.IMAGE_TO_DEPTH: 10.0,
    vocabulary.MESH_COMPLETION: 20.0,
    vocabulary.HIGHPOLY_TO_LOWPOLY: 10.0,
    vocabulary.MESH_UV: 10.0,
    vocabulary.ANIMATE_PRERIGCHECK: 0.0,
    vocabulary.ANIMATE_RIG: 25.0,
    vocabulary.ANIMATE_RETARGET: 10.0,  # per animation clip ("billed per clip")
    vocabulary.IMPORT_MODEL: 0.0,
}


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True)
class CostEstimate:
    """Estimated credits of one request, with the items that make it up."""

    credits: float
    breakdown: list[tuple[str, float]] = field(default_factory=list)
    is_estimate: bool = True
    source: str = PUBLISHED_SOURCE
    #: True when no published price exists for (part of) it.
    is_guess: bool = False

    def describe(self) -> str:
        """E.g. "≈ 40 credits (estimate)" or "≈ 25 credits (rough guess)"."""
        if not self.is_estimate:
            return f"{_fmt(self.credits)} credits"
        kind = "rough guess" if self.is_guess else "estimate"
        return f"≈ {_fmt(self.credits)} credits ({kind})"


def _make(items: list[tuple[str, float]], *, guess: bool = False) -> CostEstimate:
    return CostEstimate(
        credits=float(sum(v for _, v in items)),
        breakdown=items,
        is_estimate=True,
        source=GUESSED_SOURCE if guess else PUBLISHED_SOURCE,
        is_guess=guess,
    )


def _generation(req: "request_models._GenerationRequest") -> CostEstimate:
    p1 = req.is_p1
    base = (_GEN_BASE_P1 if p1 else _GEN_BASE)[req.task_type]
    items: list[tuple[str, float]] = [("base (P1)" if p1 else "base", base)]
    # texture defaults to on; pbr implies a texture.
    textured = req.texture is not False or bool(req.pbr)
    if req.generate_parts:
        textured = False
    if textured:
        quality = req.texture_quality or "standard"
        items.append((f"texture ({quality})", _TEXTURE[quality]))
    if not p1:
        if req.geometry_quality == "detailed":
            items.append(("detailed geometry", _GEOMETRY_DETAILED))
        if req.smart_low_poly:
            items.append(("smart low poly", _SMART_LOW_POLY))
        if req.generate_parts:
            items.append(("parts", _GENERATE_PARTS))
        if req.quad:
            items.append(("quad", _QUAD))
    return _make(items)


def estimate_credits(request: "request_models.TaskRequest") -> CostEstimate:
    """Estimated credits of ``request`` (a :class:`~.request_models.TaskRequest`)."""
    task_type = request.task_type
    if isinstance(request, request_models._GenerationRequest):
        return _generation(request)
    if isinstance(request, request_models.TextureModelRequest):
        quality = request.texture_quality or "standard"
        items = [(f"texture ({quality})", _TEXTURE_MODEL[quality])]
        if request.texture_prompt is not None and request.texture_prompt.style_image:
            items.append(("style image", _STYLE_IMAGE))
        return _make(items)
    if isinstance(request, request_models.ConvertModelRequest):
        advanced = request.non_default_options()
        items = [("convert (advanced)" if advanced else "convert (basic)",
                  _CONVERT_ADVANCED if advanced else _CONVERT_BASIC)]
        if request.quad:
            items.append(("quad", _CONVERT_QUAD))
        return _make(items)
    if isinstance(request, request_models.MeshSegmentationRequest):
        return _make([("segmentation", _SEGMENTATION)])
    if isinstance(request, request_models.AnimateRetargetRequest):
        clips = max(1, len(request.clips))
        per = GUESSED_PRICES[vocabulary.ANIMATE_RETARGET]
        return _make([(f"animation x{clips}", per * clips)], guess=True)
    price: Optional[float] = GUESSED_PRICES.get(task_type)
    if price is None:
        price = 0.0
    return _make([(vocabulary.task_label(task_type).lower(), price)], guess=True)
