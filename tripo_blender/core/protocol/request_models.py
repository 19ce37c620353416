"""One request model per task type, the validation a person can read, and the factory.

``build_request(task_type, **params)`` is the one entry point callers need. It returns the
request model of that type, or raises our :class:`~.errors.ValidationError` (never pydantic's)
whose message names the option and says what is wrong. ``None`` values mean "not set".
Elsewhere: the task types and option values in ``vocabulary``, the inputs and their local files
in ``inputs``, the chain rules between task types in ``chains``.

Plain Python (pydantic v2 + stdlib), no ``bpy`` (see ``core/__init__``).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from .errors import RetiredTaskType, ValidationError
from .inputs import (
    InputKind,
    InputRef,
    check_input_value,
    check_local_files,
    classify_input,
)
from .vocabulary import (
    ANIMATE_PRERIGCHECK,
    ANIMATE_RETARGET,
    ANIMATE_RIG,
    ANIMATION_PRESETS,
    COMPLETION_MODES,
    CONVERT_FORMATS,
    CONVERT_MODEL,
    DECIMATE_FACE_RANGE,
    DECIMATE_MODELS,
    DECIMATE_MODEL_ALIASES,
    DECIMATE_QUAD_FACE_RANGE,
    DEFAULT_COMPLETION_MODEL,
    DEFAULT_DECIMATE_MODEL,
    DEFAULT_GENERATION_MODEL,
    DEFAULT_RIG_MODEL,
    DEFAULT_SEGMENT_MODEL,
    DEFAULT_TEXTURE_MODEL,
    DEPTH_KINDS,
    DEPTH_PROCESS_RES_RANGE,
    EDIT_MULTIVIEW_IMAGE,
    EXPORT_ORIENTATIONS,
    FACE_LIMIT_RANGE,
    FACE_LIMIT_RANGE_P1,
    FBX_PRESETS,
    GENERATE_IMAGE,
    GENERATE_MULTIVIEW_IMAGE,
    GENERATION_MODELS,
    HIGHPOLY_TO_LOWPOLY,
    IMAGE_TO_DEPTH,
    IMAGE_TO_MODEL,
    IMAGE_TO_SPLAT,
    IMPORT_MODEL,
    MAX_ANIMATIONS,
    MESH_COMPLETION,
    MESH_SEGMENTATION,
    MESH_UV,
    MULTIVIEW_SLOTS,
    MULTIVIEW_TO_MODEL,
    NEGATIVE_PROMPT_MAX,
    ORIENTATIONS,
    P1_REFUSED_OPTIONS,
    PROMPT_MAX,
    QUALITIES,
    RETIRED_TASK_TYPES,
    RIG_MODELS,
    RIG_OUT_FORMATS,
    RIG_SPECS,
    RIG_SPECS_NEEDING_NEW_MODEL,
    RIG_TYPES,
    SEGMENTATION_GRANULARITIES,
    SEGMENT_MODELS,
    SEGMENT_V2_MODEL,
    TEXTURE_ALIGNMENTS,
    TEXTURE_FORMATS,
    TEXTURE_MODEL,
    TEXTURE_MODELS,
    TEXTURE_QUALITIES,
    TEXT_TO_IMAGE,
    TEXT_TO_MODEL,
    is_p1_model,
    task_label,
    texture_option_conflicts,
)


_Quality = Literal[QUALITIES]
_Alignment = Literal[TEXTURE_ALIGNMENTS]
_Orientation = Literal[ORIENTATIONS]


def _check_prompt(value: Optional[str], field: str, limit: int, required: bool) -> None:
    if value is None or not value.strip():
        if required:
            raise ValidationError(f"{field} is required: describe what to create.", field=field)
        return
    if len(value) > limit:
        raise ValidationError(
            f"{field} is {len(value)} characters long; the limit is {limit}.", field=field
        )


def _check_range(value: Optional[int], field: str, low: int, high: int, why: str = "") -> None:
    if value is None:
        return
    if not (low <= value <= high):
        raise ValidationError(
            f"{field} must be between {low} and {high}{why} (got {value}).", field=field
        )


def _check_part_names(value: Optional[list[str]], field: str = "part_names") -> None:
    if value is None:
        return
    if not value:
        raise ValidationError(f"{field} is empty: name at least one part, or leave it unset.",
                              field=field)
    seen = set()
    for name in value:
        if not isinstance(name, str) or not name.strip():
            raise ValidationError(f"{field} contains an empty part name.", field=field)
        if name in seen:
            raise ValidationError(f"{field} names the part '{name}' twice.", field=field)
        seen.add(name)


class TaskRequest(BaseModel):
    """Base of the request models: one subclass per live task type.

    ``task_type`` is the v2 vocabulary name, ``route`` the apiv3 route. Field names are the
    apiv3 names; ``None`` means "not set" and is not sent. Unknown options are refused.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, protected_namespaces=(),
                              str_strip_whitespace=False)

    task_type: ClassVar[str] = ""
    route: ClassVar[str] = ""
    #: Input fields and what they must hold: ``(dotted field, "image" | "model")``.
    file_fields: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: Options a server assumes when they are not sent: the declared defaults of the official
    #: SDK tripo3d 1.0.0, which leaves values equal to them out of its requests. We send them
    #: (see :meth:`to_body`), so the result never depends on what the server assumes.
    SERVER_DEFAULTS: ClassVar[dict[str, Any]] = {}

    # ------------------------------------------------------------------ validation

    @model_validator(mode="after")
    def _cross_field_checks(self) -> "TaskRequest":
        self.check()
        return self

    def check(self) -> None:
        """Checks across fields; raise :class:`ValidationError`. Overridden by subclasses."""

    # ------------------------------------------------------------------ wire

    def to_body(self) -> dict[str, Any]:
        """The JSON body sent to ``route``: the options set, and every option of
        :attr:`SERVER_DEFAULTS` left unset, at that default."""
        body = self.model_dump(mode="json", exclude_none=True)
        for name, default in self.SERVER_DEFAULTS.items():
            body.setdefault(name, default)
        return body

    # ------------------------------------------------------------------ inputs

    def input_refs(self) -> list[InputRef]:
        """All input values set in this request (task ids, tokens, URLs, local paths)."""
        refs: list[InputRef] = []
        for dotted, kind in self.file_fields:
            parts = dotted.split(".")
            value: Any = self
            for part in parts:
                value = getattr(value, part, None) if value is not None else None
            if value is None:
                continue
            if isinstance(value, list):
                for index, item in enumerate(value):
                    if item is not None:
                        refs.append(InputRef(tuple(parts) + (index,), item, kind))
            else:
                refs.append(InputRef(tuple(parts), value, kind))
        return refs

    def local_files(self) -> list[InputRef]:
        """Inputs that are local file paths (to be uploaded at create time)."""
        return [ref for ref in self.input_refs() if ref.input_kind is InputKind.LOCAL_FILE]

    def with_inputs(self, replacements: dict[tuple, str]) -> "TaskRequest":
        """A copy with some inputs replaced (by :attr:`InputRef.path`), e.g. local paths by
        upload tokens. The copy is validated again."""
        data = self.model_dump(mode="python")
        for path, new in replacements.items():
            target: Any = data
            for part in path[:-1]:
                target = target[part]
            target[path[-1]] = new
        return type(self).model_validate(data)

    @property
    def source_task_id(self) -> Optional[str]:
        """The ``input`` when it is a task id (the source of a chained step), else None."""
        value = getattr(self, "input", None)
        if isinstance(value, str):
            try:
                if classify_input(value) is InputKind.TASK_ID:
                    return value.strip()
            except ValidationError:
                return None
        return None

    @property
    def label(self) -> str:
        return task_label(self.task_type)


