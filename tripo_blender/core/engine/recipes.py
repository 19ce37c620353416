"""Common jobs as chains of steps, shared by the panel, the scripting API and the batch runner."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..protocol import request_models
from .jobs import ANALYSIS_KINDS, Job, Step


def asset_label(text: str, fallback: str = "Tripo asset") -> str:
    """A short readable name from a prompt or a file name."""
    text = re.sub(r"\s+", " ", text or "").strip().strip(".,;:")
    return (text[:48].rstrip() or fallback)


def clean_options(options: dict | None) -> dict:
    """Drops unset options so the request carries only what the user chose."""
    return {k: v for k, v in (options or {}).items() if v is not None and v != ""}


def generation_job(*, prompt: str | None = None, image: str | None = None,
                   multiview: list[str | None] | None = None, text_to_image: bool = False,
                   options: dict | None = None, name: str | None = None,
                   post_steps: list[Step] | None = None, meta: dict | None = None) -> Job:
    """text -> model, image -> model, multiview -> model, or text -> image -> model.

    `image` / `multiview` entries may be local file paths (uploaded at create time), file tokens
    or URLs; multiview is [front, left, back, right] with None for a missing view.
    """
    options = clean_options(options)
    steps: list[Step]
    images: list[str] = []
    if multiview is not None:
        steps = [Step("multiview_to_model", {"inputs": list(multiview), **options})]
        images = [os.path.basename(p) for p in multiview if p]
        label = name or asset_label(prompt or "", "Multiview model")
    elif image is not None:
        steps = [Step("image_to_model", {"input": image, **options})]
        images = [os.path.basename(image)]
        label = name or asset_label(prompt or os.path.splitext(os.path.basename(image))[0])
    elif text_to_image:
        image_options = {k: options[k] for k in ("negative_prompt",) if k in options}
        steps = [Step("text_to_image", {"prompt": prompt, **image_options}, downloads=("generated_image_url",)),
                 Step("image_to_model", {k: v for k, v in options.items() if k != "negative_prompt"},
                      input_from=0)]
        label = name or asset_label(prompt)
    else:
        steps = [Step("text_to_model", {"prompt": prompt, **options})]
        label = name or asset_label(prompt)
    steps += post_steps or []
    kind = "parts" if options.get("generate_parts") else "model"
    job_meta = {"name": label, "prompt": prompt or "", "images": images, "kind": kind, **(meta or {})}
    return Job.new(label, steps, job_meta)


def chained_job(task_type: str, source_task_id: str, params: dict | None = None, *,
                source_type: str | None = None, label: str, meta: dict | None = None,
                downloads: tuple[str, ...] = ("model_url", "rendered_image_url")) -> Job:
    """One post-processing task on an existing task (texture, segment, rig, convert, ...)."""
    step = Step(task_type, {"input": source_task_id, **clean_options(params)}, downloads=downloads)
    job = Job.new(label, [step], {"name": label, "source_task_id": source_task_id,
                                  "source_type": source_type or "", **(meta or {})})
    return job


def analysis_job(kind: str, image: str, *, options: dict | None = None, name: str | None = None,
                 prompt: str | None = None, meta: dict | None = None) -> Job:
    """The job of an image-to-splat ("splat") or image-to-depth ("depth") request; `image` is a
    local file (uploaded at create time), a file token or a URL. The server's defaults are sent
    (depth kind and resolution), so no result depends on them."""
    if kind not in ANALYSIS_KINDS:
        raise ValueError(f"unknown image analysis kind {kind!r}; one of {', '.join(ANALYSIS_KINDS)}")
    task_type, output = ANALYSIS_KINDS[kind]
    params = {"input": image, **analysis_defaults(task_type), **clean_options(options)}
    label = name or f"{asset_label(prompt or Path(image).stem)} {kind}"
    job_meta = {"name": label, "prompt": prompt or "", "images": [os.path.basename(image)],
                "kind": kind, **(meta or {})}
    return Job.new(label, [Step(task_type, params, downloads=(output,))], job_meta)


def analysis_defaults(task_type: str) -> dict:
    """What an image analysis request sends when the user chose nothing: the server's documented
    defaults (the depth kind and resolution), so no result depends on them."""
    return dict(request_models.request_class(task_type).SERVER_DEFAULTS)
