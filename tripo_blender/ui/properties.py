"""Per-scene settings the panel edits (`scene.tripo`). Nothing secret is stored here."""

from __future__ import annotations

import bpy
from bpy.props import (BoolProperty, EnumProperty, IntProperty, PointerProperty, StringProperty)

MODEL_VERSIONS = [
    ("v3.1-20260211", "v3.1", "Tripo v3.1 (current)"),
    ("v3.0-20250812", "v3.0", "Tripo v3.0"),
    ("v2.5-20250123", "v2.5", "Tripo v2.5"),
    ("P1-20260311", "P1", "Tripo P1: fast low-poly; no quad, parts, smart low poly or geometry quality"),
]


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
    front_path: StringProperty(name="Front", subtype="FILE_PATH")
    left_path: StringProperty(name="Left", subtype="FILE_PATH")
    back_path: StringProperty(name="Back", subtype="FILE_PATH")
    right_path: StringProperty(name="Right", subtype="FILE_PATH")

    model_version: EnumProperty(name="Model", items=MODEL_VERSIONS, default="v3.1-20260211")
    texture: BoolProperty(name="Texture", default=True)
    pbr: BoolProperty(name="PBR", default=True)
    texture_quality: EnumProperty(name="Texture Quality", default="standard",
                                  items=[("standard", "Standard", ""), ("detailed", "Detailed", "")])
    geometry_quality: EnumProperty(name="Geometry Quality", default="standard",
                                   items=[("standard", "Standard", ""), ("detailed", "Detailed", "")])
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
    orientation: EnumProperty(name="Orientation", default="default",
                              items=[("default", "Default", ""), ("align_image", "Align to Image", "")])
    texture_alignment: EnumProperty(name="Texture Alignment", default="original_image",
                                    items=[("original_image", "Original Image", ""),
                                           ("geometry", "Geometry", "")])
    show_advanced: BoolProperty(name="Advanced", default=False)
    asset_project: StringProperty(
        name="Asset Project",
        description=("Catalog of the imported assets in the Asset Browser: Tripo/<project>/<type>. "
                     "Empty: Interactive (a batch run uses its project)"))

    # Selection actions (retexture, segment, low poly, rig, convert)
    texture_prompt: StringProperty(name="Texture Prompt", description="How the new texture should look")
    texture_image_path: StringProperty(name="Reference Image", subtype="FILE_PATH")
    style_image_path: StringProperty(name="Style Image", subtype="FILE_PATH")
    lowpoly_face_limit: IntProperty(name="Face Limit", default=5000, min=500, max=20000)
    lowpoly_quad: BoolProperty(name="Quad", default=False)
    lowpoly_replace: BoolProperty(name="Replace Original", default=False,
                                  description="Hide the original and put the low-poly result in its place")
    rig_type: EnumProperty(name="Rig Type", default="biped", items=[
        (v, v.title(), "") for v in ("biped", "quadruped", "hexapod", "octopod", "avian",
                                     "serpentine", "aquatic", "others")])
    rig_spec: EnumProperty(name="Skeleton", default="tripo", items=[
        (v, v.title() if v != "vrm" else "VRM", "") for v in ("tripo", "mixamo", "actorcore", "unity", "unreal", "vrm")])
    animations: StringProperty(name="Animations", default="preset:idle, preset:walk",
                               description="Comma-separated presets, up to 5 per task")
    export_format: EnumProperty(name="Format", default="STL", items=[
        (v, v, "") for v in ("STL", "OBJ", "FBX", "GLTF", "USDZ", "3MF")])
    export_dir: StringProperty(name="Folder", subtype="DIR_PATH", default="//tripo_export/")
    export_per_part: BoolProperty(name="One File per Selected Part", default=False)
    flatten_bottom: BoolProperty(name="Flatten Bottom", default=False)
    pivot_to_center_bottom: BoolProperty(name="Pivot to Center Bottom", default=False)
    pack_uv: BoolProperty(name="Pack UV", default=False)
    scale_factor: bpy.props.FloatProperty(name="Scale", default=1.0, min=0.001)
    # More selection-action options (segment, export); 0 / "DEFAULT" = Tripo's default, not sent.
    segment_model: EnumProperty(name="Segmentation Model", default="v1.0-20250506", items=[
        ("v1.0-20250506", "v1.0", "Default segmentation model"),
        ("v2.0-20260430", "v2.0", "Newer model; takes a granularity")])
    segment_granularity: EnumProperty(name="Granularity", default="balanced", items=[
        (v, v.title(), "") for v in ("simple", "balanced", "detailed")])
    export_face_limit: IntProperty(name="Face Limit", default=0, min=0, max=500000,
                                   description="Maximum faces of the export (0: keep)")
    export_texture_size: IntProperty(name="Texture Size", default=0, min=0, max=8192,
                                     description="Texture size in pixels (0: Tripo's default, 4096)")
    export_texture_format: EnumProperty(name="Texture Format", default="DEFAULT", items=[
        ("DEFAULT", "Default", "Tripo's default (JPEG)")] + [
        (v, v.title(), "") for v in ("JPEG", "PNG", "WEBP", "TARGA", "TIFF", "BMP")])
    fbx_preset: EnumProperty(name="FBX Preset", default="blender", items=[
        ("blender", "Blender", ""), ("mixamo", "Mixamo", ""), ("3dsmax", "3ds Max", "")])
    export_orientation: EnumProperty(name="Orientation", default="+x", items=[
        (v, v, "") for v in ("+x", "-x", "+y", "-y")])
    with_animation: BoolProperty(name="With Animation", default=True)

    def generation_options(self) -> dict:
        """The request options as the protocol core expects them (None = not set)."""
        p1 = self.model_version.startswith("P1")
        options = {
            "model": self.model_version,
            "negative_prompt": self.negative_prompt or None,
            "texture": self.texture,
            "pbr": self.pbr,
            "texture_quality": self.texture_quality if self.texture else None,
            "geometry_quality": None if p1 or self.geometry_quality == "standard" else self.geometry_quality,
            "face_limit": self.face_limit or None,
            "quad": self.quad or None,
            "smart_low_poly": self.smart_low_poly or None,
            "generate_parts": self.generate_parts or None,
            "auto_size": self.auto_size or None,
            "model_seed": self.model_seed or None,
            "texture_seed": self.texture_seed or None,
        }
        if self.mode in ("IMAGE", "MULTIVIEW", "TEXT_IMAGE"):
            options["orientation"] = self.orientation if self.orientation != "default" else None
            options["texture_alignment"] = (self.texture_alignment
                                            if self.texture_alignment != "original_image" else None)
        else:
            options["image_seed"] = self.image_seed or None
        return options

    def option_conflicts(self) -> dict[str, str]:
        """Options that do not fit the current choices, with the reason (for greying out)."""
        reasons = {}
        p1 = self.model_version.startswith("P1")
        if p1:
            for prop in ("quad", "smart_low_poly", "generate_parts", "geometry_quality"):
                reasons[prop] = "P1 models do not take this option"
        if self.generate_parts:
            reasons.setdefault("texture", "Generate Parts needs Texture off")
            reasons.setdefault("pbr", "Generate Parts needs PBR off")
            reasons.setdefault("quad", "Generate Parts cannot be combined with Quad")
        elif self.quad:
            reasons.setdefault("generate_parts", "Parts cannot be combined with Quad")
        elif self.texture or self.pbr:
            reasons.setdefault("generate_parts", "Parts need Texture and PBR off")
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