# --------------------------------------------------------------------------- generation


class _GenerationRequest(TaskRequest):
    """Options shared by text/image/multiview to model."""

    model: str = DEFAULT_GENERATION_MODEL
    face_limit: Optional[int] = None
    texture: Optional[bool] = None
    pbr: Optional[bool] = None
    texture_quality: Optional[_Quality] = None
    geometry_quality: Optional[_Quality] = None
    model_seed: Optional[int] = Field(None, ge=0)
    texture_seed: Optional[int] = Field(None, ge=0)
    auto_size: Optional[bool] = None
    quad: Optional[bool] = None
    compress: Optional[Literal["geometry"]] = None
    generate_parts: Optional[bool] = None
    smart_low_poly: Optional[bool] = None
    export_uv: Optional[bool] = None

    P1_REFUSED: ClassVar[tuple[str, ...]] = P1_REFUSED_OPTIONS
    SERVER_DEFAULTS: ClassVar[dict[str, Any]] = {
        "texture": True, "pbr": True, "texture_quality": "standard",
        "geometry_quality": "standard", "auto_size": False, "quad": False,
        "generate_parts": False, "smart_low_poly": False, "export_uv": True,
    }

    @property
    def is_p1(self) -> bool:
        return is_p1_model(self.model)

    def check(self) -> None:
        if self.model not in GENERATION_MODELS:
            raise ValidationError(
                f"model '{self.model}' is not a known generation model version; use one of "
                f"{', '.join(GENERATION_MODELS)}.",
                field="model",
            )
        if self.is_p1:
            for name in ("quad", "smart_low_poly", "generate_parts"):
                if getattr(self, name):
                    raise ValidationError(
                        f"{name} is not available with P1 models ({self.model}); turn it off or "
                        "choose a v3 model.",
                        field=name,
                    )
            if self.geometry_quality == "detailed":
                raise ValidationError(
                    f"geometry_quality is not available with P1 models ({self.model}); leave it "
                    "unset or choose a v3 model.",
                    field="geometry_quality",
                )
            _check_range(self.face_limit, "face_limit", *FACE_LIMIT_RANGE_P1,
                         why=" for P1 models")
        else:
            _check_range(self.face_limit, "face_limit", *FACE_LIMIT_RANGE)
        if self.generate_parts:
            if self.texture is not False or self.pbr is not False:
                raise ValidationError(
                    "generate_parts makes untextured parts: set texture and pbr to false as well.",
                    field="generate_parts",
                )
            if self.quad:
                raise ValidationError(
                    "generate_parts cannot be combined with quad; turn one of them off.",
                    field="generate_parts",
                )

    def to_body(self) -> dict[str, Any]:
        body = super().to_body()
        if self.is_p1:
            # P1 takes none of these; only unset / falsy values got past check().
            for name in self.P1_REFUSED:
                body.pop(name, None)
        if self.generate_parts:
            # Parts are untextured: texture/pbr were checked to be false, never defaulted.
            body["texture"], body["pbr"] = False, False
        return body


class TextToModelRequest(_GenerationRequest):
    task_type: ClassVar[str] = TEXT_TO_MODEL
    route: ClassVar[str] = "/v3/generation/text-to-model"

    prompt: str
    negative_prompt: Optional[str] = None
    image_seed: Optional[int] = Field(None, ge=0)

    def check(self) -> None:
        _check_prompt(self.prompt, "prompt", PROMPT_MAX, required=True)
        _check_prompt(self.negative_prompt, "negative_prompt", NEGATIVE_PROMPT_MAX, required=False)
        super().check()


