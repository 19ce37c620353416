"""Batch files: many assets described in one TOML, JSON or YAML file, turned into jobs.

Plain Python, no ``bpy`` (see ``core/__init__``). The Blender side (``blender/batch_runner``)
runs what this module plans; ``--dry-run`` stops after the plan and its cost estimate.

The format (``examples/batch_reference.toml`` shows every key, commented)::

    [batch]                      # run settings, all optional
    project = "DEMO"             # {project} in the naming template
    naming = "{project}_{type}_{name}_{generation}_{version}"   # asset folder names
    blend = "demo.blend"         # the .blend in --out that receives every asset

    [vars]                       # template fields shared by every job
    material = ["oak", "steel"]

    [defaults]                   # merged into every job (a job's own keys win)
    type = "prop"
    options = { model = "v3.1-20260211", face_limit = 8000 }

    [qc]                         # QC thresholds (defaults: see QC_DEFAULTS)
    max_non_manifold_edges = 0

    [[jobs]]
    name = "crate"
    prompt = "a {style} crate, {material} corners"   # {fields} expand over [vars]/vars lists
    vars = { style = ["rustic", "sci-fi"] }           # cartesian product of every list
    variants = 2                 # per expanded prompt: model_seed = seed + k
    post = { texture = "weathered paint", lowpoly = 2000, export = ["STL", "FBX"] }

    [[jobs]]
    image = "refs/hall.png"
    output = "depth"             # an image job's result: "model" (default), "splat" or "depth"
    options = { kind = "color", process_res = 1008 }  # the options of that request only

Each expanded asset becomes one :class:`~..engine.jobs.Job` (a chain of steps) whose downloads are
named by step (``01_base.glb``, ``02_textured_full.glb``, ``06_export_full_stl.stl``...).
Per-part work (``texture_parts``, ``export_parts``) needs the part names of the finished model,
so it becomes second-phase jobs (:func:`part_jobs`) once the asset is imported.

Determinism: the job id of an asset is a digest of what it would send (task types, parameters,
the content of local input files), so rerunning the same file maps every asset to the same
journal entry, whatever its folder name. Changing an asset's request makes it a new job.

Errors: :class:`~.source.BatchFileError` lists every problem found, each with the key path
(``jobs[2].options.face_limit``) and, when it can be found in the text, the line. Reading the text
is ``source``'s work and the tables' shape ``schema``'s; this module names, loads and plans.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import logging
import os
import re
import string
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from .. import costs
from ..files import safe_name
from ..protocol import chains, errors, request_models, vocabulary
from ..protocol.request_models import format_field_path
from ..engine import recipes
from ..engine.jobs import ANALYSIS_KINDS, Job, Step
from .schema import (FORMAT_VERSION, AnimationSpec, BatchSpec, JobSpec, PartTextureSpec, TextureSpec,
                     schema_problems, value_at)
from .source import BatchFileError, Problem, detect_format, line_of, parse_text

log = logging.getLogger(__name__)

DEFAULT_NAMING = "{name}_{version}"
DEFAULT_TYPE = "prop"
#: Task input placeholder used to validate chained steps before any task exists.
PLACEHOLDER_TASK_ID = "00000000-0000-4000-8000-000000000000"

#: QC thresholds and what they default to (None: derived from the asset's request).
QC_DEFAULTS: dict[str, Any] = {
    "max_faces": None,               # default: the requested face limit (none: unchecked)
    "max_vertices": None,            # default: the requested face limit (none: unchecked)
    "min_size": 0.01,                # metres: the largest bounding-box side must reach it
    "max_size": 100.0,               # metres: no bounding-box side may exceed it
    "max_non_manifold_edges": 0,     # after welding UV-seam splits
    "max_loose": 0,                  # loose vertices + loose edges
    "require_textures": None,        # default: when textures were asked for
    "min_parts": None,               # default: 2 when parts were asked for
}

#: What an image job makes (`output`): a model (image to model), or an image analysis result
#: (image to splat, image to depth), which lands as a point cloud or a displaced plane.
OUTPUT_MODEL = "model"
OUTPUTS = (OUTPUT_MODEL, *ANALYSIS_KINDS)
_OUTPUT_WORDS = {"splat": "a Gaussian splat", "depth": "a depth map"}
#: Options of the model generation requests (what [defaults] options usually hold); a splat or
#: depth job leaves those of [defaults] out, and refuses its own.
MODEL_OPTIONS = frozenset().union(*(request_models.request_class(t).model_fields for t in vocabulary.GENERATION_TYPES)) \
    - {"input", "inputs", "prompt", "negative_prompt"}
#: QC thresholds that apply to a splat or depth result (the others measure meshes).
ANALYSIS_QC_KEYS = ("min_size", "max_size")

# Fixed stage numbers: a step kind always gets the same prefix, whatever else the chain holds.
STAGES = {
    "concept": "00_concept",
    "base": "01_base",
    "textured_full": "02_textured_full",
    "textured_part": "03_textured_part",
    "segmented": "04_segmented",
    "lowpoly": "05_lowpoly",
    "export_full": "06_export_full",
    "rigged": "07_rigged",
    "export_part": "08_export_part",
    "animated": "09_animated",
}

# =========================================================================== names


def part_stem(stage: str, index: int, part: str, extra: str = "") -> str:
    """E.g. ``03_textured_part__001__wheel`` or ``08_export_part_stl__003__handle``."""
    return f"{STAGES[stage]}{('_' + extra) if extra else ''}__{index:03d}__{safe_name(part, 'part', 48)}"


def _slug_from_prompt(prompt: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", unicodedata.normalize("NFKD", prompt)
                       .encode("ascii", "ignore").decode("ascii"))
    stop = {"a", "an", "the", "of", "with", "and"}
    kept = [w for w in words if w.lower() not in stop][:5] or words[:5]
    return "_".join(kept).lower() or "asset"


_FORMATTER = string.Formatter()


class TemplateError(ValueError):
    pass


def template_fields(text: str) -> list[str]:
    """Field names used by a ``{field}`` template; TemplateError when it is malformed."""
    names = []
    try:
        parsed = list(_FORMATTER.parse(text))
    except ValueError as exc:
        raise TemplateError(f"malformed template ({exc}); write {{{{ and }}}} for literal braces") from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            raise TemplateError(f"'{{{name}}}' is not a valid template field (use names such as "
                                "{style}; write {{ and }} for literal braces)")
        if spec or conversion:
            raise TemplateError(f"template field '{{{name}}}' takes no format (write just {{{name}}})")
        names.append(name)
    return names


def render(text: str, values: dict) -> str:
    return _FORMATTER.vformat(text, (), values)


# =========================================================================== the plan


@dataclass
class PartWork:
    """Second-phase work on every part (or the chosen ones) of an asset."""
    kind: str                   # "texture" or "export"
    stage: str                  # "textured_part" or "export_part"
    label: str                  # "" for texture, e.g. "stl" for an export
    task_type: str
    params: dict
    source_step: int            # the main chain's step whose task id is the input
    source_type: str
    prompt: Optional[str] = None    # texture prompt template ({part} and the asset's fields)
    parts: Optional[list[str]] = None
    downloads: tuple = ("model_url",)
    estimate: float = 0.0


@dataclass
class AssetPlan:
    index: int
    asset_id: str               # the folder under --out, also the object name in the .blend
    job: Job
    name: str
    type: str
    prompt: str
    source: str                 # e.g. "jobs[2]"
    fields: dict = field(default_factory=dict)
    variant: int = 1
    generation: int = 1
    seed: Optional[int] = None
    tags: Any = None
    output: str = OUTPUT_MODEL  # "model", "splat" or "depth"
    import_step: int = 0
    qc: dict = field(default_factory=dict)
    part_work: list[PartWork] = field(default_factory=list)
    estimate: float = 0.0
    estimate_is_guess: bool = False
    step_estimates: list[tuple[str, float]] = field(default_factory=list)

    @property
    def job_id(self) -> str:
        return self.job.job_id

    @property
    def part_estimate(self) -> float:
        """Estimated credits of the second phase for ONE part (all part work together)."""
        return sum(w.estimate for w in self.part_work)


@dataclass
class Batch:
    source: str
    format: str
    project: str
    naming: str
    blend: str
    concurrency: Optional[int]
    creates_per_minute: Optional[int]
    retries: Optional[int]
    plans: list[AssetPlan]

    @property
    def job_ids(self) -> set[str]:
        return {p.job_id for p in self.plans}

    def estimate(self) -> dict:
        """Estimated credits: the main chains, plus the per-part work per part."""
        total = sum(p.estimate for p in self.plans)
        per_part = sum(p.part_estimate for p in self.plans)
        return {"assets": len(self.plans), "credits": total,
                "per_part_credits": per_part,
                "guess": any(p.estimate_is_guess for p in self.plans)}

    def describe_estimate(self) -> str:
        lines = [f"{len(self.plans)} asset(s) from {self.source}"]
        width = max([len(p.asset_id) for p in self.plans] + [10])
        for plan in self.plans:
            steps = " -> ".join(t for t, _ in plan.step_estimates)
            text = f"  {plan.asset_id:<{width}}  ≈ {_fmt(plan.estimate):>6} credits  {steps}"
            if plan.part_work:
                kinds = ", ".join(f"{w.kind}{' ' + w.label if w.label else ''}" for w in plan.part_work)
                text += f"  + ≈ {_fmt(plan.part_estimate)} per part ({kinds})"
            lines.append(text)
        summary = self.estimate()
        total = f"Total ≈ {_fmt(summary['credits'])} credits"
        if summary["per_part_credits"]:
            total += (f" + ≈ {_fmt(summary['per_part_credits'])} credits per part for per-part work "
                      "(the part count is known only after generation)")
        kind = "rough guess for some steps" if summary["guess"] else "estimate"
        lines.append(f"{total} ({kind}; what Tripo reports per task is the truth)")
        return "\n".join(lines)


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


# =========================================================================== loading


def load(path: Union[str, os.PathLike], fmt: Optional[str] = None) -> Batch:
    """Reads, validates and expands a batch file. Raises BatchFileError (nothing is sent)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BatchFileError(str(path), [Problem("", f"cannot read the batch file: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError:
        raise BatchFileError(str(path), [Problem("", "the batch file is not UTF-8 text")]) from None
    return loads(text, fmt or detect_format(path), base_dir=path.resolve().parent, source=str(path))


def loads(text: str, fmt: str, *, base_dir: Union[str, os.PathLike, None] = None,
          source: str = "<batch>") -> Batch:
    data, lines = parse_text(text, fmt, source)
    if not isinstance(data, dict):
        raise BatchFileError(source, [Problem("", "the batch file must be a table/object at the top "
                                                  "level, with a `jobs` list")])
    try:
        spec = BatchSpec.model_validate(data)
    except PydanticValidationError as exc:
        raise BatchFileError(source, schema_problems(exc, data, lines)) from None
    planner = _Planner(spec, data, lines, Path(base_dir or os.getcwd()), source, fmt)
    return planner.plan()


# =========================================================================== planning


class _Problems(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = problems


def _as_list(value) -> list:
    return list(value) if isinstance(value, list) else [value]


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def _normalize_for_id(value: Any) -> Any:
    """Parameters as they identify a job: local files by content, not by where they sit."""
    if isinstance(value, dict):
        return {k: _normalize_for_id(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_normalize_for_id(v) for v in value]
    if isinstance(value, str) and os.path.isabs(value) and os.path.isfile(value):
        try:
            return _file_digest(value)
        except OSError:
            return value
    return value


class _Planner:
    def __init__(self, spec: BatchSpec, data: dict, lines: dict, base_dir: Path, source: str, fmt: str):
        self.spec = spec
        self.data = data
        self.lines = lines
        self.base_dir = base_dir
        self.source = source
        self.fmt = fmt
        self.problems: list[Problem] = []
        self.naming = spec.batch.naming or DEFAULT_NAMING

    # -- problems ---------------------------------------------------------------------------
    def problem(self, path: tuple, message: str) -> None:
        self.problems.append(Problem(format_field_path(path), message, line_of(self.lines, path)))

    def raw(self, path: tuple) -> Any:
        return value_at(self.data, path)

    # -- top level ----------------------------------------------------------------------------
    def plan(self) -> Batch:
        spec = self.spec
        if spec.format != FORMAT_VERSION:
            self.problem(("format",), f"this runner reads batch format {FORMAT_VERSION} (got {spec.format})")
        try:
            naming_fields = template_fields(self.naming)
        except TemplateError as exc:
            self.problem(("batch", "naming"), str(exc))
            naming_fields = []
        self.naming_fields = naming_fields

        plans: list[AssetPlan] = []
        generation = 0
        for index, job in enumerate(spec.jobs):
            if not job.enabled:
                continue
            try:
                expansions = self.expand(index, job)
                variants = self.variants(index, job)
            except _Problems as exc:
                self.problems.extend(exc.problems)
                continue
            for fields, name in expansions:
                generation += 1
                for variant in variants:
                    try:
                        plans.append(self.asset(len(plans), index, job, fields, name, generation, variant))
                    except _Problems as exc:
                        self.problems.extend(exc.problems)
        if not spec.jobs:
            self.problem(("jobs",), "the batch file lists no jobs")
        self.check_unique(plans)
        if self.problems:
            unique = sorted(dict.fromkeys(self.problems), key=lambda p: p.line or 0)
            raise BatchFileError(self.source, unique)
        blend = spec.batch.blend or f"{safe_name(Path(self.source).stem, 'batch')}.blend"
        if not blend.endswith(".blend"):
            blend += ".blend"
        return Batch(source=self.source, format=self.fmt, project=spec.batch.project, naming=self.naming,
                     blend=safe_name(blend, "batch.blend"), concurrency=spec.batch.concurrency,
                     creates_per_minute=spec.batch.creates_per_minute, retries=spec.batch.retries,
                     plans=plans)

    def check_unique(self, plans: list[AssetPlan]) -> None:
        seen: dict[str, AssetPlan] = {}
        for plan in plans:
            key = plan.asset_id.lower()  # case-insensitive file systems
            if key in seen:
                other = seen[key]
                path = self.job_path(plan)
                self.problem(path + ("name",) if self.raw(path + ("name",)) is not None else path,
                             f"two assets get the folder name '{plan.asset_id}' ({other.source} and "
                             f"{plan.source}); give them different names or add {{version}} / "
                             "{generation} / a field to the naming template")
            else:
                seen[key] = plan
        ids: dict[str, AssetPlan] = {}
        for plan in plans:
            if plan.job_id in ids:
                # Identical requests: keep them distinct but deterministic (order of appearance).
                count = sum(1 for p in ids if p.startswith(plan.job_id))
                plan.job.job_id = f"{plan.job_id}-{count + 1}"
            ids[plan.job_id] = plan

    @staticmethod
    def job_path(plan: AssetPlan) -> tuple:
        return ("jobs", int(plan.source[5:-1]))

    # -- merging defaults ---------------------------------------------------------------------
    def merged(self, index: int, job: JobSpec, key: str):
        """(value, path) of a job key, falling back to [defaults]."""
        value = getattr(job, key)
        if value is not None and key in job.model_fields_set:
            return value, ("jobs", index, key)
        default = getattr(self.spec.defaults, key)
        if default is not None and key in self.spec.defaults.model_fields_set:
            return default, ("defaults", key)
        return value, ("jobs", index, key)

    def expand(self, index: int, job: JobSpec) -> list[tuple[dict, str]]:
        """The template fields of every expansion of a job, with its descriptive name."""
        problems: list[Problem] = []
        variables: dict[str, tuple[list, tuple]] = {}
        for scope, values in ((("vars",), self.spec.vars), (("defaults", "vars"), self.spec.defaults.vars),
                              (("jobs", index, "vars"), job.vars)):
            for key, value in values.items():
                items = _as_list(value)
                if not items:
                    problems.append(Problem(format_field_path(scope + (key,)), "an empty list expands to no "
                                            "assets; give at least one value",
                                            line_of(self.lines, scope + (key,))))
                if not key.isidentifier():
                    problems.append(Problem(format_field_path(scope + (key,)), f"'{key}' cannot be a template "
                                            "field name (use letters, digits and _)",
                                            line_of(self.lines, scope + (key,))))
                variables[key] = (items, scope + (key,))
        # The job's own fields vary first (names read "crate_rustic_oak", not "crate_oak_rustic").
        own = [k for k in job.vars]
        variables = {**{k: variables[k] for k in own}, **{k: v for k, v in variables.items() if k not in own}}
        builtins = {"project": self.spec.batch.project}
        type_value, _ = self.merged(index, job, "type")
        builtins["type"] = type_value or DEFAULT_TYPE
        known = set(variables) | set(builtins)

        templates = []
        for key in ("prompt", "negative_prompt", "name", "image"):
            value, path = self.merged(index, job, key)
            if isinstance(value, str):
                templates.append((value, path))
        images, path = self.merged(index, job, "images")
        if isinstance(images, list):
            templates += [(v, path + (k,)) for k, v in enumerate(images) if isinstance(v, str)]
        elif isinstance(images, dict):
            templates += [(v, path + (k,)) for k, v in images.items()]
        post = self.post_tables(index, job)
        for key in ("texture", "texture_parts"):
            value, path = post.get(key, (None, None))
            if isinstance(value, str):
                templates.append((value, path))
            elif isinstance(value, TextureSpec) and value.prompt:
                templates.append((value.prompt, path + ("prompt",)))
        used: set[str] = set()
        for text, path in templates:
            try:
                names = template_fields(text)
            except TemplateError as exc:
                problems.append(Problem(format_field_path(path), str(exc), line_of(self.lines, path)))
                continue
            allowed = known | ({"part"} if path and "texture_parts" in path else set())
            for name in names:
                if name not in allowed:
                    hint = f"; known fields: {', '.join(sorted(known))}" if known else \
                        "; define it under [vars] or in the job's vars"
                    problems.append(Problem(format_field_path(path), f"unknown template field {{{name}}}{hint}",
                                            line_of(self.lines, path)))
            used.update(names)
        if problems:
            raise _Problems(problems)

        name_template, _ = self.merged(index, job, "name")
        prompt, _ = self.merged(index, job, "prompt")
        keys = list(variables)
        combos = itertools.product(*[variables[k][0] for k in keys]) if keys else [()]
        out = []
        name_fields = set(template_fields(name_template)) if name_template else set()
        for combo in combos:
            fields = {**builtins, **{k: v for k, v in zip(keys, combo)}}
            values = {k: str(v) for k, v in fields.items()}
            if name_template:
                name = render(name_template, values)
            elif prompt:
                name = _slug_from_prompt(render(prompt, values))
            else:
                image, _ = self.merged(index, job, "image")
                name = Path(render(image, values)).stem if image else f"job{index + 1}"
            # Lists that vary but are not in the name: their values make the name unique.
            varying = [k for k in keys if len(variables[k][0]) > 1 and k not in name_fields]
            if varying and (name_template or not prompt):
                name = "_".join([name] + [str(fields[k]) for k in varying])
            out.append((fields, name))
        return out

    def variants(self, index: int, job: JobSpec) -> list[tuple[int, dict, tuple]]:
        """(number, option overrides, path) per variant."""
        value, path = self.merged(index, job, "variants")
        if value is None:
            return [(1, {}, path)]
        if isinstance(value, int):
            if value < 1:
                raise _Problems([Problem(format_field_path(path), "variants must be at least 1",
                                         line_of(self.lines, path))])
            if value > 1000:
                raise _Problems([Problem(format_field_path(path), "more than 1000 variants per prompt is "
                                         "surely a mistake", line_of(self.lines, path))])
            return [(k + 1, {}, path) for k in range(value)]
        return [(k + 1, dict(overrides), path + (k,)) for k, overrides in enumerate(value)]

    def post_tables(self, index: int, job: JobSpec) -> dict[str, tuple[Any, tuple]]:
        """Each post-step key with where it came from (a job key replaces the default's)."""
        out: dict[str, tuple[Any, tuple]] = {}
        for scope, post in ((("defaults", "post"), self.spec.defaults.post),
                            (("jobs", index, "post"), job.post)):
            if post is None:
                continue
            for key in post.model_fields_set:
                raw_key = "export" if key == "export" else key
                path = scope + (raw_key,)
                if key == "export" and self.raw(path) is None and self.raw(scope + ("convert",)) is not None:
                    path = scope + ("convert",)
                out[key] = (getattr(post, key), path)
        return {k: v for k, v in out.items() if v[0] is not None and v[0] is not False}

    # -- one asset ------------------------------------------------------------------------------
    def asset(self, position: int, index: int, job: JobSpec, fields: dict, name: str,
              generation: int, variant_info: tuple[int, dict, tuple]) -> AssetPlan:
        variant, overrides, variant_path = variant_info
        problems: list[Problem] = []
        values = {k: str(v) for k, v in fields.items()}

        def fail(path: tuple, message: str) -> None:
            problems.append(Problem(format_field_path(path), message, line_of(self.lines, path)))

        output, output_path = self.merged(index, job, "output")
        output = output or OUTPUT_MODEL
        if output not in OUTPUTS:
            fail(output_path, f"output must be one of {', '.join(OUTPUTS)} (got {output!r})")
            raise _Problems(problems)
        analysis_type, result_output = ANALYSIS_KINDS.get(output, (None, None))
        # What the analysis request takes besides its image (from its request model).
        takes = set(request_models.request_class(analysis_type).model_fields) - {"input"} if analysis_type else None
        if analysis_type:
            self.check_analysis_job(index, job, output, analysis_type, takes, fail)

        # Generation options and where each came from.
        options: dict[str, Any] = {}
        origin: dict[str, tuple] = {}
        for scope, table in ((("defaults", "options"), self.spec.defaults.options),
                             (("jobs", index, "options"), job.options),
                             (variant_path, overrides)):
            for key, value in table.items():
                if takes is not None and key not in takes:
                    if scope[0] == "defaults" and key in MODEL_OPTIONS:
                        continue  # set for every job's model: this job makes none
                    fail(scope + (key,), _not_an_option(key, output, analysis_type, takes))
                    continue
                options[key] = value
                origin[key] = scope + (key,)
        seed, seed_path = self.merged(index, job, "seed")
        if takes is not None and "model_seed" not in takes:
            seed = None  # the job's own seed was refused above; a default one does not apply
        prompt_t, prompt_path = self.merged(index, job, "prompt")
        negative_t, negative_path = self.merged(index, job, "negative_prompt")
        image_t, image_path = self.merged(index, job, "image")
        images_t, images_path = self.merged(index, job, "images")
        text_to_image, t2i_path = self.merged(index, job, "text_to_image")
        type_value = fields.get("type") or DEFAULT_TYPE

        prompt = render(prompt_t, values) if prompt_t else None
        negative = render(negative_t, values) if negative_t else None
        n_variants = len(self.variants(index, job))  # already checked in plan()
        if "model_seed" not in options and (takes is None or "model_seed" in takes):
            if seed is not None:
                options["model_seed"] = seed + variant - 1
                origin["model_seed"] = seed_path
            elif n_variants > 1:
                basis = prompt or image_t or str(images_t) or name
                base = int(hashlib.sha256(basis.encode("utf-8")).hexdigest()[:7], 16)  # < 2**28
                options["model_seed"] = base + variant - 1
                origin["model_seed"] = ("jobs", index, "variants")

        # The generation step(s).
        if text_to_image and not prompt:
            fail(t2i_path, "text_to_image needs a prompt")
        if image_t and images_t:
            fail(("jobs", index), "give either image or images, not both")
        if not prompt and not image_t and not images_t:
            fail(("jobs", index), "each job needs a prompt, an image or images (multiview)")
        steps: list[Step] = []
        images_meta: list[str] = []
        analysis_step = {"file_stem": STAGES["base"], "downloads": (result_output,)}
        if analysis_type and images_t:
            fail(images_path, f"output = \"{output}\" reads one image (image = \"...\"); multiview "
                              "images make models only")
        elif analysis_type and not image_t and not text_to_image and prompt:
            fail(output_path, f"output = \"{output}\" needs an image: give image = \"...\", or "
                              "text_to_image = true to draw one from the prompt first")
        elif analysis_type and image_t:
            path = self.file(render(image_t, values))
            images_meta = [os.path.basename(path)]
            steps.append(Step(analysis_type, {"input": path, **recipes.analysis_defaults(analysis_type),
                                              **options}, **analysis_step))
            gen_source = image_path
            if negative_t and negative_path[0] == "jobs":
                fail(negative_path, "negative_prompt applies to text prompts only (not to image jobs)")
        elif image_t or images_t:
            if images_t:
                views = images_t
                if isinstance(views, dict):
                    views = [views.get(slot) for slot in vocabulary.MULTIVIEW_SLOTS]
                    unknown = set(images_t) - set(vocabulary.MULTIVIEW_SLOTS)
                    if unknown:
                        fail(images_path, f"unknown view(s) {', '.join(sorted(unknown))}; the views are "
                                          "front, left, back, right")
                resolved = [self.file(render(v, values)) if v else None for v in views]
                images_meta = [os.path.basename(v) for v in resolved if v]
                gen = Step(vocabulary.MULTIVIEW_TO_MODEL, {"inputs": resolved, **options},
                           file_stem=STAGES["base"], downloads=("model_url", "rendered_image_url"))
                gen_source = images_path
            else:
                path = self.file(render(image_t, values))
                images_meta = [os.path.basename(path)]
                gen = Step(vocabulary.IMAGE_TO_MODEL, {"input": path, **options},
                           file_stem=STAGES["base"], downloads=("model_url", "rendered_image_url"))
                gen_source = image_path
            if negative_t and negative_path[0] == "jobs":  # a default one just does not apply
                fail(negative_path, "negative_prompt applies to text prompts only (not to image jobs)")
            steps.append(gen)
        elif text_to_image:
            concept = {"prompt": prompt}
            if negative:
                concept["negative_prompt"] = negative
            steps.append(Step(vocabulary.TEXT_TO_IMAGE, concept, file_stem=STAGES["concept"],
                              downloads=("generated_image_url",)))
            if analysis_type:
                steps.append(Step(analysis_type, {**recipes.analysis_defaults(analysis_type), **options},
                                  input_from=0, **analysis_step))
            else:
                steps.append(Step(vocabulary.IMAGE_TO_MODEL, dict(options), input_from=0, file_stem=STAGES["base"],
                                  downloads=("model_url", "rendered_image_url")))
            gen_source = prompt_path
        else:
            params = {"prompt": prompt, **options}
            if negative:
                params["negative_prompt"] = negative
            steps.append(Step(vocabulary.TEXT_TO_MODEL, params, file_stem=STAGES["base"],
                              downloads=("model_url", "rendered_image_url")))
            gen_source = prompt_path
        if problems:
            raise _Problems(problems)

        gen_index = len(steps) - 1
        step_paths: list[tuple[dict, tuple]] = []  # per step: field -> key path, and the section path
        if text_to_image:
            step_paths.append(({"prompt": prompt_path, "negative_prompt": negative_path}, prompt_path))
        gen_origin = dict(origin)
        gen_origin.update({"prompt": prompt_path, "negative_prompt": negative_path, "input": gen_source,
                           "inputs": gen_source})
        step_paths.append((gen_origin, ("jobs", index, "options") if job.options else gen_source))

        parts = bool(options.get("generate_parts"))
        textured = not analysis_type and not parts and (options.get("texture") is not False or
                                                        bool(options.get("pbr")))
        face_limit = options.get("face_limit")
        kind_parts = parts
        model_idx = gen_index          # the latest model of the chain
        part_source = gen_index if parts else None          # latest step that carries parts
        part_convertible = gen_index if parts else None     # ... and convert accepts
        static_idx = gen_index         # latest step convert accepts
        texture_source = gen_index     # texture_model accepts generation / texture results
        post = self.post_tables(index, job)
        if analysis_type:
            post = {}  # the job's own post-steps were refused; the defaults' are for models

        def add(task_type: str, params: dict, stage: str, source: int, where: tuple, origin_map: dict,
                downloads=("model_url",)) -> int:
            steps.append(Step(task_type, params, input_from=source, file_stem=STAGES[stage],
                              downloads=downloads))
            step_paths.append((origin_map, where))
            return len(steps) - 1

        # texture (whole model)
        if "texture" in post:
            value, path = post["texture"]
            params, omap = self.texture_params(value, path, values, fail)
            idx = add(vocabulary.TEXTURE_MODEL, params, "textured_full", texture_source, path, omap,
                      ("model_url", "rendered_image_url"))
            textured = True
            model_idx = texture_source = static_idx = idx
            if parts:
                part_source = part_convertible = idx
        # segmentation
        if "segment" in post:
            value, path = post["segment"]
            params, omap = self.options_table(value, path)
            idx = add(vocabulary.MESH_SEGMENTATION, params, "segmented", model_idx, path, omap)
            model_idx = part_source = idx
            part_convertible = None
            kind_parts = True
        # smart low poly
        if "lowpoly" in post:
            value, path = post["lowpoly"]
            if isinstance(value, int) and not isinstance(value, bool):
                params, omap = {"face_limit": value}, {"face_limit": path}
            else:
                params, omap = self.options_table(value, path)
            idx = add(vocabulary.HIGHPOLY_TO_LOWPOLY, params, "lowpoly", model_idx, path, omap)
            if params.get("face_limit"):
                face_limit = params["face_limit"]
            model_idx = static_idx = idx
            if part_source is not None:
                part_source = part_convertible = idx
        import_step = model_idx
        export_source = static_idx
        # rig + animations
        animations = post.get("animations")
        if "rig" in post or animations:
            value, path = post.get("rig", (True, ("jobs", index, "post", "animations")))
            if isinstance(value, str):
                params, omap = {"rig_type": value}, {"rig_type": path}
            else:
                params, omap = self.options_table(value, path)
            rig_idx = add(vocabulary.ANIMATE_RIG, params, "rigged", model_idx, path, omap)
            import_step = export_source = rig_idx
            kind_parts = False
            if animations:
                value, path = animations
                if isinstance(value, AnimationSpec):
                    params, omap = self.options_table(value, path)
                else:
                    params, omap = {"animations": _as_list(value)}, {"animations": path}
                anim_idx = add(vocabulary.ANIMATE_RETARGET, params, "animated", rig_idx, path, omap)
                import_step = export_source = anim_idx
        # whole-model exports
        labels_seen: dict[str, tuple] = {}
        if "export" in post:
            value, path = post["export"]
            for k, item in enumerate(_as_list(value)):
                item_path = path + (k,) if isinstance(value, list) else path
                params, omap, label = self.export_params(item, item_path, fail)
                if params is None:
                    continue
                if label in labels_seen:
                    fail(item_path, f"two exports would both be named {STAGES['export_full']}_{label}; "
                                    "give one a `name`")
                labels_seen[label] = item_path
                steps.append(Step(vocabulary.CONVERT_MODEL, params, input_from=export_source,
                                  file_stem=f"{STAGES['export_full']}_{label}"))
                step_paths.append((omap, item_path))

        # second phase: per-part texture / export
        part_work: list[PartWork] = []
        if "texture_parts" in post:
            value, path = post["texture_parts"]
            if part_source is None:
                fail(path, "texture_parts needs parts: set options.generate_parts = true (with "
                           "texture = false and pbr = false)")
            elif steps[part_source].task_type == vocabulary.MESH_SEGMENTATION or not parts:
                fail(path, "texture_parts retextures the parts of a generate_parts model; texturing "
                           "cannot take a segmentation result")
            else:
                params, omap = self.texture_params(value, path, values, fail, for_parts=True)
                prompt_template = params.pop("_prompt_template", None)
                only = value.parts if isinstance(value, PartTextureSpec) else None
                part_work.append(PartWork("texture", "textured_part", "", vocabulary.TEXTURE_MODEL, params,
                                          texture_source if parts else part_source,
                                          steps[texture_source].task_type, prompt=prompt_template,
                                          parts=only, downloads=("model_url", "rendered_image_url")))
                self.check_part_work(part_work[-1], path, omap, values, fail)
        if "export_parts" in post:
            value, path = post["export_parts"]
            if part_source is None:
                fail(path, "export_parts needs parts: set options.generate_parts = true or add "
                           "post.segment")
            elif part_convertible is None:
                fail(path, "export_parts cannot convert a segmentation result directly; add "
                           "post.lowpoly after the segmentation (its result keeps the parts)")
            else:
                labels: set[str] = set()
                for k, item in enumerate(_as_list(value)):
                    item_path = path + (k,) if isinstance(value, list) else path
                    params, omap, label = self.export_params(item, item_path, fail)
                    if params is None:
                        continue
                    if label in labels:
                        fail(item_path, f"two part exports would both be named "
                                        f"{STAGES['export_part']}_{label}; give one a `name`")
                    labels.add(label)
                    work = PartWork("export", "export_part", label, vocabulary.CONVERT_MODEL, params,
                                    part_convertible, steps[part_convertible].task_type)
                    part_work.append(work)
                    self.check_part_work(work, item_path, omap, values, fail)

        # Validate every step as it will be sent, with errors pointing at the batch file.
        estimates: list[tuple[str, float]] = []
        guess = False
        for number, step in enumerate(steps):
            omap, section = step_paths[number]
            params = dict(step.params)
            try:
                if step.input_from is not None:
                    chains.check_chain(step.task_type, steps[step.input_from].task_type)
                    params["input"] = PLACEHOLDER_TASK_ID
                request = request_models.build_request(step.task_type, **params)
            except errors.ValidationError as exc:
                fail(self.field_path(exc.field, omap, section), exc.message)
                continue
            estimate = costs.estimate_credits(request)
            guess = guess or estimate.is_guess
            estimates.append((step.task_type, estimate.credits))
        if problems:
            raise _Problems(problems)

        job_meta = {
            "kind": output if analysis_type else "parts" if kind_parts else "model",
            "prompt": prompt or "",
            "images": images_meta,
            "import_step": import_step,
            "batch": {"source": f"jobs[{index}]", "type": type_value, "fields": _plain(fields),
                      "variant": variant, "generation": generation, "project": self.spec.batch.project,
                      "tags": _plain(self.tags(index, job))},
        }
        identity = {"steps": [[s.task_type, _normalize_for_id(s.params), s.input_from, s.file_stem]
                              for s in steps],
                    "parts": [[w.kind, w.label, _normalize_for_id(w.params), w.prompt, w.parts]
                              for w in part_work]}
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
        job_id = f"tb-{digest[:16]}"

        naming_values = {
            **values, "project": self.spec.batch.project, "type": type_value, "name": name,
            "generation": f"gen{generation:02d}", "version": f"v{self.spec.batch.version + variant - 1:02d}",
            "variant": f"{variant:02d}", "seed": str(options.get("model_seed", "")),
            "index": f"{position + 1:03d}",
        }
        missing = [f for f in self.naming_fields if f not in naming_values]
        if missing:
            fail(("batch", "naming"), f"unknown field {{{missing[0]}}} in the naming template; use "
                                      f"{', '.join(sorted(naming_values))}")
            raise _Problems(problems)
        folder = safe_name(render(self.naming, naming_values), fallback=f"asset_{position + 1:03d}")

        qc = dict(QC_DEFAULTS)
        for table in (self.spec.qc, self.spec.defaults.qc, job.qc):
            if table is not None:
                qc.update({k: getattr(table, k) for k in table.model_fields_set})
        if qc["max_faces"] is None:
            qc["max_faces"] = face_limit
        if qc["max_vertices"] is None:
            qc["max_vertices"] = face_limit
        if qc["require_textures"] is None:
            qc["require_textures"] = textured
        if qc["min_parts"] is None:
            qc["min_parts"] = 2 if kind_parts else None
        if analysis_type:  # the mesh thresholds measure models (checked in check_analysis_job)
            qc = {key: qc[key] for key in ANALYSIS_QC_KEYS}

        job_meta["name"] = folder
        job_meta["asset_id"] = folder
        job_meta["qc"] = qc
        label = folder
        main = Job.new(label, steps, job_meta, job_id=job_id)
        for work in part_work:
            work.estimate = self.estimate_part(work)
        return AssetPlan(index=position, asset_id=folder, job=main, name=name, type=type_value,
                         prompt=prompt or "", source=f"jobs[{index}]", fields=_plain(fields), variant=variant,
                         generation=generation, seed=options.get("model_seed"),
                         tags=_plain(self.tags(index, job)), output=output, import_step=import_step, qc=qc,
                         part_work=part_work, estimate=sum(c for _, c in estimates),
                         estimate_is_guess=guess, step_estimates=estimates)

    def check_analysis_job(self, index: int, job: JobSpec, output: str, task_type: str, takes: set,
                           fail) -> None:
        """What a splat or depth job may not hold: model post-steps, mesh QC thresholds, and a seed
        or numbered variants where its request has no seed. Only the job's own keys are refused;
        those of [defaults] / [qc] are meant for the batch's models and are left out."""
        what = _OUTPUT_WORDS[output]
        label = vocabulary.task_label(task_type)
        for _value, path in self.post_tables(index, job).values():
            if path[0] == "jobs":
                fail(path, f"{path[-1]} post-processes a model, and output = \"{output}\" makes "
                           f"{what}: remove it, or set output = \"model\"")
        if job.qc is not None:
            for key in sorted(job.qc.model_fields_set - set(ANALYSIS_QC_KEYS)):
                fail(("jobs", index, "qc", key), f"qc.{key} measures meshes; {what} (output = "
                                                 f"\"{output}\") is checked for its result and its "
                                                 f"size only ({', '.join(ANALYSIS_QC_KEYS)})")
        if "model_seed" in takes:
            return
        seed, seed_path = self.merged(index, job, "seed")
        if seed is not None and seed_path[0] == "jobs":
            fail(seed_path, f"seed sets model_seed, and {label} (output = \"{output}\") takes no seed")
        variants, variants_path = self.merged(index, job, "variants")
        if isinstance(variants, int) and variants > 1:
            fail(variants_path, f"variants = {variants} would make {variants} identical results: {label} "
                                "takes no seed; give a list of option tables instead (e.g. "
                                "[{ process_res = 504 }, { process_res = 1008 }])")

    # -- helpers ------------------------------------------------------------------------------
    def tags(self, index: int, job: JobSpec):
        default = self.spec.defaults.tags
        own = job.tags
        if isinstance(default, dict) and isinstance(own, dict):
            return {**default, **own}
        if isinstance(default, list) and isinstance(own, list):
            return list(dict.fromkeys(default + own))
        return own if own is not None else default

    def file(self, value: str) -> str:
        """Local image paths are relative to the batch file; URLs, tokens and task ids stay."""
        if re.match(r"^(https?://|file_)", value) or re.fullmatch(r"[0-9a-fA-F-]{36}", value):
            return value
        path = Path(os.path.expanduser(value))
        if not path.is_absolute():
            path = self.base_dir / path
        return str(path.resolve())

    @staticmethod
    def field_path(field_name: Optional[str], omap: dict, section: tuple) -> tuple:
        if not field_name:
            return section
        head = re.split(r"[.\[]", field_name)[0]
        for key in (field_name, head):
            if key in omap and omap[key]:
                return omap[key]
        return section

    def options_table(self, value: Any, path: tuple) -> tuple[dict, dict]:
        if value is True or value is None:
            return {}, {}
        data = value.model_dump(exclude_none=True) if isinstance(value, BaseModel) else dict(value)
        return data, {k: path + (k,) for k in data}

    def texture_params(self, value: Any, path: tuple, values: dict, fail, for_parts: bool = False):
        params: dict[str, Any] = {}
        omap: dict[str, tuple] = {}
        prompt = image = style_image = None
        if isinstance(value, str):
            prompt = value
            omap["texture_prompt"] = path
        elif isinstance(value, TextureSpec):
            extra = dict(value.model_extra or {})
            prompt, image, style_image = value.prompt, value.image, value.style_image
            params.update(extra)
            omap.update({k: path + (k,) for k in extra})
            for key in ("prompt", "image", "style_image"):
                if getattr(value, key):
                    omap[f"texture_prompt.{'text' if key == 'prompt' else key}"] = path + (key,)
            omap.setdefault("texture_prompt", path)
        texture_prompt: dict[str, Any] = {}
        if prompt and for_parts:
            params["_prompt_template"] = prompt  # rendered per part ({part}) in part_jobs()
        elif prompt:
            texture_prompt["text"] = render(prompt, values)
        if image:
            texture_prompt["image"] = self.file(render(image, values))
        if style_image:
            texture_prompt["style_image"] = self.file(render(style_image, values))
        if texture_prompt:
            params["texture_prompt"] = texture_prompt
        return params, omap

    def export_params(self, item: Any, path: tuple, fail):
        if isinstance(item, str):
            params, omap, name = {"format": item}, {"format": path}, None
        else:
            data = item.model_dump(exclude_none=True)
            name = data.pop("name", None)
            params, omap = data, {k: path + (k,) for k in data}
        fmt = str(params.get("format", "")).upper()
        if fmt not in vocabulary.CONVERT_FORMATS:
            fail(path + (("format",) if not isinstance(item, str) else ()),
                 f"unknown export format '{params.get('format')}'; use one of "
                 f"{', '.join(vocabulary.CONVERT_FORMATS)}")
            return None, None, None
        params["format"] = fmt
        label = safe_name(fmt.lower() + (f"_{name}" if name else ""), fmt.lower(), 40)
        return params, omap, label

    def check_part_work(self, work: PartWork, path: tuple, omap: dict, values: dict, fail) -> None:
        params = dict(work.params)
        params["input"] = PLACEHOLDER_TASK_ID
        params["part_names"] = ["part"]
        if work.prompt:
            params.setdefault("texture_prompt", {})["text"] = render(work.prompt, {**values, "part": "part"})
        try:
            chains.check_chain(work.task_type, work.source_type)
            request_models.build_request(work.task_type, **params)
        except errors.ValidationError as exc:
            fail(self.field_path(exc.field, omap, path), exc.message)

    @staticmethod
    def estimate_part(work: PartWork) -> float:
        params = dict(work.params)
        params.update({"input": PLACEHOLDER_TASK_ID, "part_names": ["part"]})
        if work.prompt:
            params.setdefault("texture_prompt", {})["text"] = "part"
        try:
            request = request_models.build_request(work.task_type, **params)
            return costs.estimate_credits(request).credits
        except errors.ValidationError:
            return 0.0


def _not_an_option(key: str, output: str, task_type: str, takes: set) -> str:
    rule = (f"output = \"{output}\" ({vocabulary.task_label(task_type)}) takes only: "
            f"{', '.join(sorted(takes)) or 'no options'}")
    if key in MODEL_OPTIONS:
        return f"'{key}' is an option of models; {rule} (set output = \"model\" for a model)"
    return f"'{key}' is not an option here; {rule}"


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str)) if value is not None else None


# =========================================================================== second phase


def part_jobs(plan: AssetPlan, job_record: dict, part_names: dict[int, list[str]],
              out_dir: str) -> list[Job]:
    """The second-phase jobs of an asset whose main chain finished: one per part and per kind
    of part work. ``part_names`` maps a main-chain step index to the part names of its model.
    Ids derive from the main job's, so a rerun maps them to the same jobs."""
    jobs = []
    steps = job_record["steps"]
    fields = {k: str(v) for k, v in (plan.fields or {}).items()}
    for work in plan.part_work:
        source = steps[work.source_step]
        if not source.get("task_id"):
            continue
        for number, part in enumerate(part_names.get(work.source_step) or [], start=1):
            if work.parts is not None and part not in work.parts:
                continue
            stem = part_stem(work.stage, number, part, work.label)
            params = copy.deepcopy(work.params)
            params["input"] = source["task_id"]
            params["part_names"] = [part]
            if work.prompt:
                params.setdefault("texture_prompt", {})["text"] = render(work.prompt, {**fields, "part": part})
            meta = {"name": f"{plan.asset_id} {stem}", "asset_id": plan.asset_id, "no_import": True,
                    "source_task_id": source["task_id"], "source_type": source["task_type"],
                    "batch_parent": plan.job_id, "part_name": part, "part_index": number,
                    "part_work": work.kind, "chain": [f"{source['task_type']}:{source['task_id']}"]}
            job = Job.new(f"{plan.asset_id} {stem}", [Step(work.task_type, params, file_stem=stem,
                                                            downloads=work.downloads)],
                          meta, job_id=f"{plan.job_id}-{stem}"[:120])
            job.out_dir = out_dir
            jobs.append(job)
    return jobs


def unknown_parts(plan: AssetPlan, part_names: dict[int, list[str]]) -> list[tuple[PartWork, list[str], list[str]]]:
    """Per-part work naming parts the finished model does not have: (work, unknown names, the
    model's real part names). Checked before any per-part request, so they cost nothing; the
    batch runner reports each as a failed part job instead of skipping it silently."""
    found = []
    for work in plan.part_work:
        if work.parts is None:
            continue
        real = list(part_names.get(work.source_step) or [])
        missing = [name for name in work.parts if name not in real]
        if missing:
            found.append((work, missing, real))
    return found


def step_stem(step: dict, index: int) -> str:
    return step.get("file_stem") or f"{index + 1:02d}_{step.get('task_type', 'step')}"
