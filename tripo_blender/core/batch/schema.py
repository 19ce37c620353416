"""The schema of a batch file: the tables and keys it may hold, and readable messages for
what does not fit.

Request options inside a table are not checked here: the planner (``batchfile``) checks them
against the task's own request model.
"""

from __future__ import annotations

from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from ..protocol.request_models import format_field_path
from .source import Problem, line_of

FORMAT_VERSION = 1
DEFAULT_PROJECT = "tripo"


# =========================================================================== schema

Scalar = Union[str, int, float, bool]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), populate_by_name=True)


class _Options(BaseModel):
    """A table whose unknown keys are request options (checked against the task's request)."""
    model_config = ConfigDict(extra="allow", protected_namespaces=(), populate_by_name=True)


class TextureSpec(_Options):
    prompt: Optional[str] = None        # texture_prompt.text (template fields allowed)
    image: Optional[str] = None         # texture_prompt.image
    style_image: Optional[str] = None   # texture_prompt.style_image


class PartTextureSpec(TextureSpec):
    parts: Optional[list[str]] = None   # only these parts (default: every part)


class ExportSpec(_Options):
    format: str
    name: Optional[str] = None          # distinguishes two exports of one format


class AnimationSpec(_Options):
    animations: list[str]


class PostSpec(_Model):
    texture: Union[bool, str, TextureSpec, None] = None
    texture_parts: Union[bool, str, PartTextureSpec, None] = None
    segment: Union[bool, _Options, None] = None
    lowpoly: Union[bool, int, _Options, None] = None
    rig: Union[bool, str, _Options, None] = None
    animations: Union[str, list[str], AnimationSpec, None] = None
    export: Union[str, list[Union[str, ExportSpec]], None] = Field(None, alias="convert")
    export_parts: Union[str, list[Union[str, ExportSpec]], None] = None


class QCSpec(_Model):
    max_faces: Optional[int] = Field(None, ge=0)
    max_vertices: Optional[int] = Field(None, ge=0)
    min_size: Optional[float] = Field(None, ge=0)
    max_size: Optional[float] = Field(None, gt=0)
    max_non_manifold_edges: Optional[int] = Field(None, ge=0)
    max_loose: Optional[int] = Field(None, ge=0)
    require_textures: Optional[bool] = None
    min_parts: Optional[int] = Field(None, ge=0)


class JobSpec(_Model):
    id: Optional[str] = None
    enabled: bool = True
    name: Optional[str] = None
    type: Optional[str] = None
    prompt: Optional[str] = None
    negative_prompt: Optional[str] = None
    image: Optional[str] = None
    images: Union[list[Optional[str]], dict[str, str], None] = None
    text_to_image: Optional[bool] = None
    output: Optional[str] = None        # "model" (default), "splat" or "depth" (checked by the planner)
    vars: dict[str, Union[list[Scalar], Scalar]] = Field(default_factory=dict)
    variants: Union[int, list[dict[str, Any]], None] = None
    seed: Optional[int] = Field(None, ge=0)
    options: dict[str, Any] = Field(default_factory=dict)
    post: Optional[PostSpec] = None
    qc: Optional[QCSpec] = None
    tags: Union[list[str], dict[str, Scalar], None] = None


class BatchSettings(_Model):
    project: str = DEFAULT_PROJECT
    naming: Optional[str] = None
    version: int = Field(1, ge=0)       # the first version number ({version} = v01, v02 ...)
    blend: Optional[str] = None
    concurrency: Optional[int] = Field(None, ge=1)
    creates_per_minute: Optional[int] = Field(None, ge=1)
    retries: Optional[int] = Field(None, ge=0)


class BatchSpec(_Model):
    format: int = FORMAT_VERSION
    batch: BatchSettings = Field(default_factory=BatchSettings)
    vars: dict[str, Union[list[Scalar], Scalar]] = Field(default_factory=dict)
    defaults: JobSpec = Field(default_factory=JobSpec)
    qc: QCSpec = Field(default_factory=QCSpec)
    jobs: list[JobSpec]