_IMAGE_GENERATION_DEFAULTS: dict[str, Any] = {
    "texture_alignment": "original_image", "orientation": "default",
}


class ImageToModelRequest(_GenerationRequest):
    task_type: ClassVar[str] = IMAGE_TO_MODEL
    route: ClassVar[str] = "/v3/generation/image-to-model"
    file_fields: ClassVar[tuple[tuple[str, str], ...]] = (("input", "image"),)
    SERVER_DEFAULTS: ClassVar[dict[str, Any]] = {
        **_GenerationRequest.SERVER_DEFAULTS, **_IMAGE_GENERATION_DEFAULTS,
        "enable_image_autofix": False,
    }

    input: str
    texture_alignment: Optional[_Alignment] = None
    orientation: Optional[_Orientation] = None
    enable_image_autofix: Optional[bool] = None

    @field_validator("input")
    @classmethod
    def _input(cls, value: str) -> str:
        return check_input_value(value, "input", what="the image")


def _validate_views_shape(value: Any) -> Any:
    if isinstance(value, dict):  # {"front": ..., "left": ...}
        unknown = set(value) - set(MULTIVIEW_SLOTS)
        if unknown:
            raise ValidationError(
                f"inputs: unknown view(s) {', '.join(sorted(map(str, unknown)))}; the views "
                "are front, left, back, right.",
                field="inputs",
            )
        value = [value.get(slot) for slot in MULTIVIEW_SLOTS]
    if isinstance(value, (list, tuple)):
        value = [None if (v is None or (isinstance(v, str) and not v.strip())) else v
                 for v in value]
        if len(value) != 4:
            raise ValidationError(
                f"inputs must have exactly 4 slots [front, left, back, right] (got "
                f"{len(value)}); use null for a missing view.",
                field="inputs",
            )
    return value


def _validate_views(value: Optional[list[Optional[str]]]) -> Optional[list[Optional[str]]]:
    if value is None:
        return None
    if value[0] is None:
        raise ValidationError("inputs: the front view is required.", field="inputs[0]")
    if sum(v is not None for v in value) < 2:
        raise ValidationError(
            "inputs: give at least two views (the front view and one more).", field="inputs"
        )
    return [
        check_input_value(v, f"inputs[{i}] ({MULTIVIEW_SLOTS[i]} view)", what="an image")
        for i, v in enumerate(value)
    ]


def _check_views_or_task(inputs: Optional[list], input_: Optional[str], what: str) -> None:
    if inputs is not None and input_ is not None:
        raise ValidationError(f"give either inputs (the views) or input ({what}), not both.",
                              field="inputs")
    if inputs is None and input_ is None:
        raise ValidationError(
            f"inputs is required: the views [front, left, back, right], or input ({what}).",
            field="inputs",
        )


class MultiviewToModelRequest(_GenerationRequest):
    """``inputs`` = ``[front, left, back, right]`` (``None`` for a missing view; a dict by view
    name is accepted too), or ``input`` = the id of a multiview image task."""

    task_type: ClassVar[str] = MULTIVIEW_TO_MODEL
    route: ClassVar[str] = "/v3/generation/multiview-to-model"
    file_fields: ClassVar[tuple[tuple[str, str], ...]] = (("inputs", "image"),)
    # The official SDK tripo3d 1.0.0 declares no enable_image_autofix for multiview.
    SERVER_DEFAULTS: ClassVar[dict[str, Any]] = {
        **_GenerationRequest.SERVER_DEFAULTS, **_IMAGE_GENERATION_DEFAULTS,
    }

    inputs: Optional[list[Optional[str]]] = None
    input: Optional[str] = None
    texture_alignment: Optional[_Alignment] = None
    orientation: Optional[_Orientation] = None
    enable_image_autofix: Optional[bool] = None

    @field_validator("input")
    @classmethod
    def _input(cls, value: Optional[str]) -> Optional[str]:
        return check_input_value(value, "input", allowed=(InputKind.TASK_ID,),
                                  what="a multiview image task")

    def check(self) -> None:
        _check_views_or_task(self.inputs, self.input, "a multiview image task")
        super().check()

    @model_validator(mode="before")
    @classmethod
    def _task_reference(cls, data: Any) -> Any:
        # The wire form of "the views of a multiview image task" (below) read back, e.g. from
        # a journal that stored the body: [{"task_id": id}] is that task's id.
        if isinstance(data, dict):
            inputs = data.get("inputs")
            if (isinstance(inputs, list) and len(inputs) == 1 and isinstance(inputs[0], dict)
                    and set(inputs[0]) == {"task_id"} and data.get("input") is None):
                data = {**data, "input": inputs[0]["task_id"]}
                del data["inputs"]
        return data

    def to_body(self) -> dict[str, Any]:
        body = super().to_body()
        if "input" in body:
            # The official SDK tripo3d 1.0.0 names a multiview image task as
            # inputs: [{"task_id": ...}]; apiv3 has no ``input`` on this route.
            body["inputs"] = [{"task_id": body.pop("input")}]
        return body

    @field_validator("inputs", mode="before")
    @classmethod
    def _inputs_shape(cls, value: Any) -> Any:
        return _validate_views_shape(value)

    @field_validator("inputs")
    @classmethod
    def _inputs(cls, value: Optional[list[Optional[str]]]) -> Optional[list[Optional[str]]]:
        return _validate_views(value)


