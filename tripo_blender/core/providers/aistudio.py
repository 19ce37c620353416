"""3D AI Studio provider: Tripo models bought through 3D AI Studio's API (its published docs).

Wire facts (and the choices made where the published docs leave gaps)
--------------------------------------------------------------------
- Base ``https://api.3daistudio.com``, ``Authorization: Bearer KEY``. Any non-empty key is
  sent (3D AI Studio keys have no documented prefix); the server says 401 INVALID_API_KEY.
- Generation: ``POST /v1/3d-models/tripo/{text-to-3d,image-to-3d,multiview-to-3d}/`` with a
  JSON body, answered ``{"task_id", "created_at"}``. The model version is a route suffix:
  ``v3.1-*`` → ``.../3.1/``; ``v3.0-*`` → no suffix (3.0 is the documented default). Other
  versions are refused before sending: P1 has a price in 3D AI Studio's table but no
  documented route, v2.5 is not offered there.
- Images: a URL goes as ``image_url``, a local file inline as a base64 data URI in ``image``
  (exactly one of the two). Multiview: ``images`` = 2–4 objects, one per filled slot of our
  ``[front, left, back, right]``, in that order (3D AI Studio has no view slots, so which
  angle each image shows is not transmitted). Inline images are capped at
  :data:`MAX_INLINE_IMAGE_BYTES` each (no upload route exists; a larger image needs a URL).
- Texturing / segmentation / convert (``/v1/3d-models/tripo/{texture-model,
  mesh-segmentation,convert-model}/``): 3D AI Studio's pages document the input as a model
  file upload ``model`` or a public ``model_url`` (not a task id), sent as multipart form
  data (their examples use ``curl -F``). So our ``input``: a task id of this provider is
  resolved to its current model URL (from the last poll, or one status request), an http(s)
  URL goes as ``model_url``, a local model file is uploaded as ``model``. Tripo file tokens
  (``file_...``) mean nothing here and are refused.
- Options 3D AI Studio does not document are refused up front with a reason
  (:func:`unsupported_params`), never silently dropped: e.g. ``part_names`` for texturing,
  ``model_seed``/``image_seed``/``orientation`` for generation, the texture/segmentation
  model versions. The UI asks :mod:`.capabilities` for the same reasons without a network call.
- Status: ``GET /v1/generation-request/<id>/status/`` → ``PENDING | IN_PROGRESS | FINISHED |
  FAILED``, ``progress``, ``failure_reason``, ``results: [{asset | asset_url, asset_type,
  metadata}]``, normalised into :class:`~.records.Task` (``3D_MODEL`` → ``output.model_url``, an
  image result → ``output.rendered_image_url``). Results expire 24 h after completion.
- No batch status route: :meth:`AIStudioProvider.poll_tasks` asks for each task in turn.
- Balance: ``GET /account/user/wallet/`` → ``{"balance": "150.00"}`` (a string). The
  getting-started page names ``/user/wallet/`` instead; on 404 that path is tried once and
  remembered.
- Errors: 400 VALIDATION_FAILED → :class:`BadRequest`, 401 INVALID_API_KEY →
  :class:`AuthenticationError`, 402 INSUFFICIENT_CREDITS → :class:`InsufficientCredits`,
  429 RATE_LIMITED → :class:`RateLimited`. The body's shape is not documented: ``{"error":
  {"code", "message"}}``, ``{"code", "message"}``, ``{"error": "CODE", "message"}`` and DRF's
  ``{"detail"}`` are all read, codes case-insensitively.
- Credits are deducted when a request is accepted and refunded when the task fails.

Rate limit
----------
3D AI Studio's default limit is about 3 requests a minute per account, for every route
(creates, status, wallet). A :class:`RequestBudget` shared by every provider object of one
key and base URL (the job engine makes one per thread) keeps at most ``requests_per_minute``
requests in any 60 s window (a token bucket whose spent tokens come back one window later:
compliant whatever window the server counts with). A 429 pauses the budget for
``Retry-After`` seconds. Configure it with ``requests_per_minute=`` or the environment
variable ``AISTUDIO_REQUESTS_PER_MINUTE`` (3D AI Studio lets accounts raise the limit).

Consequences: a create or a balance query finding the budget empty raises
:class:`RateLimited` with ``retry_after`` at once, without sending anything (the job engine
queues and resubmits; nothing was billed). Polling spends what the budget allows, the least
recently polled task first, and paces each task to about ``60 / rpm × running tasks``
seconds; with the default 3/min a finished task is noticed up to ~20 s late per running
task, and a batch of N jobs takes at least ``(N creates + N polls) / 3`` minutes.

Unknown create outcomes
-----------------------
There is no task listing to look a lost create up in, so :meth:`reconcile_create` cannot
prove that nothing was created: it raises :class:`CreateOutcomeUnknown` and the job engine
asks the user (resubmitting may bill twice). Creates that certainly never left the machine
(connection refused, DNS, connect timeout) are retried, like the Tripo provider does.

No ``bpy`` here (see ``core/__init__``).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import mimetypes
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Union
from urllib.parse import quote, urlsplit

import requests

from ..protocol import inputs, records, request_models, vocabulary
from ..costs import PUBLISHED_SOURCE, CostEstimate
from ..costs import estimate_credits as _tripo_table_estimate
from .download import DEFAULT_MAX_BYTES, EXPIRED_STATUSES, download_file
from ..protocol.errors import (
    AuthenticationError,
    BadRequest,
    CreateOutcomeUnknown,
    DownloadError,
    FeatureUnavailable,
    InsufficientCredits,
    NetworkError,
    PermissionDenied,
    ProviderResponseError,
    RateLimited,
    ServerError,
    TaskNotFound,
    TripoError,
    ValidationError,
    parse_retry_after,
)
from .http import (
    ProxyConfig,
    RetryPolicy,
    ThreadSessions,
    call_with_retry,
    check_base_url,
    is_retryable_read_error,
    network_error_from,
    redact_url,
)
from .create import send_create
from .provider import Balance, PollResult, Provider

log = logging.getLogger(__name__)

__all__ = [
    "AIStudioProvider",
    "RequestBudget",
    "DEFAULT_BASE_URL",
    "DEFAULT_REQUESTS_PER_MINUTE",
    "RATE_ENV",
    "PROVIDER_NAME",
    "supports",
    "unsupported_params",
    "estimate_credits",
    "task_from_status",
    "error_from_answer",
    "generation_route",
]

PROVIDER_NAME = "3daistudio"
DEFAULT_BASE_URL = "https://api.3daistudio.com"
DEFAULT_REQUESTS_PER_MINUTE = 3
RATE_ENV = "AISTUDIO_REQUESTS_PER_MINUTE"
RATE_WINDOW_SECONDS = 60.0
#: Inline (base64) images are capped: there is no upload route, larger images need a URL.
MAX_INLINE_IMAGE_BYTES = 10 * 1024 * 1024
#: How long a model URL seen while polling is reused as a chained step's ``model_url``.
SOURCE_URL_MAX_AGE = 600.0
RESULT_LIFETIME_HOURS = 24

WALLET_PATHS = ("/account/user/wallet/", "/user/wallet/")
STATUS_PATH = "/v1/generation-request/{task_id}/status/"
_GENERATION_ROUTES = {
    vocabulary.TEXT_TO_MODEL: "/v1/3d-models/tripo/text-to-3d/",
    vocabulary.IMAGE_TO_MODEL: "/v1/3d-models/tripo/image-to-3d/",
    vocabulary.MULTIVIEW_TO_MODEL: "/v1/3d-models/tripo/multiview-to-3d/",
}
_UTILITY_ROUTES = {
    vocabulary.TEXTURE_MODEL: "/v1/3d-models/tripo/texture-model/",
    vocabulary.MESH_SEGMENTATION: "/v1/3d-models/tripo/mesh-segmentation/",
    vocabulary.CONVERT_MODEL: "/v1/3d-models/tripo/convert-model/",
}
SUPPORTED_TASK_TYPES = tuple(_GENERATION_ROUTES) + tuple(_UTILITY_ROUTES)

# Documented fields, by request. Anything else our request model can carry is refused.
_GENERATION_FIELDS = ("prompt", "negative_prompt", "texture", "pbr", "texture_quality",
                      "texture_seed", "geometry_quality", "face_limit", "quad", "smart_low_poly",
                      "generate_parts", "export_uv", "auto_size", "compress")
_IMAGE_FIELDS = ("texture_alignment", "enable_image_autofix")
_MULTIVIEW_FIELDS = ("texture_alignment",)
_TEXTURE_FIELDS = ("texture", "pbr", "texture_quality", "texture_alignment", "texture_seed",
                   "compress", "bake")
# fbx_preset appears in 3D AI Studio's convert example; export_vertex_colors,
# export_orientation and animate_in_place are Tripo convert options assumed to pass through
# (the published parameter table is cut short there); part_names is refused.
_CONVERT_FIELDS = ("format", "quad", "force_symmetry", "face_limit", "flatten_bottom",
                   "flatten_bottom_threshold", "pivot_to_center_bottom", "scale_factor",
                   "texture_size", "texture_format", "bake", "pack_uv", "with_animation",
                   "fbx_preset", "export_vertex_colors", "export_orientation",
                   "animate_in_place")
CONVERT_MAX_TEXTURE_SIZE = 4096

_IMAGE_GENERATION = (vocabulary.TEXT_TO_IMAGE, vocabulary.GENERATE_IMAGE,
                     vocabulary.GENERATE_MULTIVIEW_IMAGE, vocabulary.EDIT_MULTIVIEW_IMAGE)
_RIGGING = (vocabulary.ANIMATE_PRERIGCHECK, vocabulary.ANIMATE_RIG, vocabulary.ANIMATE_RETARGET)
_UNSUPPORTED_REASONS: dict[str, str] = {
    **{task_type: "3D AI Studio sells Tripo's 3D generation only; Tripo's image generation "
                  "is not offered there." for task_type in _IMAGE_GENERATION},
    **{task_type: "3D AI Studio does not offer Tripo's rigging and animation (rig check, rig, "
                  "animation retarget)." for task_type in _RIGGING},
    vocabulary.MESH_COMPLETION: "3D AI Studio does not offer Tripo's part completion.",
    vocabulary.HIGHPOLY_TO_LOWPOLY: "3D AI Studio has no separate smart low poly step; use the Smart "
                                    "Low Poly option when generating instead.",
    vocabulary.MESH_UV: "3D AI Studio does not offer Tripo's UV unwrap step.",
    **{task_type: "3D AI Studio does not offer Tripo's image to splat and image to depth."
       for task_type in (vocabulary.IMAGE_TO_SPLAT, vocabulary.IMAGE_TO_DEPTH)},
    vocabulary.IMPORT_MODEL: "3D AI Studio has no import step: texturing, segmentation and conversion "
                             "take the model file or its URL directly.",
}
PART_NAMES_REASON = "3D AI Studio does not document part_names for texturing"


# =========================================================================== capabilities


def supports(task_type: str) -> Optional[str]:
    """None when 3D AI Studio offers ``task_type``, else why not (no network, no key)."""
    task_type = vocabulary.normalize_task_type(task_type) or ""
    if task_type in SUPPORTED_TASK_TYPES:
        return None
    if task_type in vocabulary.RETIRED_TASK_TYPES:
        return vocabulary.RETIRED_TASK_TYPES[task_type]
    if task_type in _UNSUPPORTED_REASONS:
        return _UNSUPPORTED_REASONS[task_type]
    return f"3D AI Studio has no task type '{task_type}'."


def _set(params: Mapping[str, Any], name: str) -> bool:
    value = params.get(name)
    return value is not None and value != "" and value != []


def _version_reason(model: Any) -> Optional[str]:
    if model is None:
        return None
    text = str(model)
    if text.startswith(("v3.0", "v3.1")):
        return None
    if text.upper().startswith("P1"):
        return ("3D AI Studio lists prices for Tripo P1 but documents no route for it; choose "
                "v3.0 or v3.1.")
    return f"3D AI Studio offers Tripo v3.0 and v3.1 only (not {text})."


def _input_reason(value: Any, field: str, what: str, *, task_ids: bool) -> Optional[str]:
    """Reason an input value cannot be sent to 3D AI Studio (None: it can)."""
    if not isinstance(value, str) or not value.strip():
        return None  # missing inputs are the request validation's business
    try:
        kind = inputs.classify_input(value, field=field)
    except ValidationError:
        return None
    if kind is inputs.InputKind.FILE_TOKEN:
        return (f"{field}: Tripo file tokens mean nothing to 3D AI Studio; give {what} as a "
                "local file or an http(s) URL.")
    if kind is inputs.InputKind.TASK_ID and not task_ids:
        return (f"{field}: 3D AI Studio cannot take {what} from another task (Tripo's image "
                "generation is not offered there); give a local file or an http(s) URL.")
    return None


def unsupported_params(task_type: str, params: Optional[Mapping[str, Any]] = None
                       ) -> Optional[str]:
    """Why 3D AI Studio cannot run ``task_type`` with ``params`` (a plain dict of our request
    options, None = not set), or None. No network, no validation of the values themselves."""
    reason = supports(task_type)
    if reason:
        return reason
    task_type = vocabulary.normalize_task_type(task_type) or ""
    p = dict(params or {})
    problems: list[str] = []
    if task_type in _GENERATION_ROUTES:
        version = _version_reason(p.get("model"))
        if version:
            problems.append(version)
        for name, label in (("model_seed", "a model seed"), ("image_seed", "an image seed"),
                            ("orientation", "the orientation option")):
            if _set(p, name):
                problems.append(f"3D AI Studio does not document {label} ({name}) for Tripo "
                                "generation.")
        if task_type == vocabulary.MULTIVIEW_TO_MODEL:
            if _set(p, "enable_image_autofix"):
                problems.append("3D AI Studio documents enable_image_autofix for single "
                                "images only, not for multiview.")
            if _set(p, "input") and not _set(p, "inputs"):
                problems.append("3D AI Studio cannot take the views from a multiview image "
                                "task; give the view images as files or URLs.")
            for index, view in enumerate(p.get("inputs") or []):
                reason = _input_reason(view, f"inputs[{index}]", "a view image", task_ids=False)
                if reason:
                    problems.append(reason)
                    break
        if task_type == vocabulary.IMAGE_TO_MODEL:
            reason = _input_reason(p.get("input"), "input", "the image", task_ids=False)
            if reason:
                problems.append(reason)
    elif task_type == vocabulary.TEXTURE_MODEL:
        if _set(p, "part_names"):
            problems.append(PART_NAMES_REASON + "; it retextures the whole model.")
        if _set(p, "model"):
            problems.append("3D AI Studio does not let you choose the texture model version.")
        if _set(p, "model_seed"):
            problems.append("3D AI Studio does not document model_seed for texturing.")
        prompt = p.get("texture_prompt") or {}
        if isinstance(prompt, Mapping):
            if _set(prompt, "text") and _set(prompt, "image"):
                problems.append("3D AI Studio textures from a text prompt or a reference image, "
                                "not both at once.")
            for role in ("image", "style_image"):
                reason = _input_reason(prompt.get(role), f"texture_prompt.{role}",
                                       "the image", task_ids=False)
                if reason:
                    problems.append(reason)
        reason = _input_reason(p.get("input"), "input", "the model", task_ids=True)
        if reason:
            problems.append(reason)
    elif task_type == vocabulary.MESH_SEGMENTATION:
        for name in ("model", "segmentation_granularity", "split_by_connectivity", "ref_image"):
            if _set(p, name):
                problems.append(f"3D AI Studio's segmentation takes no options ({name} is not "
                                "documented).")
                break
        reason = _input_reason(p.get("input"), "input", "the model", task_ids=True)
        if reason:
            problems.append(reason)
    elif task_type == vocabulary.CONVERT_MODEL:
        if _set(p, "part_names"):
            problems.append("3D AI Studio does not document part_names for conversion; it "
                            "converts the whole model.")
        size = p.get("texture_size")
        if isinstance(size, (int, float)) and not isinstance(size, bool) \
                and size > CONVERT_MAX_TEXTURE_SIZE:
            problems.append(f"3D AI Studio converts with textures up to "
                            f"{CONVERT_MAX_TEXTURE_SIZE} px (texture_size is {size}).")
        if p.get("quad") and str(p.get("format") or "").upper() == "3MF":
            problems.append("3D AI Studio cannot quad-remesh a 3MF export.")
        reason = _input_reason(p.get("input"), "input", "the model", task_ids=True)
        if reason:
            problems.append(reason)
    return " ".join(problems) or None


# =========================================================================== costs


def _make_estimate(items: list[tuple[str, float]]) -> CostEstimate:
    return CostEstimate(credits=float(sum(v for _, v in items)), breakdown=items,
                        is_estimate=True, source=PUBLISHED_SOURCE, is_guess=False)


def estimate_credits(request: request_models.TaskRequest) -> CostEstimate:
    """Credits 3D AI Studio's published table gives for ``request`` (an estimate: the wallet
    is the truth). Raises :class:`FeatureUnavailable` for a type 3D AI Studio does not offer."""
    reason = supports(request.task_type)
    if reason:
        raise FeatureUnavailable(reason, reason=reason)
    if isinstance(request, request_models._GenerationRequest):
        p1 = request.is_p1
        base = {vocabulary.TEXT_TO_MODEL: 20.0, vocabulary.IMAGE_TO_MODEL: 40.0,
                vocabulary.MULTIVIEW_TO_MODEL: 40.0}
        items = [("base (P1)" if p1 else "base", base[request.task_type] + (40.0 if p1 else 0.0))]
        # Their surcharge applies when texture=true (the default); pbr alone costs nothing.
        if request.texture is not False and not request.generate_parts:
            quality = request.texture_quality or "standard"
            items.append((f"texture ({quality})", 40.0 if quality == "detailed" else 20.0))
        if not p1:
            if request.geometry_quality == "detailed":
                items.append(("detailed geometry", 40.0))
            if request.smart_low_poly:
                items.append(("smart low poly", 20.0))
            if request.generate_parts:
                items.append(("parts", 40.0))
            if request.quad:
                items.append(("quad", 10.0))
        return _make_estimate(items)
    # Texture model, convert and segmentation: the same published table as the Tripo estimate.
    return _make_estimate(list(_tripo_table_estimate(request).breakdown))


# =========================================================================== rate budget


class RequestBudget:
    """At most ``per_minute`` requests in any ``window`` seconds, plus pauses asked by the
    server (429 ``Retry-After``). Thread-safe; shared by the provider objects of one account."""

    def __init__(self, per_minute: float, window: float = RATE_WINDOW_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.window = float(window)
        self.per_minute = max(1, int(per_minute))
        self._spent: list[float] = []
        self._paused_until = 0.0

    def set_rate(self, per_minute: float) -> None:
        with self._lock:
            self.per_minute = max(1, int(per_minute))

    def _prune(self, now: float) -> None:
        cutoff = now - self.window
        while self._spent and self._spent[0] <= cutoff:
            self._spent.pop(0)

    def _wait_locked(self, now: float) -> float:
        self._prune(now)
        wait = max(0.0, self._paused_until - now)
        if len(self._spent) >= self.per_minute:
            wait = max(wait, self._spent[len(self._spent) - self.per_minute] + self.window - now)
        return wait

    def wait_time(self) -> float:
        """Seconds until a request may go out (0: now)."""
        with self._lock:
            return self._wait_locked(self._clock())

    def available(self) -> int:
        """Requests that may go out right now."""
        with self._lock:
            now = self._clock()
            if self._wait_locked(now) > 0 and self._paused_until > now:
                return 0
            return max(0, self.per_minute - len(self._spent))

    def try_acquire(self) -> bool:
        """Spends one request if one is available now."""
        with self._lock:
            now = self._clock()
            if self._wait_locked(now) > 0:
                return False
            self._spent.append(now)
            return True

    def acquire(self, max_wait: float, sleep: Callable[[float], None]) -> bool:
        """Spends one request, waiting up to ``max_wait`` seconds for it."""
        deadline = self._clock() + max(0.0, max_wait)
        while True:
            if self.try_acquire():
                return True
            wait = self.wait_time()
            if self._clock() + wait > deadline:
                return False
            sleep(max(0.01, wait))

    def pause(self, seconds: float) -> None:
        """No request for ``seconds`` (the server answered 429)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))

    def reset(self) -> None:
        with self._lock:
            self._spent.clear()
            self._paused_until = 0.0


