"""Per-scene settings the panel edits (`scene.tripo`). Nothing secret is stored here."""

from __future__ import annotations

import bpy
from bpy.props import (BoolProperty, EnumProperty, IntProperty, PointerProperty, StringProperty)

from ..core.protocol import request_models, vocabulary

# Every value and default below comes from core.protocol (vocabulary, request_models); only
# labels and descriptions are the UI's.
_GENERATION_DEFAULTS = request_models.ImageToModelRequest.SERVER_DEFAULTS
_RIG_DEFAULTS = request_models.AnimateRigRequest.SERVER_DEFAULTS
_DEPTH_DEFAULTS = request_models.ImageToDepthRequest.SERVER_DEFAULTS
_TEXTURE_DEFAULTS = request_models.TextureModelRequest.SERVER_DEFAULTS
_TEXTURE_FORMAT_DEFAULT = "DEFAULT"  # not sent: Tripo's own default (JPEG)


def _enum_items(values, labels: dict | None = None) -> list:
    """EnumProperty items for values of core, labelled "Title Case" unless `labels` says otherwise."""
    labels = labels or {}
    return [(v, labels.get(v, v.replace("_", " ").title()), "") for v in values]


def _verbatim_items(values) -> list:
    """EnumProperty items labelled with the value itself (formats, axes)."""
    return [(v, v, "") for v in values]


def _model_items() -> list:
    # Preview models are for scripts that name them; the panel offers the released ones.
    items = []
    for version in vocabulary.GENERATION_MODELS:
        if version in vocabulary.PREVIEW_GENERATION_MODELS:
            continue
        label = version.split("-")[0]
        description = f"Tripo {label}"
        if version == vocabulary.DEFAULT_GENERATION_MODEL:
            description += " (current)"
        if vocabulary.is_p1_model(version):
            description += ": fast low-poly; no quad, parts, smart low poly or geometry quality"
        items.append((version, label, description))
    return items


def _version_items(versions, descriptions: dict) -> list:
    """EnumProperty items for model versions, labelled by their short form ("v3.5")."""
    return [(v, v.split("-")[0], descriptions.get(v, "")) for v in versions]


def _common_texture_formats() -> list:
    return [v for v in _COMMON_TEXTURE_FORMATS if v in vocabulary.TEXTURE_FORMATS]


MODEL_VERSIONS = _model_items()
# The panel offers the texture formats most tools read, of those core accepts.
_COMMON_TEXTURE_FORMATS = ("JPEG", "PNG", "WEBP", "TARGA", "TIFF", "BMP")
# Export formats: every one of core's, the mesh-only ones (3D printing) first.
_FIRST_EXPORT_FORMATS = ("STL", "OBJ", "FBX")


def _first(values, first) -> list:
    return [v for v in first if v in values] + [v for v in values if v not in first]