# --------------------------------------------------------------------------- images


class TextToImageRequest(TaskRequest):
    task_type: ClassVar[str] = TEXT_TO_IMAGE
    route: ClassVar[str] = "/v3/generation/text-to-image"

    prompt: str
    negative_prompt: Optional[str] = None
    model: Optional[str] = None
    image_seed: Optional[int] = Field(None, ge=0)

    def check(self) -> None:
        _check_prompt(self.prompt, "prompt", PROMPT_MAX, required=True)
        _check_prompt(self.negative_prompt, "negative_prompt", NEGATIVE_PROMPT_MAX, required=False)


class GenerateImageRequest(TaskRequest):
    """Image to image: a prompt and/or a template applied to one reference image (``input``)
    or several (``inputs``). ``t_pose`` puts the subject in a T-pose, ``sketch_to_render``
    renders a sketch; ``template`` names one of Tripo's image templates (e.g. "t-pose")."""

    task_type: ClassVar[str] = GENERATE_IMAGE
    route: ClassVar[str] = "/v3/generation/image-to-image"
    file_fields: ClassVar[tuple[tuple[str, str], ...]] = (("input", "image"), ("inputs", "image"))
    SERVER_DEFAULTS: ClassVar[dict[str, Any]] = {"t_pose": False, "sketch_to_render": False}

    prompt: Optional[str] = None
    input: Optional[str] = None
    inputs: Optional[list[str]] = None
    negative_prompt: Optional[str] = None
    model: Optional[str] = None
    image_seed: Optional[int] = Field(None, ge=0)
    template: Optional[str] = None
    t_pose: Optional[bool] = None
    sketch_to_render: Optional[bool] = None

    @field_validator("input")
    @classmethod
    def _input(cls, value: Optional[str]) -> Optional[str]:
        return check_input_value(value, "input", what="the reference image")

    @field_validator("inputs")
    @classmethod
    def _inputs(cls, value: Optional[list[str]]) -> Optional[list[str]]:
        if value is None:
            return None
        return [check_input_value(v, f"inputs[{i}]", what="a reference image")
                for i, v in enumerate(value)]

    def check(self) -> None:
        if self.input is not None and self.inputs is not None:
            raise ValidationError("give either input (one reference image) or inputs (several), "
                                  "not both.", field="inputs")
        if self.input is None and not self.inputs:
            raise ValidationError("input is required: the reference image (or inputs, several).",
                                  field="input")
        if self.template is not None and not self.template.strip():
            raise ValidationError("template is empty: name a template or leave it unset.",
                                  field="template")
        # The official SDK lets the prompt go only when a template says what to do.
        _check_prompt(self.prompt, "prompt", PROMPT_MAX, required=self.template is None)
        _check_prompt(self.negative_prompt, "negative_prompt", NEGATIVE_PROMPT_MAX, required=False)


class GenerateMultiviewImageRequest(TaskRequest):
    """Image to multiview: four views of the object in one image."""

    task_type: ClassVar[str] = GENERATE_MULTIVIEW_IMAGE
    route: ClassVar[str] = "/v3/generation/image-to-multiview"
    file_fields: ClassVar[tuple[tuple[str, str], ...]] = (("input", "image"),)

    input: str
    prompt: Optional[str] = None
    model: Optional[str] = None

    @field_validator("input")
    @classmethod
    def _input(cls, value: str) -> str:
        return check_input_value(value, "input", what="the image")

    def check(self) -> None:
        _check_prompt(self.prompt, "prompt", PROMPT_MAX, required=False)