_BUDGETS: dict[tuple[str, str], RequestBudget] = {}
_BUDGETS_LOCK = threading.Lock()


def shared_budget(base_url: str, api_key: str, per_minute: float) -> RequestBudget:
    """The budget of one account (base URL + key; the key itself is not kept, only a digest)."""
    digest = hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:16]
    with _BUDGETS_LOCK:
        budget = _BUDGETS.get((base_url, digest))
        if budget is None:
            budget = _BUDGETS[(base_url, digest)] = RequestBudget(per_minute)
        elif budget.per_minute != int(per_minute):
            budget.set_rate(per_minute)
        return budget


def requests_per_minute_from(environ: Mapping[str, str] = os.environ) -> int:
    text = (environ.get(RATE_ENV) or "").strip()
    if not text:
        return DEFAULT_REQUESTS_PER_MINUTE
    try:
        value = int(float(text))
    except ValueError:
        log.warning("%s=%r is not a number; using %d requests a minute", RATE_ENV, text,
                    DEFAULT_REQUESTS_PER_MINUTE)
        return DEFAULT_REQUESTS_PER_MINUTE
    return max(1, value)


# =========================================================================== answers


_CODE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _answer_fields(payload: Any) -> tuple[Optional[str], Optional[str], Any]:
    """(error code, message, details) from an error body of any of the plausible shapes."""
    if not isinstance(payload, Mapping):
        return None, None, None
    code: Any = None
    message: Any = None
    details: Any = payload.get("details")
    inner = payload.get("error")
    if isinstance(inner, Mapping):
        code = inner.get("code") or inner.get("type")
        message = inner.get("message") or inner.get("detail")
        details = inner.get("details", details)
    elif isinstance(inner, str):
        if _CODE_RE.match(inner.strip()):
            code = inner
        else:
            message = inner
    code = code or payload.get("code") or payload.get("error_code")
    message = message or payload.get("message") or payload.get("detail") \
        or payload.get("failure_reason")
    if isinstance(message, (list, dict)):
        message = str(message)
    code_text = str(code).strip().upper() if code not in (None, "") else None
    return code_text, (str(message).strip() if message else None), details


