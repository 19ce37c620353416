"""The 3D AI Studio flavour of the emulator: its wire format for Tripo models (its published docs), served
by the same server as apiv3 under its own paths (the two never overlap):

- `POST /v1/3d-models/tripo/{text-to-3d,image-to-3d,multiview-to-3d}/[3.0/|3.1/]` (JSON) and
  `POST /v1/3d-models/tripo/{texture-model,mesh-segmentation,convert-model}/` (multipart form,
  as 3D AI Studio's `curl -F` examples, or JSON) -> `{"task_id", "created_at"}`
- `GET /v1/generation-request/<task_id>/status/` -> `{"status": PENDING|IN_PROGRESS|FINISHED|
  FAILED, "progress", "failure_reason", "results": [{"asset", "asset_type", "metadata"}]}`
- `GET /account/user/wallet/` (and `/user/wallet/`, the path the getting-started page names)
  -> `{"balance": "150.00"}`
- `GET /aistudio/assets/<task_id>/<file>?expires=&sig=`: signed result downloads, valid for
  `result_ttl_seconds` (24 h) after the task finished; no auth, no rate limit.
- `/_emulator/aistudio/{config,tasks}`: test control (`POST /_emulator/reset` resets it too).

Behaviour: `Authorization: Bearer <key>` (any non-empty key, or exactly `api_key` when set:
401 INVALID_API_KEY); every authenticated API request counts against `rate_limit_per_minute`
in a sliding `rate_window_seconds` window (default 3 a minute; a request refused with 429
RATE_LIMITED + `Retry-After` is not counted); parameters are checked strictly (an unknown
field is a 400 VALIDATION_FAILED, so client mapping bugs show); credits (the published table)
are deducted when a request is accepted (402 INSUFFICIENT_CREDITS when short) and refunded
when the task fails. Tasks queue, then progress with time, and finish once their real assets
exist (production.py + the Blender asset factory), like the apiv3 tasks; a prompt containing
`blocked_word` fails (content filter) and one containing `failme` fails too, both refunded.
Generations report their preview image as a second result (`asset_type` "IMAGE"), an
assumption: the docs show only the `3D_MODEL` entry. Errors are `{"error": {"code",
"message", "details"}}` (the docs name the codes, not the body's shape). Faults (faults.py)
apply with the usual targets (`create`, `get` = status, `balance` = wallet, `download`, `any`)
and are answered in this format.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import os
import random
import shutil
import tempfile
import threading
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .errors import ApiError
from .images import IMAGE_FORMATS, MODEL_FORMATS, image_size, sniff_format, write_preview_png
from .production import Producer
from .state import FileSource, ImageRef, Task, iso

log = logging.getLogger(__name__)

GENERATION_ROUTES = {"text-to-3d": "text_to_model", "image-to-3d": "image_to_model",
                     "multiview-to-3d": "multiview_to_model"}
UTILITY_ROUTES = {"texture-model": "texture_model", "mesh-segmentation": "mesh_segmentation",
                  "convert-model": "convert_model"}
ROUTE_PREFIX = "/v1/3d-models/tripo/"
STATUS_PREFIX = "/v1/generation-request/"
WALLET_PATHS = ("/account/user/wallet/", "/user/wallet/")
ASSET_PREFIX = "/aistudio/assets/"
VERSIONS = ("3.0", "3.1")
MAX_BODY = 160 * 1024 * 1024  # multipart model uploads and inline images
FAIL_WORD = "failme"
MIN_IMAGE_SIDE, MAX_IMAGE_SIDE = 20, 6000

QUALITIES = ("standard", "detailed")
ALIGNMENTS = ("original_image", "geometry")
CONVERT_FORMATS = ("GLTF", "USDZ", "FBX", "OBJ", "STL", "3MF")
TEXTURE_FORMATS = ("BMP", "DPX", "HDR", "JPEG", "OPEN_EXR", "PNG", "TARGA", "TIFF", "WEBP")
FBX_PRESETS = ("blender", "mixamo", "3dsmax")
ORIENTATIONS = ("+x", "-x", "+y", "-y")
# Convert options and their defaults; any other value makes a conversion "advanced" (20).
CONVERT_DEFAULTS = {
    "quad": False, "force_symmetry": False, "face_limit": None, "flatten_bottom": False,
    "flatten_bottom_threshold": 0.01, "pivot_to_center_bottom": False, "scale_factor": 1.0,
    "texture_size": 4096, "texture_format": "JPEG", "bake": True, "pack_uv": False,
    "with_animation": True, "fbx_preset": "blender", "export_vertex_colors": False,
    "export_orientation": "+x", "animate_in_place": False,
}
STATUS_WORDS = {"queued": "PENDING", "running": "IN_PROGRESS", "success": "FINISHED",
                "failed": "FAILED"}
ASSET_TYPES = {"model": "3D_MODEL", "rendered_image": "IMAGE"}

CONTENT_TYPES = {".glb": "model/gltf-binary", ".png": "image/png", ".fbx": "application/octet-stream",
                 ".usdz": "model/vnd.usdz+zip", ".stl": "model/stl", ".3mf": "model/3mf",
                 ".obj": "model/obj", ".zip": "application/zip"}


def owns(path: str) -> bool:
    """Whether a request path belongs to this flavour."""
    return path.startswith(("/v1/", ASSET_PREFIX)) or path in WALLET_PATHS


def classify(path: str) -> tuple[str, str]:
    """(request-log kind, fault target) of one of this flavour's paths."""
    if path.startswith(ASSET_PREFIX):
        return "download", "download"
    if path.startswith(ROUTE_PREFIX):
        return "api", "create"
    if path.startswith(STATUS_PREFIX):
        return "api", "get"
    if path in WALLET_PATHS:
        return "api", "balance"
    return "api", "other"