class ViewPrompt(BaseModel):
    """One view's edit instruction in ``edit_multiview_image``."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    view: Literal[MULTIVIEW_SLOTS]
    prompt: str

    @model_validator(mode="after")
    def _prompt(self) -> "ViewPrompt":
        _check_prompt(self.prompt, f"prompts ({self.view} view)", PROMPT_MAX, required=True)
        return self


class EditMultiviewImageRequest(TaskRequest):
    """Edit the views of a multiview image task, one instruction per view: ``input`` = the id
    of that task, ``prompts`` = ``[{"view": "front", "prompt": "add a hat"}, ...]`` (a dict
    ``{"front": "add a hat"}`` is accepted too). Views without an instruction stay as they are.

    The official SDK tripo3d 1.0.0 sends exactly ``input`` and ``prompts`` (a list of string
    maps); the keys ``view`` and ``prompt`` of each map are what public Tripo clients send."""

    task_type: ClassVar[str] = EDIT_MULTIVIEW_IMAGE
    route: ClassVar[str] = "/v3/generation/edit-multiview"

    input: str
    prompts: list[ViewPrompt]

    @field_validator("input")
    @classmethod
    def _input(cls, value: str) -> str:
        return check_input_value(value, "input", allowed=(InputKind.TASK_ID,),
                                  what="a multiview image task")

    @field_validator("prompts", mode="before")
    @classmethod
    def _prompts_shape(cls, value: Any) -> Any:
        if isinstance(value, dict):  # {"front": "add a hat", ...}
            unknown = set(value) - set(MULTIVIEW_SLOTS)
            if unknown:
                raise ValidationError(
                    f"prompts: unknown view(s) {', '.join(sorted(map(str, unknown)))}; the views "
                    "are front, left, back, right.",
                    field="prompts",
                )
            value = [{"view": view, "prompt": value[view]} for view in MULTIVIEW_SLOTS
                     if isinstance(value.get(view), str) and value[view].strip()]
        return value

    def check(self) -> None:
        if not self.prompts:
            raise ValidationError("prompts is empty: give an instruction for at least one view.",
                                  field="prompts")
        views = [p.view for p in self.prompts]
        twice = sorted({v for v in views if views.count(v) > 1})
        if twice:
            raise ValidationError(f"prompts names the {', '.join(twice)} view more than once.",
                                  field="prompts")


class ImageToSplatRequest(TaskRequest):
    """A Gaussian splat of the subject of one image."""

    task_type: ClassVar[str] = IMAGE_TO_SPLAT
    route: ClassVar[str] = "/v3/generation/image-to-splat"
    file_fields: ClassVar[tuple[tuple[str, str], ...]] = (("input", "image"),)

    input: str
    model_seed: Optional[int] = Field(None, ge=0)

    @field_validator("input")
    @classmethod
    def _input(cls, value: str) -> str:
        return check_input_value(value, "input", what="the image")


class ImageToDepthRequest(TaskRequest):
    """A depth map of one image: ``kind`` gray or color, at ``process_res`` (126..2016 px)."""

    task_type: ClassVar[str] = IMAGE_TO_DEPTH
    route: ClassVar[str] = "/v3/generation/image-to-depth"
    file_fields: ClassVar[tuple[tuple[str, str], ...]] = (("input", "image"),)
    # The server defaults the official SDK tripo3d 1.0.0 documents for this route.
    SERVER_DEFAULTS: ClassVar[dict[str, Any]] = {"kind": "gray", "process_res": 504}

    input: str
    kind: Optional[Literal[DEPTH_KINDS]] = None
    process_res: Optional[int] = None

    @field_validator("input")
    @classmethod
    def _input(cls, value: str) -> str:
        return check_input_value(value, "input", what="the image")

    def check(self) -> None:
        _check_range(self.process_res, "process_res", *DEPTH_PROCESS_RES_RANGE, why=" px")


# --------------------------------------------------------------------------- post-processing


class _ModelInputRequest(TaskRequest):
    """A step whose ``input`` is a model: a task id, a model file token / URL, or a local
    model file (uploaded at create time)."""

    file_fields: ClassVar[tuple[tuple[str, str], ...]] = (("input", "model"),)
    #: Input kinds this step accepts.
    input_kinds: ClassVar[tuple[InputKind, ...]] = tuple(InputKind)
    input_what: ClassVar[str] = "the model"

    input: str

    @field_validator("input")
    @classmethod
    def _input(cls, value: str) -> str:
        return check_input_value(value, "input", allowed=cls.input_kinds, what=cls.input_what)


class TexturePrompt(BaseModel):
    """What to texture with: a text, an image, and/or a style image."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    text: Optional[str] = None
    image: Optional[str] = None
    style_image: Optional[str] = None

    @field_validator("image", "style_image")
    @classmethod
    def _images(cls, value: Optional[str], info) -> Optional[str]:
        return check_input_value(value, f"texture_prompt.{info.field_name}", what="an image")

    @model_validator(mode="after")
    def _something(self) -> "TexturePrompt":
        if not ((self.text and self.text.strip()) or self.image or self.style_image):
            raise ValidationError(
                "texture_prompt needs a text, an image or a style_image (or leave it unset).",
                field="texture_prompt",
            )
        _check_prompt(self.text, "texture_prompt.text", PROMPT_MAX, required=False)
        return self


class TextureModelRequest(_ModelInputRequest):
    task_type: ClassVar[str] = TEXTURE_MODEL
    route: ClassVar[str] = "/v3/models/texture"
    file_fields: ClassVar[tuple[tuple[str, str], ...]] = (
        ("input", "model"), ("texture_prompt.image", "image"),
        ("texture_prompt.style_image", "image"),
    )

    SERVER_DEFAULTS: ClassVar[dict[str, Any]] = {
        "texture": True, "pbr": True, "texture_quality": "standard",
        "texture_alignment": "original_image", "bake": True,
        # Not a server default: the version we send when none was chosen.
        "model": DEFAULT_TEXTURE_MODEL,
    }

    # None until chosen (a provider that cannot choose versions, 3D AI Studio, must tell).
    model: Optional[str] = None
    texture: Optional[bool] = None
    pbr: Optional[bool] = None
    texture_quality: Optional[Literal[TEXTURE_QUALITIES]] = None
    texture_alignment: Optional[_Alignment] = None
    model_seed: Optional[int] = Field(None, ge=0)
    texture_seed: Optional[int] = Field(None, ge=0)
    part_names: Optional[list[str]] = None
    bake: Optional[bool] = None
    compress: Optional[Literal["geometry"]] = None
    texture_prompt: Optional[TexturePrompt] = None
    #: Remove baked-in lighting from the texture (texture model v3.5).
    delight: Optional[bool] = None

    def check(self) -> None:
        if self.model is not None and self.model not in TEXTURE_MODELS:
            raise ValidationError(
                f"model '{self.model}' is not a known texture model version; use one of "
                f"{', '.join(TEXTURE_MODELS)}.",
                field="model",
            )
        conflicts = texture_option_conflicts(self.model)
        if self.texture_quality == "fast" and "texture_quality" in conflicts:
            raise ValidationError(f"{conflicts['texture_quality']}.", field="texture_quality")
        if self.delight is not None and "delight" in conflicts:
            raise ValidationError(f"{conflicts['delight']}.", field="delight")
        if self.texture is False and self.pbr is False:
            raise ValidationError(
                "texture and pbr are both off, so there is nothing to texture; turn one on.",
                field="texture",
            )
        _check_part_names(self.part_names)