def _describe_details(details: Any) -> str:
    if isinstance(details, Mapping):
        parts = []
        for key, value in details.items():
            if isinstance(value, (list, tuple)):
                value = "; ".join(str(v) for v in value)
            parts.append(f"{key}: {value}")
        return ", ".join(parts)
    if isinstance(details, (list, tuple)):
        return "; ".join(str(v) for v in details)
    return ""


def error_from_answer(http_status: Optional[int], payload: Any,
                      headers: Optional[Mapping[str, Any]] = None, *,
                      not_found: type[TripoError] = BadRequest) -> TripoError:
    """Map an error answer of 3D AI Studio to a :class:`TripoError` with a message naming 3D AI
    Studio. ``not_found``: the class for 404 (a task query: :class:`TaskNotFound`)."""
    code, message, details = _answer_fields(payload)
    lowered = {str(k).lower(): v for k, v in dict(headers or {}).items()}
    retry_after = parse_retry_after(lowered.get("retry-after"))
    if retry_after is None and isinstance(payload, Mapping):
        for key in ("retry_after", "retryAfter"):
            holder = payload.get("error") if isinstance(payload.get("error"), Mapping) else payload
            if isinstance(holder, Mapping) and holder.get(key) is not None:
                retry_after = parse_retry_after(holder.get(key))
    request_id = lowered.get("x-request-id") or lowered.get("request-id")
    extra = _describe_details(details)
    if extra and message and extra not in message:
        message = f"{message} ({extra})"
    kw: dict[str, Any] = dict(code=code, http_status=http_status,
                              request_id=str(request_id) if request_id else None)

    if http_status == 401 or code in ("INVALID_API_KEY", "UNAUTHORIZED", "AUTHENTICATION_FAILED"):
        return AuthenticationError(
            f"3D AI Studio did not accept the API key{': ' + message if message else ''}",
            suggestion="Check the 3D AI Studio key in the add-on preferences "
                       "(or AISTUDIO_API_KEY)", **kw)
    if http_status == 402 or code == "INSUFFICIENT_CREDITS":
        return InsufficientCredits(
            f"Not enough 3D AI Studio credits{': ' + message if message else ''}",
            suggestion="Buy credits in the Wallet section of the 3D AI Studio dashboard, then "
                       "submit again", **kw)
    if http_status == 429 or code == "RATE_LIMITED":
        return RateLimited(
            f"3D AI Studio's rate limit was reached{': ' + message if message else ''}",
            retry_after=retry_after,
            suggestion="The add-on waits and retries; 3D AI Studio allows about 3 requests a "
                       "minute unless the account's limit was raised", **kw)
    if http_status == 400 or code == "VALIDATION_FAILED":
        return BadRequest(
            f"3D AI Studio refused the request as invalid{': ' + message if message else ''}",
            suggestion="Change the options mentioned and submit again", **kw)
    if http_status == 404:
        if not_found is TaskNotFound:
            return TaskNotFound(
                f"3D AI Studio does not know this task{': ' + message if message else ''}",
                suggestion="The id may be wrong, belong to another key, or its results "
                           "expired", **kw)
        return not_found(
            f"3D AI Studio has no such route{': ' + message if message else ''}", **kw)
    if http_status == 403:
        return PermissionDenied(
            f"3D AI Studio denied access{': ' + message if message else ''}", **kw)
    if http_status is not None and http_status >= 500:
        return ServerError(f"3D AI Studio had a server error (HTTP {http_status})"
                           f"{': ' + message if message else ''}", **kw)
    if http_status is not None and 400 <= http_status < 500:
        return BadRequest(f"3D AI Studio refused the request (HTTP {http_status})"
                          f"{': ' + message if message else ''}", **kw)
    return ProviderResponseError(
        f"3D AI Studio answered HTTP {http_status} with something the add-on cannot read", **kw)