class TRIPO_PG_settings(bpy.types.PropertyGroup):
    mode: EnumProperty(
        name="Input",
        items=[
            ("TEXT", "Text", "Generate from a text prompt", "FONT_DATA", 0),
            ("IMAGE", "Image", "Generate from one reference image", "IMAGE_DATA", 1),
            ("MULTIVIEW", "Multiview", "Generate from front/left/back/right views", "VIEW_CAMERA", 2),
            ("TEXT_IMAGE", "Text > Image", "Generate an image from the prompt, then a model from it",
             "SEQUENCE", 3),
        ],
        default="TEXT",
    )
    prompt: StringProperty(name="Prompt", description="What to generate (up to 1024 characters)")
    negative_prompt: StringProperty(name="Negative", description="What to avoid (up to 255 characters)")
    name: StringProperty(name="Name", description="Name of the imported asset (default: from the prompt)")
    image_path: StringProperty(name="Image", subtype="FILE_PATH",
                               description="Reference image file (PNG, JPEG or WebP, 20-6000 px)")
    image: PointerProperty(name="Blender Image", type=bpy.types.Image,
                           description="Or an image already loaded in Blender")
    image_output: EnumProperty(
        name="Output",
        description="What to make from the image",
        items=[
            ("MODEL", "Model", "A textured 3D model (image to model)", "MESH_MONKEY", 0),
            ("SPLAT", "Splat", "A Gaussian splat (a PLY file), shown as a point cloud", "POINTCLOUD_DATA", 1),
            ("DEPTH", "Depth Map", "A depth map image, and a plane displaced by it", "MOD_DISPLACE", 2),
        ],
        default="MODEL",
    )
    depth_kind: EnumProperty(name="Depth Kind", default=_DEPTH_DEFAULTS["kind"],
                             items=_enum_items(vocabulary.DEPTH_KINDS, {
                                 "gray": "Gray", "color": "Color (not for displacement)"}))
    depth_process_res: IntProperty(name="Resolution", default=_DEPTH_DEFAULTS["process_res"],
                                   min=vocabulary.DEPTH_PROCESS_RES_RANGE[0],
                                   max=vocabulary.DEPTH_PROCESS_RES_RANGE[1],
                                   description="Pixels the depth map is computed at")
    front_path: StringProperty(name="Front", subtype="FILE_PATH")
    left_path: StringProperty(name="Left", subtype="FILE_PATH")
    back_path: StringProperty(name="Back", subtype="FILE_PATH")
    right_path: StringProperty(name="Right", subtype="FILE_PATH")

    model_version: EnumProperty(name="Model", items=MODEL_VERSIONS,
                                default=vocabulary.DEFAULT_GENERATION_MODEL)
    texture: BoolProperty(name="Texture", default=_GENERATION_DEFAULTS["texture"])
    pbr: BoolProperty(name="PBR", default=_GENERATION_DEFAULTS["pbr"])
    texture_quality: EnumProperty(name="Texture Quality", default=_GENERATION_DEFAULTS["texture_quality"],
                                  items=_enum_items(vocabulary.QUALITIES))
    geometry_quality: EnumProperty(name="Geometry Quality", default=_GENERATION_DEFAULTS["geometry_quality"],
                                   items=_enum_items(vocabulary.QUALITIES))
    face_limit: IntProperty(name="Face Limit", default=0, min=0, max=500000,
                            description="Maximum faces (0: let Tripo decide)")
    quad: BoolProperty(name="Quad Mesh", default=False)
    smart_low_poly: BoolProperty(name="Smart Low Poly", default=False)
    generate_parts: BoolProperty(name="Generate Parts", default=False,
                                 description="One object per part (needs Texture and PBR off, no Quad)")
    auto_size: BoolProperty(name="Auto Size", default=False,
                            description="Scale the model to its real-world size")
    # Seeds: 0 means random. 32-bit limits keep them safe as Blender properties.
    model_seed: IntProperty(name="Model Seed", default=0, min=0)
    texture_seed: IntProperty(name="Texture Seed", default=0, min=0)
    image_seed: IntProperty(name="Image Seed", default=0, min=0)
    orientation: EnumProperty(name="Orientation", default=_GENERATION_DEFAULTS["orientation"],
                              items=_enum_items(vocabulary.ORIENTATIONS,
                                                {"align_image": "Align to Image"}))
    texture_alignment: EnumProperty(name="Texture Alignment", default=_GENERATION_DEFAULTS["texture_alignment"],
                                    items=_enum_items(vocabulary.TEXTURE_ALIGNMENTS))
    show_advanced: BoolProperty(name="Advanced", default=False)
    asset_project: StringProperty(
        name="Asset Project",
        description=("Catalog of the imported assets in the Asset Browser: Tripo/<project>/<type>. "
                     "Empty: Interactive (a batch run uses its project)"))

    # Selection actions (retexture, segment, low poly, rig, convert)
    texture_prompt: StringProperty(name="Texture Prompt", description="How the new texture should look")
    texture_image_path: StringProperty(name="Reference Image", subtype="FILE_PATH")
    style_image_path: StringProperty(name="Style Image", subtype="FILE_PATH")
    retexture_model: EnumProperty(name="Model", default=_TEXTURE_DEFAULTS["model"],
                                  items=_version_items(vocabulary.TEXTURE_MODELS, {
                                      vocabulary.DEFAULT_TEXTURE_MODEL: "Default texture model",
                                      vocabulary.TEXTURE_V35_MODEL: "Newer model; takes Fast quality and Delight"}))
    retexture_quality: EnumProperty(name="Quality", default=_TEXTURE_DEFAULTS["texture_quality"],
                                    items=_enum_items(vocabulary.TEXTURE_QUALITIES))
    retexture_delight: BoolProperty(name="Delight", default=False,
                                    description="Remove the lighting baked into the new texture")
    lowpoly_face_limit: IntProperty(name="Face Limit", default=5000, min=500, max=20000)
    lowpoly_quad: BoolProperty(name="Quad", default=False)
    lowpoly_replace: BoolProperty(name="Replace Original", default=False,
                                  description="Hide the original and put the low-poly result in its place")
    rig_type: EnumProperty(name="Rig Type", default=_RIG_DEFAULTS["rig_type"],
                           items=_enum_items(vocabulary.RIG_TYPES))
    rig_spec: EnumProperty(name="Skeleton", default=_RIG_DEFAULTS["spec"],
                           items=_enum_items(vocabulary.RIG_SPECS, {"vrm": "VRM"}))
    animations: StringProperty(name="Animations", default="preset:idle, preset:walk",
                               description="Comma-separated presets, up to 5 per task")
    export_format: EnumProperty(name="Format", default="STL",
                                items=_verbatim_items(_first(vocabulary.CONVERT_FORMATS,
                                                             _FIRST_EXPORT_FORMATS)))
    export_dir: StringProperty(name="Folder", subtype="DIR_PATH", default="//tripo_export/")
    export_per_part: BoolProperty(name="One File per Selected Part", default=False)
    flatten_bottom: BoolProperty(name="Flatten Bottom", default=False)
    pivot_to_center_bottom: BoolProperty(name="Pivot to Center Bottom", default=False)
    pack_uv: BoolProperty(name="Pack UV", default=False)
    scale_factor: bpy.props.FloatProperty(name="Scale", default=1.0, min=0.001)
    # More selection-action options (segment, export); 0 / "DEFAULT" = Tripo's default, not sent.
    segment_model: EnumProperty(
        name="Segmentation Model", default=vocabulary.DEFAULT_SEGMENT_MODEL,
        items=_version_items(vocabulary.SEGMENT_MODELS, {
            vocabulary.DEFAULT_SEGMENT_MODEL: "Default segmentation model",
            vocabulary.SEGMENT_V2_MODEL: "Newer model; takes a granularity"}))
    segment_granularity: EnumProperty(name="Granularity", default="balanced",
                                      items=_enum_items(vocabulary.SEGMENTATION_GRANULARITIES))
    export_face_limit: IntProperty(name="Face Limit", default=0, min=0, max=500000,
                                   description="Maximum faces of the export (0: keep)")
    export_texture_size: IntProperty(name="Texture Size", default=0, min=0, max=8192,
                                     description="Texture size in pixels (0: Tripo's default, 4096)")
    export_texture_format: EnumProperty(name="Texture Format", default=_TEXTURE_FORMAT_DEFAULT, items=[
        (_TEXTURE_FORMAT_DEFAULT, "Default", "Tripo's default (JPEG)")] + _enum_items(
        _common_texture_formats()))
    fbx_preset: EnumProperty(name="FBX Preset", default=vocabulary.FBX_PRESETS[0],
                             items=_enum_items(vocabulary.FBX_PRESETS, {"3dsmax": "3ds Max"}))
    export_orientation: EnumProperty(name="Orientation", default=vocabulary.EXPORT_ORIENTATIONS[0],
                                     items=_verbatim_items(vocabulary.EXPORT_ORIENTATIONS))
    with_animation: BoolProperty(name="With Animation", default=True)

    def generation_options(self) -> dict:
        """The request options as the protocol core expects them (None = not set)."""
        p1 = vocabulary.is_p1_model(self.model_version)
        options = {
            "model": self.model_version,
            "negative_prompt": self.negative_prompt or None,
            "texture": self.texture,
            "pbr": self.pbr,
            "texture_quality": self.texture_quality if self.texture else None,
            "geometry_quality": (None if p1 or self.geometry_quality == _GENERATION_DEFAULTS["geometry_quality"]
                                 else self.geometry_quality),
            "face_limit": self.face_limit or None,
            "quad": self.quad or None,
            "smart_low_poly": self.smart_low_poly or None,
            "generate_parts": self.generate_parts or None,
            "auto_size": self.auto_size or None,
            "model_seed": self.model_seed or None,
            "texture_seed": self.texture_seed or None,
        }
        if self.mode in ("IMAGE", "MULTIVIEW", "TEXT_IMAGE"):
            options["orientation"] = (self.orientation
                                      if self.orientation != _GENERATION_DEFAULTS["orientation"] else None)
            options["texture_alignment"] = (
                self.texture_alignment
                if self.texture_alignment != _GENERATION_DEFAULTS["texture_alignment"] else None)
        else:
            options["image_seed"] = self.image_seed or None
        return options

    def analysis_kind(self) -> str:
        """"splat" or "depth" when Image mode makes one of those ("" for a model)."""
        if self.mode != "IMAGE":
            return ""
        return {"SPLAT": "splat", "DEPTH": "depth"}.get(self.image_output, "")

    def analysis_options(self) -> dict:
        """The request options of an image-to-splat / image-to-depth job (None = not set)."""
        if self.analysis_kind() == "depth":
            return {"kind": self.depth_kind, "process_res": self.depth_process_res}
        return {"model_seed": self.model_seed or None}

    def retexture_conflicts(self) -> dict[str, str]:
        """Retexture options the chosen texture model rules out, with the reason."""
        reasons = vocabulary.texture_option_conflicts(self.retexture_model)
        if self.retexture_quality != "fast":
            reasons.pop("texture_quality", None)
        return reasons

    def option_conflicts(self) -> dict[str, str]:
        """Options that do not fit the current choices, with the reason (for greying out)."""
        reasons = vocabulary.generation_option_conflicts(
            self.model_version, texture=self.texture, pbr=self.pbr, quad=self.quad,
            generate_parts=self.generate_parts)
        if not self.texture:
            reasons.setdefault("texture_quality", "Texture is off")
        return reasons


CLASSES = (TRIPO_PG_settings,)


_register_classes, _unregister_classes = bpy.utils.register_classes_factory(CLASSES)


def register() -> None:
    _register_classes()
    bpy.types.Scene.tripo = PointerProperty(type=TRIPO_PG_settings)


def unregister() -> None:
    del bpy.types.Scene.tripo
    _unregister_classes()