class MeshSegmentationRequest(_ModelInputRequest):
    task_type: ClassVar[str] = MESH_SEGMENTATION
    route: ClassVar[str] = "/v3/mesh/segment"
    file_fields: ClassVar[tuple[tuple[str, str], ...]] = (("input", "model"),
                                                          ("ref_image", "image"))

    SERVER_DEFAULTS: ClassVar[dict[str, Any]] = {"model": DEFAULT_SEGMENT_MODEL}

    model: Optional[str] = None
    segmentation_granularity: Optional[Literal[SEGMENTATION_GRANULARITIES]] = None
    split_by_connectivity: Optional[bool] = None
    ref_image: Optional[str] = None

    @field_validator("ref_image")
    @classmethod
    def _ref_image(cls, value: Optional[str]) -> Optional[str]:
        return check_input_value(value, "ref_image", what="a reference image")

    def check(self) -> None:
        if self.model is not None and self.model not in SEGMENT_MODELS:
            raise ValidationError(
                f"model '{self.model}' is not a known segmentation model version; use one of "
                f"{', '.join(SEGMENT_MODELS)}.",
                field="model",
            )
        if self.model != SEGMENT_V2_MODEL:
            for name in ("segmentation_granularity", "split_by_connectivity", "ref_image"):
                if getattr(self, name) is not None:
                    raise ValidationError(
                        f"{name} needs segmentation model {SEGMENT_V2_MODEL} (set model to it).",
                        field=name,
                    )


class MeshCompletionRequest(_ModelInputRequest):
    task_type: ClassVar[str] = MESH_COMPLETION
    route: ClassVar[str] = "/v3/mesh/complete"
    input_kinds: ClassVar[tuple[InputKind, ...]] = (InputKind.TASK_ID,)
    input_what: ClassVar[str] = "a segmentation task"

    SERVER_DEFAULTS: ClassVar[dict[str, Any]] = {"model": DEFAULT_COMPLETION_MODEL}

    model: Optional[str] = None
    part_names: Optional[list[str]] = None
    completion_mode: Optional[Literal[COMPLETION_MODES]] = None

    def check(self) -> None:
        _check_part_names(self.part_names)


def _decimate_major(model: str) -> Optional[str]:
    model = DECIMATE_MODEL_ALIASES.get(model, model)
    match = re.match(r"^v([123])\.0(?:-\d{8})?$", model)
    return f"v{match.group(1)}.0" if match else None


class HighpolyToLowpolyRequest(_ModelInputRequest):
    """Smart low poly (``/v3/mesh/decimate``)."""

    task_type: ClassVar[str] = HIGHPOLY_TO_LOWPOLY
    route: ClassVar[str] = "/v3/mesh/decimate"
    SERVER_DEFAULTS: ClassVar[dict[str, Any]] = {"quad": False, "bake": True,
                                                 "model": DEFAULT_DECIMATE_MODEL}

    model: Optional[str] = None
    face_limit: Optional[int] = None
    quad: Optional[bool] = None
    bake: Optional[bool] = None
    part_names: Optional[list[str]] = None
    smart_uv: Optional[bool] = None

    def check(self) -> None:
        if self.model is not None and _decimate_major(self.model) is None:
            raise ValidationError(
                f"model '{self.model}' is not a known smart low poly model version; use one of "
                f"{', '.join(DECIMATE_MODELS)} (default {DEFAULT_DECIMATE_MODEL}).",
                field="model",
            )
        if self.quad:
            _check_range(self.face_limit, "face_limit", *DECIMATE_QUAD_FACE_RANGE,
                         why=" quads when quad is on")
        else:
            _check_range(self.face_limit, "face_limit", *DECIMATE_FACE_RANGE, why=" triangles")
        if self.smart_uv and _decimate_major(self.model or DEFAULT_DECIMATE_MODEL) != "v3.0":
            raise ValidationError("smart_uv needs smart low poly model v3.0 (set model to v3.0).",
                                  field="smart_uv")
        _check_part_names(self.part_names)

    def to_body(self) -> dict[str, Any]:
        body = super().to_body()
        body["model"] = DECIMATE_MODEL_ALIASES.get(body["model"], body["model"])
        return body


class MeshUvRequest(_ModelInputRequest):
    task_type: ClassVar[str] = MESH_UV
    route: ClassVar[str] = "/v3/mesh/uv"

    model: Optional[str] = None


class AnimatePrerigcheckRequest(_ModelInputRequest):
    task_type: ClassVar[str] = ANIMATE_PRERIGCHECK
    route: ClassVar[str] = "/v3/animations/rig-check"


class AnimateRigRequest(_ModelInputRequest):
    task_type: ClassVar[str] = ANIMATE_RIG
    route: ClassVar[str] = "/v3/animations/rig"
    SERVER_DEFAULTS: ClassVar[dict[str, Any]] = {"rig_type": "biped", "spec": "tripo",
                                                 "out_format": "glb",
                                                 "model": DEFAULT_RIG_MODEL}

    model: Optional[str] = None
    rig_type: Optional[Literal[RIG_TYPES]] = None
    spec: Optional[Literal[RIG_SPECS]] = None
    out_format: Optional[Literal[RIG_OUT_FORMATS]] = None

    def check(self) -> None:
        if self.model is not None and self.model not in RIG_MODELS:
            raise ValidationError(
                f"model '{self.model}' is not a known rig model version; use one of "
                f"{', '.join(RIG_MODELS)}.",
                field="model",
            )
        if self.spec in RIG_SPECS_NEEDING_NEW_MODEL and \
                (self.model or DEFAULT_RIG_MODEL) == RIG_MODELS[0]:
            raise ValidationError(
                f"spec '{self.spec}' needs rig model {RIG_MODELS[1]} or {RIG_MODELS[2]} "
                f"({RIG_MODELS[0]} does not support it).",
                field="spec",
            )