# =========================================================================== status


_STATUS_WORDS: dict[str, records.TaskStatus] = {
    **dict.fromkeys(("PENDING", "QUEUED", "CREATED"), records.TaskStatus.QUEUED),
    **dict.fromkeys(("IN_PROGRESS", "RUNNING", "PROCESSING", "STARTED"), records.TaskStatus.RUNNING),
    **dict.fromkeys(("FINISHED", "SUCCESS", "SUCCEEDED", "COMPLETED"), records.TaskStatus.SUCCESS),
    **dict.fromkeys(("FAILED", "ERROR", "EXPIRED"), records.TaskStatus.FAILED),
    **dict.fromkeys(("CANCELLED", "CANCELED"), records.TaskStatus.CANCELLED),
}
_MODEL_SUFFIXES = (".glb", ".gltf", ".fbx", ".obj", ".stl", ".usdz", ".3mf", ".zip", ".ply")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass
class _Known:
    """What this process remembers of a task it created (the status answer carries none)."""

    task_type: str
    created_at: Optional[str]
    credits: Optional[float]
    body: dict
    created_mono: float = 0.0
    completed_at: Optional[str] = None


def _result_url(result: Mapping[str, Any]) -> Optional[str]:
    for key in ("asset", "asset_url", "url", "file_url"):
        value = result.get(key)
        if isinstance(value, str) and value.lower().startswith(("http://", "https://")):
            return value
    return None


