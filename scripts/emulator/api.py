"""The apiv3 behaviour of the emulator: accounts, tasks, uploads, chain rules, billing.

Transport-free: server.py parses HTTP and calls these methods, which return plain data (the
`data` of the envelope) or raise `ApiError`. All state sits behind one lock; asset production
runs in a thread pool (production.py) and only touches a task through `_produce`.

Order of checks on a create (the first failing one answers): rate limit (1007; every create
request counts, refused ones too), JSON body (1003), parameters (1004/2015/2017), content
policy (2008), inputs and chain rules (1004/2001/2006/2007), concurrency (2000), credits (2010).
A refused create creates and bills nothing. Credits move to `frozen` at creation; success
consumes them, failure refunds them (settled lazily whenever state is read).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
import shutil
import tempfile
import threading
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from . import catalog
from .errors import ApiError, invalid
from .images import IMAGE_FORMATS, MODEL_FORMATS, image_size, sniff_format, write_preview_png
from .production import Producer
from .state import ACTIVE, FINAL, Account, Config, FileSource, ImageRef, Task, Upload, iso

log = logging.getLogger(__name__)

FAIL_WORD = "failme"
MAX_MULTIPART_UPLOAD = 50 * 1024 * 1024
MAX_PRESIGNED_UPLOAD = 150 * 1024 * 1024
PRESIGN_TTL = 900
MIN_IMAGE_SIDE, MAX_IMAGE_SIDE = 20, 6000
MAX_LIST = 100
BIG_FILE_TASK = "_big"

# Output file name -> (output field, multiview key); multiview views go under one object.
OUTPUT_FIELDS = {
    "model": "model_url",
    "rendered_image": "rendered_image_url",
    "generated_image": "generated_image_url",
    "uv_render": "uv_render_url",
    "depth_image": "depth_image_url",
    "splat": "model_url",
}


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Signer:
    """HMAC-SHA256 signatures for download and presigned-upload URLs."""

    def __init__(self):
        self._secret = os.urandom(32)

    def _sig(self, path: str, expires: int) -> str:
        return hmac.new(self._secret, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def query(self, path: str, ttl: float) -> str:
        expires = int(time.time() + ttl)
        return f"expires={expires}&sig={self._sig(path, expires)}"

    def check(self, path: str, query: str) -> None:
        """Raises 403 (code 1005) for a missing or wrong signature or an expired URL."""
        fields = parse_qs(query)
        try:
            expires = int(fields["expires"][0])
            sig = fields["sig"][0]
        except (KeyError, IndexError, ValueError):
            raise ApiError(403, 1005, "the URL is not signed") from None
        if not hmac.compare_digest(sig, self._sig(path, expires)):
            raise ApiError(403, 1005, "the URL's signature does not match")
        if time.time() > expires:
            raise ApiError(403, 1005, "the URL has expired; query the task again for a fresh one")


class TripoApi:
    def __init__(self, config: Config, factory, cache_dir: Path, factory_workers: int = 2):
        self.initial_config = replace(config)
        self.config = config
        self.cache_dir = Path(cache_dir)
        self.image_dir = self.cache_dir / "emulator-images"
        self.upload_dir = Path(tempfile.mkdtemp(prefix="tripo-emulator-uploads-"))
        self.base_url = ""  # set by the server once it listens
        self.signer = Signer()
        self._lock = threading.RLock()
        self._producer = Producer(factory, self.image_dir)
        self._pool = ThreadPoolExecutor(max_workers=max(1, factory_workers),
                                        thread_name_prefix="emulator-asset")
        self._reset_state()

    def _reset_state(self) -> None:
        self.tasks: dict[str, Task] = {}
        self.uploads: dict[str, Upload] = {}
        self.accounts: dict[str, Account] = {}
        self.big_files: dict[str, Path] = {}
        self.generated: dict[str, str] = {}  # sha256 of an image the emulator made -> its subject

    def reset(self) -> None:
        with self._lock:
            self._reset_state()
            self.config = replace(self.initial_config)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(self.upload_dir, ignore_errors=True)

    # --- auth and accounts --------------------------------------------------------------------

    def authenticate(self, authorization: str | None) -> str:
        scheme, _, key = (authorization or "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise ApiError(401, 1002, "missing API key: send Authorization: Bearer tsk_...")
        expected = self.config.api_key
        if (expected is not None and not hmac.compare_digest(key, expected)) or \
                (expected is None and not key.startswith("tsk_")):
            raise ApiError(401, 1002, "authentication failed: invalid API key")
        return key

    def _account(self, key: str) -> Account:
        if key not in self.accounts:
            self.accounts[key] = Account(balance=self.config.balance)
        return self.accounts[key]

    def configure(self, changes: dict) -> dict:
        with self._lock:
            self.config.update(changes)
            if "balance" in changes:
                for account in self.accounts.values():
                    account.balance = self.config.balance
            return self.config.as_dict()

    def _settle(self, now: float) -> None:
        """Finalises billing of tasks that ended: success consumes, failure refunds."""
        for task in self.tasks.values():
            if task.settled:
                continue
            status = task.phase(now).status
            if status in FINAL:
                account = self._account(task.key)
                account.frozen -= task.cost
                if status == "failed":
                    account.balance += task.cost
                task.settled = True

    def balance(self, key: str) -> dict:
        with self._lock:
            self._settle(time.time())
            account = self._account(key)
            return {"balance": account.balance, "frozen": account.frozen}

    def usage(self, key: str, query: str) -> dict:
        fields = parse_qs(query)
        try:
            limit = int(fields.get("limit", ["20"])[0])
            offset = int(fields.get("offset", ["0"])[0])
        except ValueError:
            raise invalid("limit and offset must be integers") from None
        if not 1 <= limit <= 100 or offset < 0:
            raise invalid("limit must be between 1 and 100 and offset at least 0")
        now = time.time()
        with self._lock:
            self._settle(now)
            mine = sorted((t for t in self.tasks.values() if t.key == key),
                          key=lambda t: t.created, reverse=True)
            items = []
            for task in mine[offset:offset + limit]:
                status = task.phase(now).status
                items.append({"task_id": task.task_id, "type": task.type, "status": status,
                              "created_at": iso(task.created),
                              "credits_consumed": 0 if status == "failed" else task.cost})
            return {"items": items}

    # --- creates ------------------------------------------------------------------------------

    def check_rate(self, key: str) -> None:
        """Counts one create request; 429 code 1007 beyond the per-minute limit."""
        now = time.time()
        with self._lock:
            window = self._account(key).creates
            while window and window[0] <= now - 60:
                window.popleft()
            if len(window) >= self.config.rate_limit_per_minute:
                wait = max(1, math.ceil(window[0] + 60 - now))
                raise ApiError(429, 1007, "too many task creations: "
                               f"{self.config.rate_limit_per_minute} per minute at most",
                               headers={"Retry-After": str(wait)})
            window.append(now)

    def _task_duration(self) -> float:
        low, high = self.config.task_seconds, self.config.task_seconds_max
        return random.uniform(low, high) if high > low else low

    def create(self, route: str, key: str, body) -> dict:
        spec = catalog.ROUTES[route]
        self.check_rate(key)
        if not isinstance(body, dict):
            raise ApiError(400, 1003, "the body must be a JSON object")
        params = spec.validate(body)
        texts = [params.get("prompt"), params.get("negative_prompt"),
                 (params.get("texture_prompt") or {}).get("text"),
                 *(entry["prompt"] for entry in params.get("prompts") or ())]
        texts = [t.lower() for t in texts if t]
        blocked = self.config.blocked_word.lower()
        if blocked and any(blocked in t for t in texts):
            raise ApiError(400, 2008, "the prompt violates the content policy")
        now = time.time()
        with self._lock:
            self._settle(now)
            task = Task(task_id=str(uuid.uuid4()), key=key, type=spec.type, route=route,
                        input=body, params=params, cost=0, created=now,
                        duration=self._task_duration(),
                        asset_profile=self.config.asset_profile)
            self._resolve_inputs(task)
            if any(FAIL_WORD in t for t in texts):
                task.planned_failure = (1001, "the generation failed on the server "
                                              "(the prompt asked for a failure)")
            active = sum(1 for t in self.tasks.values()
                         if t.key == key and t.phase(now).status in ACTIVE)
            if active >= self.config.concurrency_limit:
                raise ApiError(429, 2000, f"concurrency limit reached: {active} tasks queued or "
                                          f"running (limit {self.config.concurrency_limit})")
            task.cost = spec.cost(params)
            account = self._account(key)
            if account.balance < task.cost:
                raise ApiError(403, 2010, f"insufficient credits: the task costs {task.cost}, "
                                          f"the balance is {account.balance}")
            account.balance -= task.cost
            account.frozen += task.cost
            self.tasks[task.task_id] = task
        log.info("created %s %s (cost %s)", task.type, task.task_id, task.cost)
        if task.planned_failure is None:
            self._pool.submit(self._produce, task)
        return {"task_id": task.task_id}

    def _produce(self, task: Task) -> None:
        try:
            output = self._producer.run(task)
        except Exception as exc:  # the factory's AssetFactoryError or anything unexpected
            log.warning("task %s (%s) failed: %s", task.task_id, task.type, exc)
            with self._lock:
                task.error = (1001, f"asset production failed: {exc}")
                task.ready_at = time.time()
            return
        subjects = {_file_digest(path): prompt for path, prompt in output.prompts.items() if prompt}
        with self._lock:
            self.generated.update(subjects)
            task.files, task.glb, task.info = output.files, output.glb, output.info
            task.extra = output.extra
            task.ready_at = time.time()

    # --- inputs -------------------------------------------------------------------------------

    def _source_task(self, task: Task, task_id: str, allowed: tuple | None = None) -> Task:
        source = self.tasks.get(task_id)
        if source is None or source.key != task.key:
            raise ApiError(404, 2001, f"task {task_id} not found")
        catalog.check_chain(task.type, source.type, allowed)
        status = source.phase(time.time()).status
        if status != "success":
            raise ApiError(400, 2007, f"source task {task_id} has not succeeded (status {status})")
        return source

    def _own_file(self, url: str) -> Path | None:
        """The file behind one of the emulator's own download URLs (None: a foreign URL)."""
        parts = urlsplit(url)
        if not self.base_url or f"{parts.scheme}://{parts.netloc}" != self.base_url \
                or not parts.path.startswith("/files/"):
            return None
        try:
            self.signer.check(parts.path, parts.query)
        except ApiError as exc:
            raise invalid(f"the input URL cannot be fetched: {exc.message}") from None
        _, _, task_id, name = parts.path.split("/", 3)
        path = self.served_file(task_id, name)
        if path is None:
            raise invalid("the input URL points to no file")
        return path

    def _upload(self, task: Task, token: str) -> Upload:
        upload = self.uploads.get(token)
        if upload is None or upload.key != task.key:
            raise invalid(f"unknown file token {token!r}")
        if upload.path is None:
            raise invalid(f"file token {token!r} has no uploaded data yet (PUT it to the presigned URL)")
        return upload

    def _image(self, task: Task, ref: str, what: str) -> ImageRef:
        """Resolves an image input: a file token, a URL or an image task's id."""
        if ref.startswith("file_"):
            upload = self._upload(task, ref)
            path, fmt = upload.path, upload.format
        elif ref.startswith(("http://", "https://")):
            path = self._own_file(ref)
            if path is None:  # a foreign URL: a deterministic stand-in image
                path = write_preview_png(self.image_dir, f"url|{ref}")
            with open(path, "rb") as handle:
                fmt = sniff_format(handle.read(64))
        else:
            source = self._source_task(task, ref, catalog.IMAGE_TYPES)
            return ImageRef(source.files["generated_image"], "png",
                            _file_digest(source.files["generated_image"]), source.prompt)
        if fmt not in IMAGE_FORMATS:
            raise invalid(f"{what} must be a png, jpeg or webp image (got {fmt or 'unknown'})")
        size = image_size(path, fmt)
        if size is None:
            raise invalid(f"{what}: the image header cannot be read")
        if not all(MIN_IMAGE_SIDE <= side <= MAX_IMAGE_SIDE for side in size):
            raise invalid(f"{what} must be {MIN_IMAGE_SIDE}..{MAX_IMAGE_SIDE} px a side "
                          f"(got {size[0]}x{size[1]})")
        digest = _file_digest(path)
        return ImageRef(path, fmt, digest, self.generated.get(digest))

    def _views(self, task: Task, views: list | None, ref: str | None) -> list:
        if views is None:  # a multiview image task's views
            source = self._source_task(task, ref, catalog.MULTIVIEW_IMAGE_TYPES)
            return [ImageRef(source.files[f"{v}_view"], "png",
                             _file_digest(source.files[f"{v}_view"]), source.prompt)
                    for v in ("front", "left", "back", "right")]
        return [None if v is None else self._image(task, v, f"inputs[{i}]")
                for i, v in enumerate(views)]

    def _model_source(self, task: Task, ref: str):
        """A model input: a task id (chain rules apply), a file token or a URL of a model."""
        if ref.startswith(("file_", "http://", "https://")):
            if ref.startswith("file_"):
                upload = self._upload(task, ref)
                source = FileSource(upload.path, upload.format, upload.filename or ref)
            else:
                path = self._own_file(ref)
                fmt = None
                if path is not None:
                    with open(path, "rb") as handle:
                        fmt = sniff_format(handle.read(64), path.name)
                source = FileSource(path, fmt, ref)
            if source.path is not None and source.format not in MODEL_FORMATS:
                raise invalid(f"input must be a model file ({', '.join(MODEL_FORMATS)}), "
                              f"got {source.format or 'an unknown format'}")
            catalog.check_chain(task.type, source.type)
            source.prompt = Path(source.label.split("?")[0]).stem.replace("_", " ")
            return source
        return self._source_task(task, ref)

    def _resolve_inputs(self, task: Task) -> None:
        p = task.params
        t = task.type
        if t == "text_to_model" or t == "text_to_image":
            task.prompt = p["prompt"]
        elif t in ("image_to_model", "generate_image", "generate_multiview_image",
                   "image_to_splat", "image_to_depth"):
            image = self._image(task, p["input"], "input")
            task.images["image"] = image
            for index, ref in enumerate(p.get("inputs") or ()):  # several references
                task.images[f"reference_{index}"] = self._image(task, ref, f"inputs[{index}]")
            # The subject: an edited image is what its prompt (or template) says; otherwise
            # the image's own.
            task.prompt = (p["prompt"] or p["template"] or image.prompt) if t == "generate_image" \
                else image.prompt or p.get("prompt")
        elif t in ("multiview_to_model", "edit_multiview_image"):
            views = self._views(task, p.get("inputs"), p.get("input"))
            task.images["views"] = views
            task.prompt = views[0].prompt
            if t == "edit_multiview_image":
                task.prompt = "; ".join(f"{e['view']}: {e['prompt']}" for e in p["prompts"])
        elif t == "import_model":
            ref = p["input"]
            if not ref.startswith(("file_", "http://", "https://")):
                raise invalid("import input must be a file token (or URL) of a glb, fbx, obj or stl file")
            task.source = self._model_source(task, ref)
            task.prompt = task.source.prompt
        else:
            task.source = self._model_source(task, p["input"])
            task.prompt = task.source.prompt
        if t == "texture_model" and p["texture_prompt"]:
            for role in ("image", "style_image"):
                if p["texture_prompt"][role]:
                    task.images[role] = self._image(task, p["texture_prompt"][role],
                                                    f"texture_prompt.{role}")
        if t == "mesh_segmentation" and p["ref_image"]:
            task.images["ref_image"] = self._image(task, p["ref_image"], "ref_image")
        if t in ("texture_model", "mesh_completion", "highpoly_to_lowpoly", "convert_model") \
                and p.get("part_names") and isinstance(task.source, Task):
            known = task.source.info.get("part_names")
            unknown = [n for n in p["part_names"] if known is not None and n not in known]
            if unknown:
                raise invalid(f"unknown part names {unknown} (the model has {known})")
        if t == "animate_retarget":
            rig_type = task.source.info.get("rig_type") or catalog.rig_check(task.source.prompt)[1]
            for animation in p["animations"]:
                needed = catalog.preset_rig_type(animation)
                if needed != rig_type:
                    raise invalid(f"animation {animation} needs a {needed} rig; the source rig is {rig_type}")

    # --- reading tasks ------------------------------------------------------------------------

    def _url(self, task_id: str, name: str) -> str:
        path = f"/files/{task_id}/{name}"
        return f"{self.base_url}{path}?{self.signer.query(path, self.config.url_ttl_seconds)}"

    def _view(self, task: Task, now: float, steps: bool = False) -> dict:
        phase = task.phase(now)
        view = {"task_id": task.task_id, "type": task.type, "status": phase.status,
                "progress": phase.progress, "input": task.input, "output": {},
                "created_at": iso(task.created)}
        if phase.status == "queued":
            view["queuing_num"] = phase.queuing_num
        if phase.running_left_time is not None:
            view["running_left_time"] = phase.running_left_time
        if phase.completed_at is not None:
            view["completed_at"] = iso(phase.completed_at)
        if phase.status == "success":
            view["credits_consumed"] = float(task.cost)
            output = dict(task.extra)
            for name, path in task.files.items():
                url = self._url(task.task_id, name + Path(path).suffix)
                if name.endswith("_view"):
                    output.setdefault("generate_multiview_image", {})[name + "_url"] = url
                else:
                    output[OUTPUT_FIELDS[name]] = url
            view["output"] = output
        elif phase.status == "failed":
            view["error_code"], view["error_message"] = task.failure()
        if steps:
            view["steps"] = [
                {"name": "queue", "status": "queued" if phase.status == "queued" else "success"},
                {"name": "generate", "status": phase.status if phase.status != "queued" else "pending",
                 "progress": phase.progress},
            ]
        return view

    def get_task(self, key: str, task_id: str, query: str) -> dict:
        steps = parse_qs(query).get("step", ["0"])[0] not in ("0", "", "false")
        now = time.time()
        with self._lock:
            self._settle(now)
            task = self.tasks.get(task_id)
            if task is None or task.key != key:
                raise ApiError(404, 2001, f"task {task_id} not found")
            return self._view(task, now, steps)

    def list_tasks(self, key: str, body) -> dict:
        ids = body.get("task_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise invalid("task_ids must be a list of task ids")
        if len(ids) > MAX_LIST:
            raise invalid(f"task_ids lists at most {MAX_LIST} ids (got {len(ids)})")
        now = time.time()
        with self._lock:
            self._settle(now)
            found, missed = {}, []
            for task_id in ids:
                task = self.tasks.get(task_id)
                if task is None or task.key != key:
                    missed.append(task_id)
                else:
                    found[task_id] = self._view(task, now)
            return {"tasks": found, "missed": missed}

    def served_file(self, task_id: str, name: str) -> Path | None:
        with self._lock:
            if task_id == BIG_FILE_TASK:
                return self.big_files.get(name)
            task = self.tasks.get(task_id)
            if task is None:
                return None
            for key, path in task.files.items():
                if key + Path(path).suffix == name:
                    return Path(path)
            return None

    # --- uploads ------------------------------------------------------------------------------

    def new_upload(self, key: str, declared_format: str | None) -> Upload:
        upload = Upload(token=f"file_{uuid.uuid4()}", key=key, declared_format=declared_format)
        with self._lock:
            self.uploads[upload.token] = upload
        return upload

    def store_upload(self, upload: Upload, path: Path, filename: str = "") -> None:
        """Records the bytes of `upload` (already written at `path`)."""
        with open(path, "rb") as handle:
            head = handle.read(64)
        fmt = sniff_format(head, filename or f"x.{upload.declared_format or ''}")
        if fmt == "jpg":
            fmt = "jpeg"
        size = image_size(path, fmt) if fmt in IMAGE_FORMATS else None
        with self._lock:
            upload.path, upload.format, upload.filename = path, fmt, filename
            upload.size = path.stat().st_size
            upload.width, upload.height = size or (None, None)

    def presign(self, key: str, body) -> dict:
        fmt = body.get("format") if isinstance(body, dict) else None
        if fmt not in catalog.UPLOAD_FORMATS:
            raise invalid(f"format must be one of {', '.join(catalog.UPLOAD_FORMATS)} (got {fmt!r})")
        upload = self.new_upload(key, fmt)
        path = f"/uploads/{upload.token}"
        return {"file_token": upload.token,
                "presigned_url": f"{self.base_url}{path}?{self.signer.query(path, PRESIGN_TTL)}",
                "expires_in": PRESIGN_TTL}

    # --- test control -------------------------------------------------------------------------

    def dump_tasks(self) -> dict:
        now = time.time()
        with self._lock:
            self._settle(now)
            out = {}
            for task in self.tasks.values():
                phase = task.phase(now)
                out[task.task_id] = {
                    "task_id": task.task_id, "key": task.key, "type": task.type,
                    "route": task.route, "input": task.input, "params": task.params,
                    "status": phase.status, "progress": phase.progress, "cost": task.cost,
                    "created_at": iso(task.created), "duration": task.duration,
                    "prompt": task.prompt, "source": getattr(task.source, "task_id", None),
                    "files": {name: str(path) for name, path in task.files.items()},
                    "info": task.info, "error": task.failure(), "settled": task.settled,
                    "created": task.created,  # unix seconds, precise (for benchmarks)
                    "completed": phase.completed_at,
                }
            return out

    def big_file(self, size_mb) -> str:
        if isinstance(size_mb, bool) or not isinstance(size_mb, int) or not 1 <= size_mb <= 4096:
            raise ValueError("size_mb must be an integer between 1 and 4096")
        name = f"big-{size_mb}mb.bin"
        path = self.cache_dir / "big-files" / name
        size = size_mb * 1024 * 1024
        if not path.is_file() or path.stat().st_size != size:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as handle:  # sparse: no memory, hardly any disk
                handle.truncate(size)
        with self._lock:
            self.big_files[name] = path
        return self._url(BIG_FILE_TASK, name)