class AnimateRetargetRequest(_ModelInputRequest):
    """Apply animation presets to a rigged model: ``animation`` (one) or ``animations``
    (up to 5, billed per clip)."""

    task_type: ClassVar[str] = ANIMATE_RETARGET
    route: ClassVar[str] = "/v3/animations/retarget"
    input_kinds: ClassVar[tuple[InputKind, ...]] = (InputKind.TASK_ID,)
    input_what: ClassVar[str] = "a rig task"
    SERVER_DEFAULTS: ClassVar[dict[str, Any]] = {"out_format": "glb",
                                                 "export_with_geometry": False,
                                                 "animate_in_place": False}

    animation: Optional[str] = None
    animations: Optional[list[str]] = None
    out_format: Optional[Literal[RIG_OUT_FORMATS]] = None
    export_with_geometry: Optional[bool] = None
    animate_in_place: Optional[bool] = None

    @property
    def clips(self) -> list[str]:
        return list(self.animations or ([self.animation] if self.animation else []))

    def check(self) -> None:
        if self.animation is not None and self.animations is not None:
            raise ValidationError("set animation or animations, not both.", field="animations")
        if self.animation is None and not self.animations:
            raise ValidationError(
                "choose an animation (e.g. preset:walk) in animation or animations.",
                field="animation",
            )
        if self.animations is not None and len(self.animations) > MAX_ANIMATIONS:
            raise ValidationError(
                f"animations lists {len(self.animations)} clips; at most {MAX_ANIMATIONS} per task.",
                field="animations",
            )
        field = "animations" if self.animations is not None else "animation"
        seen = set()
        for clip in self.clips:
            if clip not in ANIMATION_PRESETS:
                raise ValidationError(
                    f"{field}: '{clip}' is not a known animation preset (e.g. preset:walk, "
                    "preset:run, preset:quadruped:walk).",
                    field=field,
                )
            if clip in seen:
                raise ValidationError(f"{field} lists '{clip}' twice.", field=field)
            seen.add(clip)