def _is_model(asset_type: str, url: str) -> bool:
    if "MODEL" in asset_type or asset_type in ("3D", "MESH", "GLB"):
        return True
    return not asset_type and urlsplit(url).path.lower().endswith(_MODEL_SUFFIXES)


def _is_image(asset_type: str, url: str) -> bool:
    if any(word in asset_type for word in ("IMAGE", "PREVIEW", "THUMBNAIL", "RENDER")):
        return True
    return not asset_type and urlsplit(url).path.lower().endswith(_IMAGE_SUFFIXES)


def task_from_status(task_id: str, data: Any, *, task_type: Optional[str] = None,
                     created_at: Optional[str] = None, completed_at: Optional[str] = None,
                     credits: Optional[float] = None, body: Optional[dict] = None) -> records.Task:
    """A status answer as our normalised :class:`~.records.Task`. Never raises on odd values."""
    data = data if isinstance(data, Mapping) else {}
    word = str(data.get("status") or "").strip().upper()
    status = _STATUS_WORDS.get(word, records.TaskStatus.UNKNOWN)
    output: dict[str, Any] = {}
    results = data.get("results")
    if isinstance(results, Mapping):
        results = [results]
    assets = []
    for result in results if isinstance(results, list) else []:
        if not isinstance(result, Mapping):
            continue
        url = _result_url(result)
        if not url:
            continue
        asset_type = str(result.get("asset_type") or "").strip().upper()
        assets.append({"url": url, "asset_type": asset_type, "metadata": result.get("metadata")})
        if "model_url" not in output and _is_model(asset_type, url):
            output["model_url"] = url
        elif "rendered_image_url" not in output and _is_image(asset_type, url):
            output["rendered_image_url"] = url
        else:
            output[f"asset_{len(assets)}_url"] = url
    record: dict[str, Any] = {
        "task_id": task_id,
        "type": task_type,
        "status": status.value,
        "progress": 100 if status is records.TaskStatus.SUCCESS else data.get("progress"),
        "output": output,
        "input": dict(body or {}),
        "created_at": data.get("created_at") or created_at,
        "completed_at": data.get("completed_at") or data.get("finished_at") or completed_at,
        "provider": PROVIDER_NAME,
        "provider_status": word or None,
        "assets": assets,
    }
    if status is records.TaskStatus.SUCCESS:
        record["credits_consumed"] = credits
        if credits is not None:
            record["credits_source"] = PUBLISHED_SOURCE
    elif status is records.TaskStatus.FAILED:
        record["credits_consumed"] = 0.0  # failed generations are refunded
        reason = data.get("failure_reason") or data.get("error") or data.get("message")
        record["error_message"] = (str(reason) if reason else
                                   "3D AI Studio reported the task as failed (no reason given); "
                                   "its credits are refunded.")
    return records.Task.from_api(record, task_id=task_id)


# =========================================================================== the provider


def generation_route(request: request_models._GenerationRequest) -> str:
    """The create route of a generation request, with its version suffix."""
    route = _GENERATION_ROUTES[request.task_type]
    version = _version_reason(request.model)
    if version:
        raise FeatureUnavailable(version, reason=version)
    return route + "3.1/" if str(request.model).startswith("v3.1") else route