class StudioError(Exception):
    """An error answer: HTTP status, 3D AI Studio error code, message, field details."""

    def __init__(self, status: int, code: str, message: str, *, details: dict | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details
        self.headers = dict(headers or {})


def invalid(message: str, field_name: str | None = None) -> StudioError:
    details = {field_name: [message]} if field_name else None
    return StudioError(400, "VALIDATION_FAILED", message, details=details)


_CODES_BY_STATUS = {400: "VALIDATION_FAILED", 401: "INVALID_API_KEY", 402: "INSUFFICIENT_CREDITS",
                    403: "FORBIDDEN", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
                    429: "RATE_LIMITED", 500: "INTERNAL_ERROR", 502: "BAD_GATEWAY",
                    503: "SERVICE_UNAVAILABLE"}


def from_api_error(exc: ApiError) -> StudioError:
    """An apiv3-style error (the injected faults) in this flavour's terms."""
    status = 429 if exc.code == 2000 else exc.status
    code = _CODES_BY_STATUS.get(status, "ERROR")
    if exc.code == 1005 and status == 403:
        code = "EXPIRED" if "expire" in exc.message else "FORBIDDEN"
    return StudioError(status, code, exc.message, headers=exc.headers)


@dataclass
class StudioConfig:
    """What `/_emulator/aistudio/config` can change (and `/_emulator/reset` restores)."""
    api_key: str | None = None  # None: any non-empty key
    rate_limit_per_minute: int = 3
    rate_window_seconds: float = 60.0
    balance: float = 1000.0
    task_seconds: float = 3.0
    task_seconds_max: float = 0.0
    result_ttl_seconds: float = 86400.0
    blocked_word: str = "forbidden"
    max_inline_image_bytes: int = 10 * 1024 * 1024

    def update(self, changes: dict) -> None:
        for key, value in changes.items():
            if key not in self.__dataclass_fields__:
                raise ValueError(f"unknown aistudio config key {key!r} "
                                 f"(one of {', '.join(self.__dataclass_fields__)})")
            current = getattr(self, key)
            if key == "api_key":
                if value is not None and not isinstance(value, str):
                    raise ValueError("api_key must be a string or null")
            elif key == "blocked_word":
                if not isinstance(value, str):
                    raise ValueError("blocked_word must be a string")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{key} must be a non-negative number")
            elif isinstance(current, int) and not isinstance(current, bool):
                value = int(value)
            else:
                value = float(value)
            setattr(self, key, value)

    def as_dict(self) -> dict:
        return {key: getattr(self, key) for key in self.__dataclass_fields__}


@dataclass
class Wallet:
    balance: float
    requests: deque = field(default_factory=deque)  # times of counted API requests


@dataclass
class Form:
    """A request's fields: `values` (JSON values or form strings), `files` (name -> (file
    name, bytes)), and whether it came as a form (strings to convert)."""
    values: dict
    files: dict
    is_form: bool

    def names(self) -> set:
        return set(self.values) | set(self.files)


# --- reading parameters -------------------------------------------------------------------------

class Reader:
    """Typed reads of a Form; every problem is a 400 VALIDATION_FAILED naming the field."""

    def __init__(self, form: Form):
        self.form = form
        self.values = form.values

    def _raw(self, key):
        value = self.values.get(key)
        return None if value == "" and self.form.is_form else value

    def string(self, key, *, required=False, max_len=None):
        value = self._raw(key)
        if value is None:
            if required:
                raise invalid(f"{key} is required.", key)
            return None
        if not isinstance(value, str):
            raise invalid(f"{key} must be a string.", key)
        if required and not value.strip():
            raise invalid(f"{key} must not be empty.", key)
        if max_len is not None and len(value) > max_len:
            raise invalid(f"{key} must be at most {max_len} characters (got {len(value)}).", key)
        return value

    def boolean(self, key, default):
        value = self._raw(key)
        if value is None:
            return default
        if self.form.is_form and isinstance(value, str):
            text = value.strip().lower()
            if text in ("true", "1", "yes", "on"):
                return True
            if text in ("false", "0", "no", "off"):
                return False
        if isinstance(value, bool):
            return value
        raise invalid(f"{key} must be true or false.", key)

    def integer(self, key, lo=None, hi=None):
        value = self._raw(key)
        if value is None:
            return None
        if self.form.is_form and isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise invalid(f"{key} must be an integer.", key) from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise invalid(f"{key} must be an integer.", key)
        value = int(value)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
            raise invalid(f"{key} must be {bounds} (got {value}).", key)
        return value

    def number(self, key, lo, hi, default):
        value = self._raw(key)
        if value is None:
            return default
        if self.form.is_form and isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise invalid(f"{key} must be a number.", key) from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise invalid(f"{key} must be a number.", key)
        if not lo <= value <= hi:
            raise invalid(f"{key} must be between {lo} and {hi} (got {value}).", key)
        return float(value)

    def choice(self, key, options, default=None, *, required=False, upper=False):
        value = self._raw(key)
        if value is None:
            if required:
                raise invalid(f"{key} is required (one of {', '.join(options)}).", key)
            return default
        if isinstance(value, str) and upper:
            value = value.upper()
        if value not in options:
            raise invalid(f"{key} must be one of {', '.join(options)} (got {value!r}).", key)
        return value


def _check_fields(form: Form, allowed: tuple) -> None:
    unknown = sorted(form.names() - set(allowed))
    if unknown:
        raise StudioError(400, "VALIDATION_FAILED",
                          f"Unknown field(s): {', '.join(unknown)}.",
                          details={name: ["Unknown field."] for name in unknown})


GENERATION_FIELDS = ("prompt", "negative_prompt", "texture", "pbr", "texture_quality",
                     "texture_seed", "geometry_quality", "face_limit", "quad", "smart_low_poly",
                     "generate_parts", "export_uv", "auto_size", "compress")
IMAGE_FIELDS = ("image", "image_url", "texture_alignment", "enable_image_autofix")
MULTIVIEW_FIELDS = ("images", "texture_alignment")
TEXTURE_FIELDS = ("model", "model_url", "prompt", "image_url", "image", "style_image_url",
                  "style_image", "texture_quality", "pbr", "texture", "texture_alignment",
                  "texture_seed", "compress", "bake")
SEGMENT_FIELDS = ("model", "model_url")
CONVERT_FIELDS = ("model", "model_url", "format", *CONVERT_DEFAULTS)


def generation_cost(kind: str, params: dict) -> int:
    total = {"text_to_model": 20, "image_to_model": 40, "multiview_to_model": 40}[kind]
    if params["texture"]:
        total += 40 if params["texture_quality"] == "detailed" else 20
    total += 40 if params["geometry_quality"] == "detailed" else 0
    total += 20 if params["smart_low_poly"] else 0
    total += 40 if params["generate_parts"] else 0
    total += 10 if params["quad"] else 0
    return total


def _sign(secret: bytes, path: str, expires: int) -> str:
    return hmac.new(secret, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()


class StudioApi:
    """State and behaviour of the 3D AI Studio flavour; transport-free like api.py.

    `make_response(status, body, content_type=..., headers=..., file=..., length=...)` builds
    the server's Response; `parse_multipart(content_type, body)` is the server's form parser.
    """

    def __init__(self, config: StudioConfig, factory, cache_dir: Path, *, make_response,
                 parse_multipart, factory_workers: int = 2):
        self.initial_config = replace(config)
        self.config = config
        self.cache_dir = Path(cache_dir)
        self.image_dir = self.cache_dir / "emulator-images"
        self.upload_dir = Path(tempfile.mkdtemp(prefix="aistudio-emulator-inputs-"))
        self.base_url = ""
        self._secret = os.urandom(32)
        self._make_response = make_response
        self._parse_multipart = parse_multipart
        self._lock = threading.RLock()
        self._producer = Producer(factory, self.image_dir)
        self._pool = ThreadPoolExecutor(max_workers=max(1, factory_workers),
                                        thread_name_prefix="aistudio-asset")
        self._reset_state()

    def _reset_state(self) -> None:
        self.tasks: dict[str, Task] = {}
        self.wallets: dict[str, Wallet] = {}
        self.generated: dict[str, str] = {}

    def reset(self) -> None:
        with self._lock:
            self._reset_state()
            self.config = replace(self.initial_config)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(self.upload_dir, ignore_errors=True)

    # --- answers ------------------------------------------------------------------------------

    def _json(self, status: int, payload, headers: dict | None = None):
        return self._make_response(status, json.dumps(payload).encode("utf-8"),
                                   headers=dict(headers or {}))

    def error_response(self, exc, request_id: str):
        """The answer for a StudioError, or an apiv3 ApiError (injected faults)."""
        if isinstance(exc, ApiError):
            exc = from_api_error(exc)
        body = {"error": {"code": exc.code, "message": exc.message}}
        if exc.details:
            body["error"]["details"] = exc.details
        body["request_id"] = request_id
        return self._json(exc.status, body, exc.headers)

    # --- the request cycle --------------------------------------------------------------------

    def handle(self, method: str, path: str, query: str, payload: bytes, headers):
        """Answers one request of this flavour (never raises for API errors)."""
        request_id = f"req_{os.urandom(8).hex()}"
        try:
            if path.startswith(ASSET_PREFIX):
                if method not in ("GET", "HEAD"):
                    raise StudioError(405, "METHOD_NOT_ALLOWED", "downloads are GET only")
                return self._download(path, query)
            key = self._authenticate(headers.get("Authorization"))
            self._count_request(key)
            return self._json(200, self._route(method, path, payload or b"",
                                               headers.get("Content-Type", ""), key))
        except StudioError as exc:
            return self.error_response(exc, request_id)

    def _authenticate(self, authorization: str | None) -> str:
        scheme, _, key = (authorization or "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise StudioError(401, "INVALID_API_KEY", "Missing API key: send Authorization: "
                                                      "Bearer YOUR_API_KEY.")
        expected = self.config.api_key
        if expected is not None and not hmac.compare_digest(key, expected):
            raise StudioError(401, "INVALID_API_KEY", "Invalid API key.")
        return key

    def _wallet(self, key: str) -> Wallet:
        if key not in self.wallets:
            self.wallets[key] = Wallet(balance=float(self.config.balance))
        return self.wallets[key]

    def _count_request(self, key: str) -> None:
        now = time.time()
        with self._lock:
            window = self._wallet(key).requests
            span = self.config.rate_window_seconds
            while window and window[0] <= now - span:
                window.popleft()
            limit = self.config.rate_limit_per_minute
            if len(window) >= limit:
                wait = max(1, math.ceil(window[0] + span - now))
                raise StudioError(429, "RATE_LIMITED",
                                  f"Rate limit exceeded: {limit} requests per minute.",
                                  headers={"Retry-After": str(wait)})
            window.append(now)

    def _route(self, method: str, path: str, payload: bytes, content_type: str, key: str):
        def expect(wanted: str) -> None:
            if method != wanted:
                raise StudioError(405, "METHOD_NOT_ALLOWED", f"{path} expects {wanted}.")

        if path in WALLET_PATHS:
            expect("GET")
            return self.wallet(key)
        if path.startswith(STATUS_PREFIX):
            parts = path[len(STATUS_PREFIX):].split("/")
            if len(parts) != 3 or parts[1] != "status" or parts[2] != "" or not parts[0]:
                raise StudioError(404, "NOT_FOUND", f"No route {path}.")
            expect("GET")
            return self.status(key, parts[0])
        if path.startswith(ROUTE_PREFIX):
            parts = path[len(ROUTE_PREFIX):].split("/")
            if parts and parts[-1] == "":
                parts = parts[:-1]
            else:
                parts = []  # no trailing slash: not a route (Django-style URLs)
            if len(parts) in (1, 2) and parts[0] in GENERATION_ROUTES and \
                    (len(parts) == 1 or parts[1] in VERSIONS):
                expect("POST")
                version = parts[1] if len(parts) == 2 else "3.0"
                return self.create(key, GENERATION_ROUTES[parts[0]], version, path,
                                   self._form(payload, content_type, allow_form=False))
            if len(parts) == 1 and parts[0] in UTILITY_ROUTES:
                expect("POST")
                return self.create(key, UTILITY_ROUTES[parts[0]], None, path,
                                   self._form(payload, content_type, allow_form=True))
        raise StudioError(404, "NOT_FOUND", f"No route {path}.")

    def _form(self, payload: bytes, content_type: str, *, allow_form: bool) -> Form:
        if content_type.lower().startswith("multipart/form-data"):
            if not allow_form:
                raise invalid("This endpoint takes a JSON body (Content-Type: application/json).")
            try:
                fields = self._parse_multipart(content_type, payload)
            except ApiError as exc:
                raise invalid(exc.message) from None
            values, files = {}, {}
            for name, (filename, content) in fields.items():
                if filename:
                    files[name] = (filename, content)
                else:
                    values[name] = content.decode("utf-8", "replace")
            return Form(values, files, True)
        if not payload:
            raise invalid("The request body is empty.")
        try:
            body = json.loads(payload)
        except ValueError:
            raise invalid("The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise invalid("The request body must be a JSON object.")
        return Form(body, {}, False)

    # --- creates ------------------------------------------------------------------------------

    def _duration(self) -> float:
        low, high = self.config.task_seconds, self.config.task_seconds_max
        return random.uniform(low, high) if high > low else low

    def create(self, key: str, kind: str, version: str | None, route: str, form: Form) -> dict:
        now = time.time()
        task = Task(task_id=str(uuid.uuid4()), key=key, type=kind, route=route,
                    input=self._describe(form), params={}, cost=0, created=now,
                    duration=self._duration())
        if kind in GENERATION_ROUTES.values():
            texts = self._generation(task, form)
            task.params["version"] = version
        elif kind == "texture_model":
            texts = self._texture(task, form)
        elif kind == "mesh_segmentation":
            _check_fields(form, SEGMENT_FIELDS)
            task.source = self._model_source(task, form)
            task.prompt = task.source.prompt
            task.cost, texts = 80, []
        else:
            texts = self._convert(task, form)
        lowered = [text.lower() for text in texts if text]
        blocked = self.config.blocked_word.lower()
        if blocked and any(blocked in text for text in lowered):
            task.planned_failure = (0, "The prompt was rejected by the content filter.")
        elif any(FAIL_WORD in text for text in lowered):
            task.planned_failure = (0, "The generation failed (the prompt asked for a failure).")
        with self._lock:
            self._settle(now)
            wallet = self._wallet(key)
            if wallet.balance < task.cost:
                raise StudioError(402, "INSUFFICIENT_CREDITS",
                                  f"Not enough credits: this request costs {task.cost}, the "
                                  f"balance is {wallet.balance:.2f}.")
            wallet.balance -= task.cost
            self.tasks[task.task_id] = task
        log.info("aistudio: created %s %s (cost %s)", kind, task.task_id, task.cost)
        if task.planned_failure is None:
            self._pool.submit(self._produce, task)
        return {"task_id": task.task_id, "created_at": iso(now)}

    @staticmethod
    def _describe(form: Form) -> dict:
        """The request as recorded for `/_emulator/aistudio/tasks` (inline images shortened)."""
        def shorten(value):
            if isinstance(value, str) and value.startswith("data:") and len(value) > 64:
                return value[:value.find(",") + 1] + f"<{len(value)} characters>"
            if isinstance(value, list):
                return [shorten(v) for v in value]
            if isinstance(value, dict):
                return {k: shorten(v) for k, v in value.items()}
            return value
        described = {k: shorten(v) for k, v in form.values.items()}
        for name, (filename, content) in form.files.items():
            described[name] = {"file": filename, "size": len(content)}
        described["_content"] = "multipart" if form.is_form else "json"
        return described

    def _generation(self, task: Task, form: Form) -> list:
        kind = task.type
        allowed = GENERATION_FIELDS + {"image_to_model": IMAGE_FIELDS,
                                       "multiview_to_model": MULTIVIEW_FIELDS}.get(kind, ())
        _check_fields(form, allowed)
        r = Reader(form)
        p = task.params
        prompt = r.string("prompt", required=kind == "text_to_model", max_len=1024)
        p["negative_prompt"] = r.string("negative_prompt", max_len=1024)
        p["texture"] = r.boolean("texture", True)
        p["pbr"] = r.boolean("pbr", True)
        p["texture_quality"] = r.choice("texture_quality", QUALITIES, "standard")
        p["texture_seed"] = r.integer("texture_seed", 0, 2**31 - 1)
        p["geometry_quality"] = r.choice("geometry_quality", QUALITIES, "standard")
        p["face_limit"] = r.integer("face_limit", 500, 500000)
        p["quad"] = r.boolean("quad", False)
        p["smart_low_poly"] = r.boolean("smart_low_poly", False)
        p["generate_parts"] = r.boolean("generate_parts", False)
        p["export_uv"] = r.boolean("export_uv", True)
        p["auto_size"] = r.boolean("auto_size", False)
        p["compress"] = r.choice("compress", ("geometry",))
        if p["generate_parts"]:
            if p["texture"] or p["pbr"]:
                raise invalid("generate_parts requires texture=false and pbr=false.",
                              "generate_parts")
            if p["quad"]:
                raise invalid("generate_parts is not compatible with quad.", "generate_parts")
        p["model_seed"] = None  # not a 3D AI Studio option; the factory seeds from the input
        if kind != "text_to_model":
            p["texture_alignment"] = r.choice("texture_alignment", ALIGNMENTS, "original_image")
        if kind == "text_to_model":
            p["prompt"] = prompt
            task.prompt = prompt
        elif kind == "image_to_model":
            p["enable_image_autofix"] = r.boolean("enable_image_autofix", False)
            image = self._image_input(form.values, "")
            task.images["image"] = image
            task.prompt = image.prompt
        else:
            images = form.values.get("images")
            if not isinstance(images, list) or not 2 <= len(images) <= 4:
                raise invalid("images must be an array of 2 to 4 image objects.", "images")
            views = []
            for index, entry in enumerate(images):
                if not isinstance(entry, dict):
                    raise invalid(f"images[{index}] must be an object with image or image_url.",
                                  "images")
                unknown = sorted(set(entry) - {"image", "image_url"})
                if unknown:
                    raise invalid(f"images[{index}]: unknown field(s) {', '.join(unknown)}.",
                                  "images")
                views.append(self._image_input(entry, f"images[{index}]."))
            task.images["views"] = views
            task.prompt = views[0].prompt
        task.cost = generation_cost(kind, p)
        return [prompt, p["negative_prompt"]]

    def _texture(self, task: Task, form: Form) -> list:
        _check_fields(form, TEXTURE_FIELDS)
        r = Reader(form)
        p = task.params
        prompt = r.string("prompt", max_len=1024)
        image_url = r.string("image_url")
        if prompt and (image_url or "image" in form.files):
            raise invalid("prompt cannot be combined with a reference image.", "prompt")
        p["texture_quality"] = r.choice("texture_quality", QUALITIES, "standard")
        p["pbr"] = r.boolean("pbr", True)
        p["texture"] = r.boolean("texture", True)
        p["texture_alignment"] = r.choice("texture_alignment", ALIGNMENTS, "original_image")
        p["texture_seed"] = r.integer("texture_seed", 0, 2**31 - 1)
        p["compress"] = r.choice("compress", ("geometry",))
        p["bake"] = r.boolean("bake", True)
        if not p["texture"] and not p["pbr"]:
            raise invalid("texture and pbr are both false: nothing to generate.", "texture")
        task.source = self._model_source(task, form)
        roles = {}
        for role, url_field in (("image", "image_url"), ("style_image", "style_image_url")):
            if role in form.files and r.string(url_field):
                raise invalid(f"Send {role} or {url_field}, not both.", role)
            if role in form.files or r.string(url_field):
                fields = {role: form.files[role]} if role in form.files else \
                    {"image_url": r.string(url_field)}
                task.images[role] = self._image_input(fields, "", file_field=role)
                roles[role] = True
        p["texture_prompt"] = {"text": prompt, "image": roles.get("image"),
                               "style_image": roles.get("style_image")} \
            if (prompt or roles) else None
        p["part_names"] = None
        task.prompt = task.source.prompt
        task.cost = (40 if p["texture_quality"] == "detailed" else 20) + \
            (10 if "style_image" in roles else 0)
        return [prompt]

    def _convert(self, task: Task, form: Form) -> list:
        _check_fields(form, CONVERT_FIELDS)
        r = Reader(form)
        p = task.params
        p["format"] = r.choice("format", CONVERT_FORMATS, required=True, upper=True)
        for key in ("quad", "force_symmetry", "flatten_bottom", "pivot_to_center_bottom", "bake",
                    "pack_uv", "with_animation", "export_vertex_colors", "animate_in_place"):
            p[key] = r.boolean(key, CONVERT_DEFAULTS[key])
        p["face_limit"] = r.integer("face_limit", 1)
        p["flatten_bottom_threshold"] = r.number("flatten_bottom_threshold", 0, 1, 0.01)
        p["scale_factor"] = r.number("scale_factor", 1e-6, 1e6, 1.0)
        p["texture_size"] = r.integer("texture_size", 1, 4096)
        if p["texture_size"] is None:
            p["texture_size"] = CONVERT_DEFAULTS["texture_size"]
        p["texture_format"] = r.choice("texture_format", TEXTURE_FORMATS, "JPEG", upper=True)
        p["fbx_preset"] = r.choice("fbx_preset", FBX_PRESETS, "blender")
        p["export_orientation"] = r.choice("export_orientation", ORIENTATIONS, "+x")
        p["part_names"] = None
        if p["quad"] and p["format"] == "3MF":
            raise invalid("quad is not compatible with the 3MF format.", "quad")
        task.source = self._model_source(task, form)
        task.prompt = task.source.prompt
        advanced = any(p[key] != default for key, default in CONVERT_DEFAULTS.items())
        task.cost = (20 if advanced else 10) + (10 if p["quad"] else 0)
        return []

    # --- inputs -------------------------------------------------------------------------------

    def _own_asset(self, url: str):
        """(task, file name) behind one of this flavour's asset URLs, or None for another URL.
        An expired or forged URL cannot be fetched: 400."""
        parts = urlsplit(url)
        if not self.base_url or f"{parts.scheme}://{parts.netloc}" != self.base_url \
                or not parts.path.startswith(ASSET_PREFIX):
            return None
        try:
            self._check_signature(parts.path, parts.query)
        except StudioError as exc:
            raise invalid(f"The URL could not be fetched: {exc.message}") from None
        task_id, _, name = parts.path[len(ASSET_PREFIX):].partition("/")
        with self._lock:
            task = self.tasks.get(task_id)
        if task is None or self._asset_path(task, name) is None:
            raise invalid("The URL could not be fetched (404).")
        return task, name

    def _store(self, data: bytes, fmt: str) -> Path:
        path = self.upload_dir / f"{uuid.uuid4().hex}.{fmt}"
        path.write_bytes(data)
        return path

    def _image_input(self, fields: dict, where: str, *, file_field: str = "image") -> ImageRef:
        """An image given as `image` (data URI, or a file in a form) or `image_url`."""
        inline = fields.get(file_field)
        url = fields.get("image_url")
        if (inline is None) == (url is None):
            raise invalid(f"{where}Send exactly one of {file_field} (base64) and image_url.",
                          f"{where}{file_field}")
        name = f"{where}{file_field}"
        if inline is not None:
            if isinstance(inline, tuple):  # a form file: (file name, bytes)
                data = inline[1]
            else:
                if not isinstance(inline, str) or not inline.startswith("data:image/") \
                        or ";base64," not in inline:
                    raise invalid(f"{name} must be a data URI: data:image/<type>;base64,<data>.",
                                  name)
                try:
                    data = base64.b64decode(inline.split(";base64,", 1)[1], validate=True)
                except (binascii.Error, ValueError):
                    raise invalid(f"{name} is not valid base64.", name) from None
            if len(data) > self.config.max_inline_image_bytes:
                raise invalid(f"{name} is larger than "
                              f"{self.config.max_inline_image_bytes // 1048576} MB.", name)
            fmt = sniff_format(data[:64])
            fmt = "jpeg" if fmt == "jpg" else fmt
            if fmt not in IMAGE_FORMATS:
                raise invalid(f"{name} must be a PNG, JPEG or WebP image.", name)
            path = self._store(data, fmt)
        else:
            if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
                raise invalid(f"{where}image_url must be an http(s) URL.", f"{where}image_url")
            own = self._own_asset(url)
            path = self._asset_path(*own) if own else write_preview_png(self.image_dir,
                                                                         f"url|{url}")
            with open(path, "rb") as handle:
                fmt = sniff_format(handle.read(64))
            if fmt not in IMAGE_FORMATS:
                raise invalid(f"{where}image_url does not point to an image.", f"{where}image_url")
        size = image_size(path, fmt)
        if size is None or not all(MIN_IMAGE_SIDE <= side <= MAX_IMAGE_SIDE for side in size):
            raise invalid(f"{name}: images must be {MIN_IMAGE_SIDE}..{MAX_IMAGE_SIDE} px a side.",
                          name)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return ImageRef(path, fmt, digest, self.generated.get(digest))

    def _model_source(self, task: Task, form: Form):
        """The model to work on: a `model` file or a `model_url` (exactly one)."""
        url = form.values.get("model_url")
        upload = form.files.get("model")
        if upload is None and isinstance(form.values.get("model"), str):
            raise invalid("model must be a file upload (multipart); use model_url for a URL.",
                          "model")
        if (url in (None, "")) == (upload is None):
            raise invalid("Send exactly one of model (file) and model_url.", "model_url")
        if upload is not None:
            filename, data = upload
            fmt = sniff_format(data[:64], filename)
            if fmt not in MODEL_FORMATS:
                raise invalid(f"model must be one of {', '.join(MODEL_FORMATS)} "
                              f"(got {fmt or 'an unknown format'}).", "model")
            source = FileSource(self._store(data, fmt), fmt, filename or "model")
        else:
            if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
                raise invalid("model_url must be an http(s) URL.", "model_url")
            own = self._own_asset(url)
            if own is not None:
                source_task, name = own
                if not name.startswith("model"):
                    raise invalid("model_url points to an image, not a model.", "model_url")
                return source_task
            source = FileSource(None, None, url)
        source.prompt = Path(source.label.split("?")[0]).stem.replace("_", " ")
        return source

    # --- production and reading ---------------------------------------------------------------

    def _produce(self, task: Task) -> None:
        try:
            output = self._producer.run(task)
        except Exception as exc:  # the factory's error or anything unexpected
            log.warning("aistudio task %s (%s) failed: %s", task.task_id, task.type, exc)
            with self._lock:
                task.error = (0, f"Asset production failed: {exc}")
                task.ready_at = time.time()
            return
        subjects = {hashlib.sha256(Path(path).read_bytes()).hexdigest(): prompt
                    for path, prompt in output.prompts.items() if prompt}
        with self._lock:
            self.generated.update(subjects)
            task.files, task.glb, task.info = output.files, output.glb, output.info
            task.ready_at = time.time()

    def _settle(self, now: float) -> None:
        """Failed tasks give their credits back (once)."""
        for task in self.tasks.values():
            if task.settled:
                continue
            status = task.phase(now).status
            if status == "failed":
                self._wallet(task.key).balance += task.cost
                task.settled = True
            elif status == "success":
                task.settled = True

    def wallet(self, key: str) -> dict:
        with self._lock:
            self._settle(time.time())
            return {"balance": f"{self._wallet(key).balance:.2f}"}

    def _asset_path(self, task: Task, name: str) -> Path | None:
        for key, path in task.files.items():
            if key + Path(path).suffix == name:
                return Path(path)
        return None

    def _asset_url(self, task: Task, name: str, completed: float) -> str:
        path = f"{ASSET_PREFIX}{task.task_id}/{name}"
        expires = int(completed + self.config.result_ttl_seconds)
        return f"{self.base_url}{path}?expires={expires}&sig={_sign(self._secret, path, expires)}"

    def status(self, key: str, task_id: str) -> dict:
        now = time.time()
        with self._lock:
            self._settle(now)
            task = self.tasks.get(task_id)
            if task is None or task.key != key:
                raise StudioError(404, "NOT_FOUND", f"Generation request {task_id} not found.")
            phase = task.phase(now)
            view = {"status": STATUS_WORDS[phase.status], "progress": phase.progress,
                    "failure_reason": None, "results": []}
            if phase.status == "success":
                for name, path in task.files.items():
                    asset_type = ASSET_TYPES.get(name)
                    if asset_type is None:
                        continue
                    view["results"].append({
                        "asset": self._asset_url(task, name + Path(path).suffix,
                                                 phase.completed_at),
                        "asset_type": asset_type,
                        "metadata": {"role": "preview"} if asset_type == "IMAGE" else None,
                    })
            elif phase.status == "failed":
                view["failure_reason"] = (task.failure() or (0, "failed"))[1]
            return view

    def _check_signature(self, path: str, query: str) -> None:
        fields = parse_qs(query)
        try:
            expires = int(fields["expires"][0])
            sig = fields["sig"][0]
        except (KeyError, IndexError, ValueError):
            raise StudioError(403, "FORBIDDEN", "The URL is not signed.") from None
        if not hmac.compare_digest(sig, _sign(self._secret, path, expires)):
            raise StudioError(403, "FORBIDDEN", "The URL's signature does not match.")
        if time.time() > expires:
            raise StudioError(403, "EXPIRED", "This result has expired (results are kept for "
                                              "24 hours).")

    def _download(self, path: str, query: str):
        self._check_signature(path, query)
        task_id, _, name = path[len(ASSET_PREFIX):].partition("/")
        with self._lock:
            task = self.tasks.get(task_id)
            file = self._asset_path(task, name) if task is not None else None
        if file is None or not file.is_file():
            raise StudioError(404, "NOT_FOUND", "No such asset.")
        return self._make_response(200, b"", content_type=CONTENT_TYPES.get(
            file.suffix, "application/octet-stream"), file=file, length=file.stat().st_size)

    # --- test control -------------------------------------------------------------------------

    def dump_tasks(self) -> dict:
        now = time.time()
        with self._lock:
            self._settle(now)
            out = {}
            for task in self.tasks.values():
                phase = task.phase(now)
                source = task.source
                out[task.task_id] = {
                    "task_id": task.task_id, "key": task.key, "type": task.type,
                    "route": task.route, "input": task.input, "params": task.params,
                    "status": STATUS_WORDS[phase.status], "progress": phase.progress,
                    "cost": task.cost, "created_at": iso(task.created), "prompt": task.prompt,
                    "source": getattr(source, "task_id", None) or getattr(source, "label", None),
                    "files": {name: str(path) for name, path in task.files.items()},
                    "info": task.info, "error": task.failure(), "settled": task.settled,
                }
            return out

    def control(self, method: str, name: str, body: dict) -> tuple[int, dict]:
        """`POST config {...}`, `GET config`, `GET tasks`, `GET wallets`."""
        if (method, name) == ("POST", "config"):
            with self._lock:
                self.config.update(body)
                if "balance" in body:
                    for wallet in self.wallets.values():
                        wallet.balance = float(self.config.balance)
                return 200, {"config": self.config.as_dict()}
        if (method, name) == ("GET", "config"):
            return 200, {"config": self.config.as_dict()}
        if (method, name) == ("GET", "tasks"):
            return 200, {"tasks": self.dump_tasks()}
        if (method, name) == ("GET", "wallets"):
            with self._lock:
                self._settle(time.time())
                return 200, {"wallets": {hashlib.sha256(k.encode()).hexdigest()[:12]:
                                         round(w.balance, 2) for k, w in self.wallets.items()}}
        return 404, {"error": f"no control route {method} /_emulator/aistudio/{name}"}