_UNION_WORDS = {
    "texture": "true, false, a texture prompt, or a table (prompt, image, style_image and "
               "texture options)",
    "texture_parts": "true, false, a prompt (may use {part}), or a table (prompt, parts and "
                     "texture options)",
    "segment": "true, false, or a table of segmentation options",
    "lowpoly": "true, false, a face limit, or a table of smart low poly options",
    "rig": "true, false, a rig type (e.g. \"biped\"), or a table of rig options",
    "animations": "an animation preset, a list of them, or a table with `animations`",
    "export": "a format (e.g. \"STL\"), a list of formats, or tables with `format` and convert "
              "options",
    "convert": "a format (e.g. \"STL\"), a list of formats, or tables with `format` and convert "
               "options",
    "export_parts": "a format (e.g. \"STL\"), a list of formats, or tables with `format` and "
                    "convert options",
    "images": "a list [front, left, back, right] or a table {front = ..., back = ...}",
    "variants": "a number of variants, or a list of option tables (one per variant)",
    "tags": "a list of strings or a table",
    "vars": "a value or a list of values",
}
_TYPE_WORDS = {
    "int_parsing": "a whole number", "int_type": "a whole number", "int_from_float": "a whole number",
    "float_parsing": "a number", "float_type": "a number", "bool_parsing": "true or false",
    "bool_type": "true or false", "string_type": "text", "list_type": "a list",
    "dict_type": "a table", "model_type": "a table", "model_attributes_type": "a table",
}


def _walk_loc(data: Any, loc: tuple) -> tuple:
    """The part of a pydantic error location that names real keys of the data (drops union
    member tags such as 'bool' or 'TextureSpec')."""
    path: list = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and part == "convert" and "export" in node:
            path.append("export")
            node = node["export"]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(node, (dict, list)) and part in ("missing",):
            continue
        else:
            if isinstance(node, dict) and isinstance(part, str) and not _looks_like_tag(part):
                path.append(part)  # a missing key: still name it
                node = None
            continue
    return tuple(path)


def _looks_like_tag(part: str) -> bool:
    return part in ("bool", "int", "str", "float", "list", "dict", "none") or part[:1].isupper() \
        or part[:1] == "_" or "[" in part or part.startswith("function-")


def schema_problems(exc: PydanticValidationError, data: Any, lines: dict) -> list[Problem]:
    grouped: dict[tuple, list[dict]] = {}
    for err in exc.errors(include_url=False):
        loc = tuple(err.get("loc", ()))
        path = _walk_loc(data, loc)
        if err.get("type") == "missing" and loc and loc[-1] not in path:
            path = path + (loc[-1],)
        grouped.setdefault(path, []).append(err)
    # A deeper error is more precise than a union's "wrong type" at its parent.
    paths = [p for p in grouped if not any(q != p and q[:len(p)] == p for q in grouped)]
    problems = []
    for path in sorted(paths, key=lambda p: (line_of(lines, p) or 0, format_field_path(p))):
        errs = grouped[path]
        key = next((p for p in reversed(path) if isinstance(p, str)), "")
        value = value_at(data, path)
        if len(errs) > 1 and key in _UNION_WORDS:
            message = f"must be {_UNION_WORDS[key]} (got {value!r})"
        else:
            message = _schema_message(errs[0], path, value)
        problems.append(Problem(format_field_path(path), message, line_of(lines, path)))
    return problems


def value_at(data: Any, path: tuple) -> Any:
    node = data
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


_KNOWN_KEYS = {
    (): sorted(BatchSpec.model_fields),
    ("batch",): sorted(BatchSettings.model_fields),
    ("qc",): sorted(QCSpec.model_fields),
    ("job",): sorted(JobSpec.model_fields),
    ("post",): sorted(set(PostSpec.model_fields) | {"convert"}),
}


def _schema_message(err: dict, path: tuple, value: Any) -> str:
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    key = path[-1] if path else ""
    if kind == "extra_forbidden":
        parent = path[:-1]
        if not parent:
            known = _KNOWN_KEYS[()]
        elif parent[-1] == "post":
            known = _KNOWN_KEYS[("post",)]
        elif parent[-1] in ("qc",):
            known = _KNOWN_KEYS[("qc",)]
        elif parent == ("batch",):
            known = _KNOWN_KEYS[("batch",)]
        else:
            known = _KNOWN_KEYS[("job",)]
        return f"unknown key '{key}'; the keys here are: {', '.join(known)}"
    if kind == "missing":
        if key == "jobs":
            return "the batch file lists no jobs: add [[jobs]] tables (or a \"jobs\" list)"
        return f"'{key}' is required here"
    if kind in _TYPE_WORDS:
        return f"must be {_TYPE_WORDS[kind]} (got {value!r})"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        words = {"greater_than_equal": "at least", "greater_than": "more than",
                 "less_than_equal": "at most", "less_than": "less than"}[kind]
        return f"must be {words} {next(iter(ctx.values()), '')} (got {value!r})"
    message = str(err.get("msg", "invalid value"))
    return message[len("Value error, "):] if message.startswith("Value error, ") else message