def _redact_body(body: Mapping[str, Any]) -> dict:
    """The body with inline images shortened (for logs, errors and task records)."""
    def redact(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("data:") and len(value) > 64:
            return f"{value[:value.find(',') + 1]}<{len(value)} characters>"
        if isinstance(value, list):
            return [redact(v) for v in value]
        if isinstance(value, Mapping):
            return {k: redact(v) for k, v in value.items()}
        return value
    return {k: redact(v) for k, v in body.items()}


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class _Wire:
    """One create as it goes on the wire."""

    route: str
    json: Optional[dict] = None
    form: Optional[list] = None  # [(field, value)] for multipart
    files: Optional[list] = None  # [(field, Path)] local files for multipart

    def described(self) -> dict:
        if self.json is not None:
            return _redact_body(self.json)
        out = {name: value for name, value in (self.form or [])}
        for name, path in self.files or []:
            out[name] = f"<file {Path(path).name}>"
        return out


class AIStudioProvider(Provider):
    """3D AI Studio's API for Tripo models (``https://api.3daistudio.com``).

    ``requests_per_minute`` (default: ``AISTUDIO_REQUESTS_PER_MINUTE`` or 3) sizes the shared
    :class:`RequestBudget`; ``budget`` replaces it (tests). ``max_rate_wait``: seconds a create,
    a balance query or a task query may wait for the budget before :class:`RateLimited`
    (default 0: hand back at once, the job engine queues). ``sleep``/``clock`` are injectable.
    """

    name = PROVIDER_NAME
    can_reconcile = False  # no task listing: a lost create can never be proved absent

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        proxy: Optional[ProxyConfig] = None,
        timeout: tuple[float, float] = (10, 60),
        sleep: Callable[[float], None] = time.sleep,
        *,
        requests_per_minute: Optional[float] = None,
        budget: Optional[RequestBudget] = None,
        max_rate_wait: float = 0.0,
        retry: RetryPolicy = RetryPolicy(),
        upload_timeout: tuple[float, float] = (10, 300),
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        key = api_key.strip() if isinstance(api_key, str) else ""
        if not key:
            raise ValidationError("No 3D AI Studio API key is set.", field="api_key",
                                  suggestion="Create a key in the API Keys section of the 3D AI "
                                             "Studio dashboard and enter it in the preferences")
        if any(c.isspace() for c in key) or not key.isascii():
            raise ValidationError("The 3D AI Studio API key looks damaged (spaces or line "
                                  "breaks); copy it again.", field="api_key")
        self._api_key = key
        self.base_url = check_base_url(base_url)
        self.proxy = proxy or ProxyConfig()
        self.timeout = timeout
        self.upload_timeout = upload_timeout
        self._sleep = sleep
        self._clock = clock
        self._monotonic = monotonic
        self.retry = retry
        self.max_rate_wait = max(0.0, float(max_rate_wait))
        rpm = requests_per_minute if requests_per_minute is not None else requests_per_minute_from()
        self.requests_per_minute = max(1, int(rpm))
        self.budget = budget or shared_budget(self.base_url, key, self.requests_per_minute)
        self._sessions = ThreadSessions(self.proxy)
        self._lock = threading.Lock()
        self._known: dict[str, _Known] = {}
        self._last_polled: dict[str, float] = {}
        self._seen: dict[str, tuple[float, records.Task]] = {}  # task id -> (monotonic, last state)
        self._wallet_path = WALLET_PATHS[0]

    def __repr__(self) -> str:
        return (f"AIStudioProvider(base_url={self.base_url!r}, proxy={self.proxy.describe()!r}, "
                f"requests_per_minute={self.requests_per_minute})")

    # ================================================================== plumbing

    def _thread_session(self, purpose: str) -> requests.Session:
        return self._sessions.get(purpose)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}

    def _spend(self, what: str, wait: float) -> None:
        """Takes one request from the budget or raises :class:`RateLimited` (nothing sent)."""
        if self.budget.acquire(wait, self._sleep):
            return
        retry_after = max(0.5, self.budget.wait_time())
        raise RateLimited(
            f"{what}: the 3D AI Studio request budget ({self.requests_per_minute} a minute) is "
            f"used up; next request in {retry_after:.0f} s",
            retry_after=retry_after, code="RATE_LIMITED",
            suggestion="Nothing was sent; the add-on tries again when the budget allows")

    def _send(self, method: str, path: str, *, what: str, wait: float = 0.0,
              json: Any = None, data: Any = None, files: Any = None,
              timeout: Any = None) -> requests.Response:
        """One request through the budget. Raises :class:`NetworkError` on connection
        problems (``sent`` tells whether it may have arrived)."""
        self._spend(what, wait)
        try:
            resp = self._thread_session("api").request(
                method, self.base_url + path, json=json, data=data, files=files,
                headers=self._headers(), timeout=timeout or self.timeout)
        except requests.RequestException as exc:
            log.debug("%s %s failed: %s", method, path, type(exc).__name__)
            raise network_error_from(exc, what="3D AI Studio") from exc
        log.debug("%s %s -> HTTP %s", method, path, resp.status_code)
        if resp.status_code == 429:
            retry = parse_retry_after(resp.headers.get("Retry-After"))
            self.budget.pause(retry if retry is not None else RATE_WINDOW_SECONDS
                              / self.requests_per_minute)
        return resp

    @staticmethod
    def _json(resp: requests.Response) -> Any:
        try:
            return resp.json()
        except ValueError:
            return None

    def _check(self, resp: requests.Response, *, not_found: type[TripoError] = BadRequest) -> Any:
        payload = self._json(resp)
        if not 200 <= resp.status_code < 300:
            raise error_from_answer(resp.status_code, payload, resp.headers, not_found=not_found)
        if not isinstance(payload, Mapping):
            raise ProviderResponseError(
                "3D AI Studio answered with something that is not the expected JSON.",
                http_status=resp.status_code)
        return payload

    def _read(self, method: str, path: str, *, what: str, wait: Optional[float] = None,
              not_found: type[TripoError] = BadRequest, retry: bool = True,
              retry_rate_limits: bool = True) -> Any:
        """A read through the budget; with ``retry`` repeated on retryable errors (429 only
        when ``retry_rate_limits``: in the job engine's worker a read must not sleep for the
        budget, it hands the :class:`RateLimited` back)."""
        wait = self.max_rate_wait if wait is None else wait

        def once() -> Any:
            return self._check(self._send(method, path, what=what, wait=wait),
                               not_found=not_found)
        if not retry:
            return once()

        def retryable(exc: BaseException) -> bool:
            if isinstance(exc, RateLimited) and not retry_rate_limits:
                return False
            return is_retryable_read_error(exc)
        return call_with_retry(once, policy=self.retry, sleep=self._sleep, what=what,
                               is_retryable=retryable)

    # ================================================================== capabilities

    def supports(self, task_type: str) -> Optional[str]:
        return supports(task_type)

    def unsupported_options(self, request: request_models.TaskRequest) -> Optional[str]:
        """Why this request cannot go to 3D AI Studio as it is (options or inputs it does not
        take), or None. :meth:`supports` cannot see parameters; this can."""
        return unsupported_params(request.task_type,
                                  request.model_dump(mode="python", exclude_none=True))

    def estimate(self, request: request_models.TaskRequest) -> CostEstimate:
        return estimate_credits(request)

    # ================================================================== wire mapping

    @staticmethod
    def _data_uri(path: str, field: str) -> str:
        fmt, _w, _h = inputs.validate_image_file(path, field=field)
        size = os.path.getsize(path)
        if size > MAX_INLINE_IMAGE_BYTES:
            raise ValidationError(
                f"{field}: '{os.path.basename(path)}' is {size / 1048576:.1f} MB; 3D AI Studio "
                f"takes local images inline (base64), up to {MAX_INLINE_IMAGE_BYTES // 1048576} "
                "MB each. Make it smaller or give it as an http(s) URL.", field=field)
        with open(path, "rb") as handle:
            encoded = base64.b64encode(handle.read()).decode("ascii")
        return f"data:image/{fmt};base64,{encoded}"

    def _image_entry(self, value: str, field: str) -> dict:
        kind = inputs.classify_input(value, field=field)
        if kind is inputs.InputKind.URL:
            return {"image_url": value.strip()}
        if kind is inputs.InputKind.LOCAL_FILE:
            return {"image": self._data_uri(value.strip(), field)}
        reason = _input_reason(value, field, "the image", task_ids=False)
        raise FeatureUnavailable(reason, reason=reason)

    def _model_input(self, value: str, resolve: Callable[[str], str]) -> tuple[list, list]:
        """(form fields, files) for a model input: model_url or a model file upload."""
        kind = inputs.classify_input(value, field="input")
        value = value.strip()
        if kind is inputs.InputKind.URL:
            return [("model_url", value)], []
        if kind is inputs.InputKind.LOCAL_FILE:
            inputs.validate_model_file(value, field="input")
            return [], [("model", Path(value))]
        if kind is inputs.InputKind.TASK_ID:
            return [("model_url", resolve(value))], []
        reason = _input_reason(value, "input", "the model", task_ids=True)
        raise FeatureUnavailable(reason, reason=reason)

    def wire(self, request: request_models.TaskRequest,
             resolve: Optional[Callable[[str], str]] = None) -> _Wire:
        """How ``request`` goes on the wire (route, JSON or multipart fields). ``resolve`` turns
        a task id of this provider into its model URL (default: ask 3D AI Studio)."""
        resolve = resolve or self._source_model_url
        fields = request.model_dump(mode="json", exclude_none=True)
        if isinstance(request, request_models._GenerationRequest):
            route = generation_route(request)
            allowed = _GENERATION_FIELDS + {
                vocabulary.IMAGE_TO_MODEL: _IMAGE_FIELDS, vocabulary.MULTIVIEW_TO_MODEL: _MULTIVIEW_FIELDS,
            }.get(request.task_type, ())
            body = {k: fields[k] for k in allowed if k in fields}
            if isinstance(request, request_models.ImageToModelRequest):
                body.update(self._image_entry(request.input, "input"))
            elif isinstance(request, request_models.MultiviewToModelRequest):
                views = [(i, v) for i, v in enumerate(request.inputs or []) if v is not None]
                if not 2 <= len(views) <= 4:
                    raise ValidationError("3D AI Studio needs 2 to 4 view images.",
                                          field="inputs")
                body["images"] = [self._image_entry(v, f"inputs[{i}] ({vocabulary.MULTIVIEW_SLOTS[i]} "
                                                       "view)") for i, v in views]
            return _Wire(route, json=body)
        route = _UTILITY_ROUTES[request.task_type]
        form, files = self._model_input(request.input, resolve)
        if isinstance(request, request_models.TextureModelRequest):
            form += [(k, _form_value(fields[k])) for k in _TEXTURE_FIELDS if k in fields]
            prompt = request.texture_prompt
            if prompt is not None:
                if prompt.text:
                    form.append(("prompt", prompt.text))
                for role, url_field in (("image", "image_url"), ("style_image", "style_image_url")):
                    value = getattr(prompt, role)
                    if not value:
                        continue
                    kind = inputs.classify_input(value, field=f"texture_prompt.{role}")
                    if kind is inputs.InputKind.URL:
                        form.append((url_field, value.strip()))
                    elif kind is inputs.InputKind.LOCAL_FILE:
                        inputs.validate_image_file(value, field=f"texture_prompt.{role}")
                        files.append((role, Path(value.strip())))
                    else:
                        reason = _input_reason(value, f"texture_prompt.{role}", "the image",
                                               task_ids=False)
                        raise FeatureUnavailable(reason, reason=reason)
        elif isinstance(request, request_models.ConvertModelRequest):
            form += [(k, _form_value(fields[k])) for k in _CONVERT_FIELDS if k in fields]
        return _Wire(route, form=form, files=files)

    def _source_model_url(self, task_id: str) -> str:
        """The current model URL of one of this provider's tasks (a chained step's input)."""
        with self._lock:
            seen = self._seen.get(task_id)
        if seen is not None and self._monotonic() - seen[0] < SOURCE_URL_MAX_AGE \
                and seen[1].is_success and seen[1].output.model_url:
            return seen[1].output.model_url
        task = self._status(task_id, what="source task query", wait=self.max_rate_wait,
                            retry=False)
        if not task.is_success:
            raise ValidationError(
                f"The source task {task_id} has not finished successfully on 3D AI Studio "
                f"(status: {task.status.value}).", field="input")
        if not task.output.model_url:
            raise ValidationError(
                f"The source task {task_id} has no model in its results (they expire "
                f"{RESULT_LIFETIME_HOURS} h after completion).", field="input")
        return task.output.model_url

    # ================================================================== create

    def create_task(self, request: request_models.TaskRequest) -> str:
        if not isinstance(request, request_models.TaskRequest):
            raise ValidationError("create_task needs a task request (see request_models.build_request).")
        reason = self.supports(request.task_type) or self.unsupported_options(request)
        if reason:
            raise FeatureUnavailable(reason, reason=reason)
        request_models.validate_request(request)
        wire = self.wire(request)
        label = vocabulary.task_label(request.task_type)
        described = wire.described()

        def lost_after_sending(exc: NetworkError, sent_at: float) -> CreateOutcomeUnknown:
            return CreateOutcomeUnknown(
                f"{label}: the connection to 3D AI Studio failed after the request was "
                "sent, so it is not known whether the task was created.",
                request=request, body=described, sent_at=sent_at, cause=exc)

        # Answers are read below, not raised by _post: only the connection is retried here.
        resp, sent_at = send_create(lambda: self._post(wire, label), label=label,
                                    retry=self.retry, sleep=self._sleep, clock=self._clock,
                                    lost_after_sending=lost_after_sending)
        status = resp.status_code
        payload = self._json(resp)
        if status >= 500 or (200 <= status < 300 and not isinstance(payload, Mapping)):
            raise CreateOutcomeUnknown(
                f"{label}: 3D AI Studio answered with an error or an unreadable answer (HTTP "
                f"{status}); the task may have been created.",
                request=request, body=described, sent_at=sent_at, http_status=status)
        if not 200 <= status < 300:
            raise error_from_answer(status, payload, resp.headers)  # refused: nothing created
        task_id = payload.get("task_id") or payload.get("id")
        if not isinstance(task_id, (str, int)) or not str(task_id).strip():
            raise CreateOutcomeUnknown(
                f"{label}: 3D AI Studio's answer has no task id; the task was probably created.",
                request=request, body=described, sent_at=sent_at, http_status=status)
        task_id = str(task_id).strip()
        created_at = payload.get("created_at")
        try:
            credits: Optional[float] = estimate_credits(request).credits
        except TripoError:
            credits = None
        with self._lock:
            self._known[task_id] = _Known(request.task_type, str(created_at) if created_at
                                          else None, credits, described, self._monotonic())
        log.info("Created %s task %s on 3D AI Studio", request.task_type, task_id)
        return task_id

    def _post(self, wire: _Wire, label: str) -> requests.Response:
        if wire.json is not None:
            return self._send("POST", wire.route, what=label, wait=self.max_rate_wait,
                              json=wire.json)
        handles = []
        try:
            parts: list = [(name, (None, value)) for name, value in wire.form or []]
            for name, path in wire.files or []:
                handle = open(path, "rb")
                handles.append(handle)
                mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                parts.append((name, (path.name, handle, mime)))
            return self._send("POST", wire.route, what=label, wait=self.max_rate_wait,
                              files=parts, timeout=self.upload_timeout if wire.files else None)
        finally:
            for handle in handles:
                handle.close()

    def reconcile_create(self, request: request_models.TaskRequest, sent_at: float, *,
                         exclude: Iterable[str] = ()) -> Optional[str]:
        """3D AI Studio has no task listing, so whether a lost create made a task cannot be
        checked: this always raises :class:`CreateOutcomeUnknown` (the job engine then asks the
        user whether to resubmit, which may bill twice). It sends nothing."""
        raise CreateOutcomeUnknown(
            "3D AI Studio has no task list to check whether the lost request created a task; "
            "look at the dashboard's history before resubmitting (that may bill twice).",
            request=request, sent_at=sent_at,
            suggestion="Resubmit only if the 3D AI Studio dashboard shows no new task")

    # ================================================================== reads

    def _status(self, task_id: str, *, what: str, wait: float, retry: bool) -> records.Task:
        path = STATUS_PATH.format(task_id=quote(task_id, safe=""))
        data = self._read("GET", path, what=what, wait=wait, not_found=TaskNotFound, retry=retry)
        return self._remember(task_id, data)

    def _remember(self, task_id: str, data: Any) -> records.Task:
        with self._lock:
            known = self._known.get(task_id)
            completed = known.completed_at if known else None
            word = str((data or {}).get("status") or "").upper() if isinstance(data, Mapping) \
                else ""
            if known is not None and completed is None and \
                    _STATUS_WORDS.get(word) in (records.TaskStatus.SUCCESS, records.TaskStatus.FAILED):
                # Not reported by 3D AI Studio: the time this client first saw it finished.
                completed = known.completed_at = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                               time.gmtime(self._clock()))
        task = task_from_status(
            task_id, data, task_type=known.task_type if known else None,
            created_at=known.created_at if known else None, completed_at=completed,
            credits=known.credits if known else None, body=known.body if known else None)
        with self._lock:
            now = self._monotonic()
            self._seen[task_id] = (now, task)
            if len(self._seen) > 2000:  # a long session: forget what is too old to reuse
                for old_id in [k for k, (when, _) in self._seen.items()
                               if now - when > SOURCE_URL_MAX_AGE]:
                    del self._seen[old_id]
        return task

    def get_task(self, task_id: str) -> records.Task:
        if not isinstance(task_id, str) or not task_id.strip():
            raise ValidationError("No task id given.", field="task_id")
        return self._status(task_id.strip(), what="task query", wait=self.max_rate_wait,
                            retry=True)

    def poll_tasks(self, task_ids: Iterable[str]) -> PollResult:
        """Asks for each task in turn (no batch route), as far as the request budget allows:
        the least recently polled first, each at most every ``60 / rpm × len(task_ids)``
        seconds. Ids not asked this time are in neither field of the result (ask again later).
        Raises only when nothing could be asked because of an error."""
        ids = list(dict.fromkeys(i.strip() for i in task_ids if isinstance(i, str) and i.strip()))
        result = PollResult()
        if not ids:
            return result
        now = self._monotonic()
        pace = self.budget.window / self.budget.per_minute * len(ids)
        with self._lock:
            # A task created here counts as "just looked at" when created: no request is spent
            # on a task that cannot have finished yet.
            last = {i: self._last_polled.get(i, self._known[i].created_mono if i in self._known
                                             else None) for i in ids}
            for known_id in [k for k in self._last_polled if k not in ids]:
                if now - self._last_polled[known_id] > 3600:
                    del self._last_polled[known_id]
        due = [i for i in ids if last[i] is None or now - last[i] >= pace]
        due.sort(key=lambda i: (last[i] is not None, last[i] or 0.0))
        first_error: Optional[TripoError] = None
        for task_id in due:
            if self.budget.wait_time() > 0:
                break
            with self._lock:
                self._last_polled[task_id] = self._monotonic()
            try:
                result.tasks[task_id] = self._status(task_id, what="task polling", wait=0.0,
                                                     retry=False)
            except TaskNotFound:
                result.missed.append(task_id)
            except RateLimited:
                break  # the budget is paused; the rest waits for the next round
            except AuthenticationError:
                raise
            except TripoError as exc:
                first_error = first_error or exc
                if isinstance(exc, NetworkError):
                    break  # the service is unreachable: no point asking for the others
        if first_error is not None and not result.tasks and not result.missed:
            raise first_error
        return result

    def balance(self) -> Balance:
        """Credits in the wallet (``{"balance": "150.00"}``: a string)."""
        paths = [self._wallet_path] + [p for p in WALLET_PATHS if p != self._wallet_path]
        last: Optional[TripoError] = None
        for path in paths:
            try:
                data = self._read("GET", path, what="balance query", not_found=TaskNotFound,
                                  retry_rate_limits=False)
            except TaskNotFound as exc:  # 404: this wallet route does not exist here
                last = exc
                continue
            self._wallet_path = path
            value = data.get("balance") if isinstance(data, Mapping) else None
            if value is None and isinstance(data.get("wallet"), Mapping):
                value = data["wallet"].get("balance")
            try:
                return Balance(balance=float(str(value).replace(",", "").strip()))
            except (TypeError, ValueError):
                raise ProviderResponseError(
                    "3D AI Studio's wallet answer has no readable balance.") from None
        raise ProviderResponseError("3D AI Studio has no wallet route at "
                                    f"{' or '.join(WALLET_PATHS)}.",
                                    http_status=getattr(last, "http_status", None))

    # ================================================================== files

    def upload_file(self, path: Union[str, os.PathLike]) -> str:
        raise FeatureUnavailable(
            "3D AI Studio has no upload route: local images are sent inline (base64) and local "
            "models as the request's file when a task is created.")

    def download(self, url: str, dest: Union[str, os.PathLike], *, task_id: Optional[str] = None,
                 output_key: str = "model_url", max_bytes: Optional[int] = DEFAULT_MAX_BYTES,
                 progress: Optional[Callable[[int, Optional[int]], None]] = None) -> Path:
        """Downloads an asset URL (never with the API key). An expired link is refreshed once by
        asking for the task's status again (3D AI Studio does not sign links afresh, so more
        tries would fetch the same link); results older than 24 h are gone for good."""
        refresh = None
        if task_id:
            old = urlsplit(url)

            def refresh() -> Optional[str]:
                task = self.get_task(task_id)
                if not task.is_success:
                    return None
                # The same file (its URL may well be the same: then it is tried once more).
                for candidate in task.output.urls().values():
                    if urlsplit(candidate).path == old.path:
                        return candidate
                return task.output.get_url(output_key)
        try:
            return download_file(self._thread_session("plain"), url, dest, max_bytes=max_bytes,
                                 refresh_url=refresh, timeout=self.timeout, sleep=self._sleep,
                                 progress=progress, max_refreshes=1)  # links are not re-signed
        except DownloadError as exc:
            if exc.http_status in EXPIRED_STATUSES or exc.http_status == 404:
                raise DownloadError(
                    f"The 3D AI Studio result is no longer available (HTTP {exc.http_status}): "
                    f"results expire {RESULT_LIFETIME_HOURS} h after the task finished.",
                    http_status=exc.http_status, url=redact_url(url),
                    suggestion="Run the task again to get a fresh result") from None
            raise

    # ================================================================== lifetime

    def close(self) -> None:
        self._sessions.close()