class ConvertModelRequest(_ModelInputRequest):
    task_type: ClassVar[str] = CONVERT_MODEL
    route: ClassVar[str] = "/v3/models/convert"

    format: Literal[CONVERT_FORMATS]
    quad: Optional[bool] = None
    force_symmetry: Optional[bool] = None
    face_limit: Optional[int] = Field(None, gt=0)
    flatten_bottom: Optional[bool] = None
    flatten_bottom_threshold: Optional[float] = Field(None, gt=0, le=1)
    texture_size: Optional[int] = Field(None, gt=0, le=16384)
    texture_format: Optional[Literal[TEXTURE_FORMATS]] = None
    scale_factor: Optional[float] = Field(None, gt=0)
    pivot_to_center_bottom: Optional[bool] = None
    with_animation: Optional[bool] = None
    pack_uv: Optional[bool] = None
    bake: Optional[bool] = None
    part_names: Optional[list[str]] = None
    export_vertex_colors: Optional[bool] = None
    fbx_preset: Optional[Literal[FBX_PRESETS]] = None
    export_orientation: Optional[Literal[EXPORT_ORIENTATIONS]] = None
    animate_in_place: Optional[bool] = None

    #: The server's defaults; an option set to anything else is "advanced" (pricier tier).
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "quad": False,
        "force_symmetry": False,
        "face_limit": None,
        "flatten_bottom": False,
        "flatten_bottom_threshold": 0.01,
        "texture_size": 4096,
        "texture_format": "JPEG",
        "scale_factor": 1.0,
        "pivot_to_center_bottom": False,
        "with_animation": True,
        "pack_uv": False,
        "bake": True,
        "part_names": None,
        "export_vertex_colors": False,
        "fbx_preset": "blender",
        "export_orientation": "+x",
        "animate_in_place": False,
    }

    @field_validator("format", "texture_format", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    def to_body(self) -> dict[str, Any]:
        body = super().to_body()
        for name, default in self.DEFAULTS.items():
            # fbx_preset only applies to FBX (check() refuses it elsewhere).
            if default is not None and (name != "fbx_preset" or self.format == "FBX"):
                body.setdefault(name, default)
        return body

    def non_default_options(self) -> list[str]:
        """Options set to something else than the server default (they make it "advanced")."""
        out = []
        for name, default in self.DEFAULTS.items():
            value = getattr(self, name)
            if value is not None and value != default:
                out.append(name)
        return out

    def check(self) -> None:
        if self.fbx_preset is not None and self.format != "FBX":
            raise ValidationError(
                f"fbx_preset only applies to FBX exports (format is {self.format}).",
                field="fbx_preset",
            )
        _check_part_names(self.part_names)


class ImportModelRequest(_ModelInputRequest):
    """Import a model file (glb, fbx, obj, stl; ≤ 150 MB): a file token, a URL of the file or
    a local file (uploaded at create time)."""

    task_type: ClassVar[str] = IMPORT_MODEL
    route: ClassVar[str] = "/v3/models/import"
    input_kinds: ClassVar[tuple[InputKind, ...]] = (InputKind.FILE_TOKEN, InputKind.LOCAL_FILE,
                                                    InputKind.URL)
    input_what: ClassVar[str] = "the model file to import"


#: Request model of every live task type.
REQUEST_CLASSES: dict[str, type[TaskRequest]] = {
    cls.task_type: cls
    for cls in (
        TextToModelRequest, ImageToModelRequest, MultiviewToModelRequest, TextToImageRequest,
        GenerateImageRequest, GenerateMultiviewImageRequest, EditMultiviewImageRequest,
        ImageToSplatRequest, ImageToDepthRequest,
        TextureModelRequest, MeshSegmentationRequest, MeshCompletionRequest,
        HighpolyToLowpolyRequest, MeshUvRequest, AnimatePrerigcheckRequest, AnimateRigRequest,
        AnimateRetargetRequest, ConvertModelRequest, ImportModelRequest,
    )
}
LIVE_TASK_TYPES: tuple[str, ...] = tuple(REQUEST_CLASSES)
ROUTES: dict[str, str] = {t: cls.route for t, cls in REQUEST_CLASSES.items()}


# --------------------------------------------------------------------------- factory

_TYPE_WORDS = {
    "int_parsing": "a whole number", "int_type": "a whole number",
    "int_from_float": "a whole number", "float_parsing": "a number", "float_type": "a number",
    "bool_parsing": "true or false", "bool_type": "true or false", "string_type": "text",
    "list_type": "a list", "dict_type": "an object", "model_type": "an object",
    "model_attributes_type": "an object",
}


def format_field_path(loc: tuple) -> str:
    """("jobs", 2, "prompt") -> "jobs[2].prompt" (pydantic error locations, batch-file keys)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _convert_pydantic_error(exc: PydanticValidationError, cls: type[TaskRequest]) -> ValidationError:
    problems: list[tuple[Optional[str], str, Optional[ValidationError]]] = []
    for err in exc.errors(include_url=False):
        field = format_field_path(tuple(err.get("loc", ()))) or None
        kind = err.get("type", "")
        ctx = err.get("ctx") or {}
        value = err.get("input")
        original = ctx.get("error")
        if isinstance(original, ValidationError):
            problems.append((original.field or field, original.message, original))
            continue
        if kind == "extra_forbidden":
            options = ", ".join(sorted(cls.model_fields))
            msg = (f"'{field}' is not an option of {task_label(cls.task_type)} "
                   f"({cls.task_type}); its options are: {options}.")
        elif kind == "missing":
            msg = f"{field} is required for {task_label(cls.task_type)}."
        elif kind == "literal_error":
            msg = f"{field} must be {ctx.get('expected')} (got {value!r})."
        elif kind in _TYPE_WORDS:
            msg = f"{field} must be {_TYPE_WORDS[kind]} (got {value!r})."
        elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
            words = {"greater_than_equal": "at least", "greater_than": "more than",
                     "less_than_equal": "at most", "less_than": "less than"}[kind]
            limit = next(iter(ctx.values()), "")
            msg = f"{field} must be {words} {limit} (got {value!r})."
        elif kind == "value_error":
            text = str(err.get("msg", ""))
            msg = text[len("Value error, "):] if text.startswith("Value error, ") else text
        else:
            msg = f"{field}: {err.get('msg')}" if field else str(err.get("msg"))
        problems.append((field, msg, None))
    if len(problems) == 1 and problems[0][2] is not None:
        return problems[0][2]
    first_field = problems[0][0] if problems else None
    result = ValidationError(" ".join(p[1] for p in problems) or "Invalid request.",
                             field=first_field)
    result.problems = [(f, m) for f, m, _ in problems]
    return result


def request_class(task_type: str) -> type[TaskRequest]:
    """Request model of a task type; :class:`RetiredTaskType` / :class:`ValidationError`."""
    if task_type in RETIRED_TASK_TYPES:
        raise RetiredTaskType(RETIRED_TASK_TYPES[task_type], field="type")
    cls = REQUEST_CLASSES.get(task_type)
    if cls is None:
        raise ValidationError(
            f"Unknown task type '{task_type}'. Known types: {', '.join(LIVE_TASK_TYPES)}.",
            field="type",
        )
    return cls


def load_request(task_type: str, params: dict[str, Any]) -> TaskRequest:
    """Build a request from stored parameters without touching the file system (for a job
    journal): same rules as :func:`build_request` except local files are not checked."""
    cls = request_class(task_type)
    clean = {k: v for k, v in (params or {}).items() if v is not None}
    try:
        return cls.model_validate(clean)
    except PydanticValidationError as exc:
        raise _convert_pydantic_error(exc, cls) from None


def build_request(task_type: str, **params: Any) -> TaskRequest:
    """The request of ``task_type`` with ``params`` (None = unset), fully validated,
    local input files included. Raises only our :class:`ValidationError` (or its subclass
    :class:`RetiredTaskType`)."""
    request = load_request(task_type, params)
    check_local_files(request)
    return request


def validate_request(request: TaskRequest) -> TaskRequest:
    """Validate a request object again (e.g. after ``model_copy``): cross-field rules and
    local files. Returns it; raises :class:`ValidationError`."""
    if not isinstance(request, TaskRequest):
        raise ValidationError("Not a task request.")
    if request.task_type in RETIRED_TASK_TYPES:
        raise RetiredTaskType(RETIRED_TASK_TYPES[request.task_type], field="type")
    try:
        type(request).model_validate(request.model_dump(mode="python"))
    except PydanticValidationError as exc:
        raise _convert_pydantic_error(exc, type(request)) from None
    check_local_files(request)
    return request
