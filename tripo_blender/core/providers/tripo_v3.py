"""Tripo apiv3 provider.

Wire facts: ``Authorization: Bearer tsk_...``; answers are ``{"code": 0, "data": {...}}`` on
success and ``{"code": N, "message", "suggestion", "request_id"}`` with HTTP 4xx/5xx on
failure (see ``errors.error_from_response``).

Retry rules (task creation bills, so it is never replayed blindly):

- Reads (task queries, polling, balance, usage, uploads) are retried on 429 (honouring
  ``Retry-After``), 500/502/503/504, unreadable answers and connection problems, with
  exponential backoff and jitter, bounded in attempts and total time.
- A create answered with HTTP 429 (code 1007 rate limit or 2000 concurrency limit) was
  refused: nothing was created, so it is resubmitted after waiting, a bounded number of times
  (``create_attempts``, ``max_concurrency_wait``), then :class:`RateLimited` /
  :class:`ConcurrencyLimited` is raised for the job engine to queue it.
- A create that failed before the connection was made (DNS, refused, connect timeout, TLS,
  proxy) never reached the server and is retried.
- A create that may have been sent but got no usable answer raises
  :class:`CreateOutcomeUnknown`: read timeout, connection reset/aborted, a 5xx answer (the
  server or a gateway in front of it may have created the task before failing: we cannot
  tell), a 2xx answer that cannot be read or has no task id (probably created). Then
  :meth:`TripoV3Provider.reconcile_create` looks for the task in the account's usage list.
- 4xx answers other than 429 are refusals: raised as the mapped error, nothing retried.

No ``bpy`` here (see ``core/__init__``).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import random
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union
from urllib.parse import quote, urlsplit

import requests

from ..costs import CostEstimate, estimate_credits
from .download import DEFAULT_MAX_BYTES, DOWNLOAD_PATIENCE, download_file
from ..protocol.errors import (
    ConcurrencyLimited,
    CreateOutcomeUnknown,
    FeatureUnavailable,
    InvalidApiKeyFormat,
    NetworkError,
    ProviderResponseError,
    RateLimited,
    ServerError,
    TaskNotFound,
    TripoError,
    ValidationError,
    error_from_response,
)
from .http import (
    ProxyConfig,
    RetryPolicy,
    ThreadSessions,
    call_with_retry,
    check_base_url,
    network_error_from,
    redact_url,
)
from .create import send_create
from .provider import Balance, PollResult, Provider
from ..protocol.inputs import validate_image_file, validate_model_file
from ..protocol.records import Task, UsageItem
from ..protocol.request_models import REQUEST_CLASSES, TaskRequest, validate_request
from ..protocol.vocabulary import (
    MAX_UPLOAD_BYTES,
    MODEL_FILE_FORMATS,
    RETIRED_TASK_TYPES,
    task_label,
)

log = logging.getLogger(__name__)

__all__ = [
    "TripoV3Provider",
    "check_api_key",
    "DEFAULT_BASE_URL",
    "CHINA_BASE_URL",
    "MULTIPART_MAX_BYTES",
    "RECONCILE_WINDOW_SECONDS",
    "POLL_CHUNK",
]

DEFAULT_BASE_URL = "https://openapi.tripo3d.ai"
CHINA_BASE_URL = "https://openapi.tripo3d.com"
#: Files up to this size go through ``POST /v3/files`` (multipart); larger ones are presigned.
MULTIPART_MAX_BYTES = 50 * 1024 * 1024
#: How far before ``sent_at`` reconciliation looks for the task (clock skew allowance).
RECONCILE_WINDOW_SECONDS = 120.0
#: Content type of an upload by file format, on the multipart part and on the presigned PUT.
#: The official SDK tripo3d 1.0.0 takes it from Python's ``mimetypes``, whose answer depends on
#: the system's tables: fixed here, so every machine sends the same (a GLB is
#: ``model/gltf-binary``, as the SDK sends it; FBX has no registered type, so it is the SDK's
#: fallback ``application/octet-stream``).
UPLOAD_CONTENT_TYPES: dict[str, str] = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "glb": "model/gltf-binary",
    "fbx": "application/octet-stream",
    "obj": "model/obj",
    "stl": "model/stl",
}
#: Task ids per ``POST /v3/tasks/list``.
POLL_CHUNK = 100
_USAGE_PAGE = 50
_USAGE_MAX_PAGES = 20
#: Body fields that identify a create; reconciliation needs them echoed to adopt a task.
_IDENTIFYING_KEYS = ("prompt", "input", "inputs", "texture_prompt")


def check_api_key(api_key: Any) -> str:
    """Return the key stripped, or raise :class:`InvalidApiKeyFormat` (nothing is sent)."""
    key = api_key.strip() if isinstance(api_key, str) else ""
    if not key:
        raise InvalidApiKeyFormat("No Tripo API key is set.", field="api_key")
    if key.startswith("tcli_"):
        raise InvalidApiKeyFormat(
            "This key starts with 'tcli_': it is a Tripo client token, not an API key.",
            field="api_key",
        )
    if not key.startswith("tsk_"):
        raise InvalidApiKeyFormat(
            "This is not a Tripo API key: API keys start with 'tsk_'.", field="api_key"
        )
    if any(c.isspace() for c in key) or not key.isascii() or len(key) < 8:
        raise InvalidApiKeyFormat(
            "The API key looks damaged (spaces, line breaks or too short); copy it again.",
            field="api_key",
        )
    return key


def _parse_time(value: Any) -> Optional[float]:
    """Server timestamp (ISO 8601 or epoch seconds/milliseconds) → epoch seconds."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
        return number / 1000.0 if number > 1e11 else number
    text = str(value).strip()
    if not text:
        return None
    try:
        number = float(text)
        return number / 1000.0 if number > 1e11 else number
    except ValueError:
        pass
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python < 3.11 fromisoformat is strict about fractions: trim to microseconds.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        text = f"{head}.{(digits + '000000')[:6]}{rest}"
    try:
        when = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return when.timestamp()


def _same(sent: Any, echoed: Any) -> bool:
    if isinstance(sent, bool) or isinstance(echoed, bool):
        return sent is echoed or sent == echoed
    if isinstance(sent, (int, float)) and isinstance(echoed, (int, float)):
        return abs(float(sent) - float(echoed)) < 1e-9
    if isinstance(sent, str) and isinstance(echoed, str):
        return sent.strip() == echoed.strip()
    if isinstance(sent, dict) and isinstance(echoed, dict):
        return all(k not in echoed or _same(v, echoed[k]) for k, v in sent.items())
    if isinstance(sent, list) and isinstance(echoed, list):
        return len(sent) == len(echoed) and all(_same(a, b) for a, b in zip(sent, echoed))
    return sent == echoed


def _input_matches(echoed: dict, body: dict, skip: set[str]) -> Optional[bool]:
    """True: the echoed input is this body; False: it is not; None: cannot tell (no input
    echoed, or an identifying field not echoed or not comparable)."""
    if not echoed:
        return None
    compared = 0
    for key, value in body.items():
        if key in skip or key not in echoed:
            continue
        if not _same(value, echoed[key]):
            return False
        compared += 1
    for key in _IDENTIFYING_KEYS:
        if key in body and (key in skip or key not in echoed):
            return None
    return True if compared else None


class TripoV3Provider(Provider):
    """Tripo apiv3 (``https://openapi.tripo3d.ai``).

    ``sleep`` and ``clock`` are injectable for tests. ``max_concurrency_wait`` bounds the
    total seconds a create waits and resubmits after 429 refusals (0: raise at once).
    Usable from several threads at once (each thread gets its own HTTP sessions).
    """

    name = "tripo_v3"

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        proxy: Optional[ProxyConfig] = None,
        timeout: tuple[float, float] = (10, 60),
        sleep: Callable[[float], None] = time.sleep,
        max_concurrency_wait: float = 60.0,
        *,
        create_attempts: int = 4,
        retry: RetryPolicy = RetryPolicy(),
        upload_timeout: tuple[float, float] = (10, 300),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api_key = check_api_key(api_key)  # before anything else: no request without it
        self.base_url = check_base_url(base_url)
        self.proxy = proxy or ProxyConfig()
        self.timeout = timeout
        self.upload_timeout = upload_timeout
        self._sleep = sleep
        self._clock = clock
        self.max_concurrency_wait = float(max_concurrency_wait)
        self.create_attempts = max(1, int(create_attempts))
        self.retry = retry
        self._sessions = ThreadSessions(self.proxy)
        # (absolute path, size, mtime_ns) -> file token of this provider's uploads; lets
        # reconcile_create compare a request that still names local files.
        self._uploaded: dict[tuple[str, int, int], str] = {}

    def __repr__(self) -> str:
        return f"TripoV3Provider(base_url={self.base_url!r}, proxy={self.proxy.describe()!r})"

    # ================================================================== plumbing

    def _thread_session(self, purpose: str) -> requests.Session:
        """This thread's session for ``"api"`` (carries the key per request) or ``"plain"``
        (downloads and presigned uploads: never the key)."""
        return self._sessions.get(purpose)

    @property
    def _session(self) -> requests.Session:
        return self._thread_session("api")

    @property
    def _plain(self) -> requests.Session:
        return self._thread_session("plain")

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}

    def _call(self, method: str, path: str, *, json: Any = None, params: Any = None,
              files: Any = None, timeout: Any = None) -> Any:
        """One HTTP exchange with the API; returns ``data`` of the envelope."""
        url = self.base_url + path
        try:
            resp = self._session.request(
                method, url, json=json, params=params, files=files, headers=self._headers(),
                timeout=timeout or self.timeout,
            )
        except requests.RequestException as exc:
            log.debug("%s %s failed: %s", method, path, type(exc).__name__)
            raise network_error_from(exc) from exc
        log.debug("%s %s -> HTTP %s", method, path, resp.status_code)
        return self._parse(resp)

    @staticmethod
    def _parse(resp: requests.Response) -> Any:
        status = resp.status_code
        try:
            payload = resp.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            payload_dict = None
        else:
            payload_dict = payload
        if status == 401 or not 200 <= status < 300:
            raise error_from_response(status, payload_dict, resp.headers)
        if payload_dict is None:
            raise ProviderResponseError(
                "Tripo answered with something that is not the expected JSON.",
                http_status=status, request_id=resp.headers.get("X-Request-Id"),
            )
        code = payload_dict.get("code")
        if code is not None and str(code) != "0":
            raise error_from_response(status, payload_dict, resp.headers)
        if code is None and "data" not in payload_dict:
            raise ProviderResponseError(
                "Tripo's answer has neither 'code' nor 'data'.", http_status=status,
                request_id=payload_dict.get("request_id"),
            )
        data = payload_dict.get("data")
        return {} if data is None else data

    def _read(self, method: str, path: str, *, what: str, **kw: Any) -> Any:
        return call_with_retry(lambda: self._call(method, path, **kw), policy=self.retry,
                               sleep=self._sleep, what=what)

    # ================================================================== capabilities

    def supports(self, task_type: str) -> Optional[str]:
        if task_type in RETIRED_TASK_TYPES:
            return RETIRED_TASK_TYPES[task_type]
        if task_type not in REQUEST_CLASSES:
            return f"Tripo API v3 has no task type '{task_type}'."
        return None

    def estimate(self, request: TaskRequest) -> CostEstimate:
        return estimate_credits(request)

    # ================================================================== create

    def create_task(self, request: TaskRequest) -> str:
        if not isinstance(request, TaskRequest):
            raise ValidationError("create_task needs a task request (see request_models.build_request).")
        reason = self.supports(request.task_type)
        if reason:
            raise FeatureUnavailable(reason, reason=reason)
        validate_request(request)
        resolved = self._upload_inputs(request)
        body = resolved.to_body()
        route = resolved.route
        label = task_label(resolved.task_type)

        refused = 0
        waited = 0.0

        def resubmit_wait(exc: TripoError, sent_at: float) -> float:
            """Only a 429 says nothing was created: resubmit it, within the attempts and the
            patience for concurrency; any other answer error either refused the create or
            leaves its outcome unknown."""
            nonlocal refused, waited
            if isinstance(exc, (RateLimited, ConcurrencyLimited)):
                if exc.http_status != 429:
                    raise CreateOutcomeUnknown(
                        f"{label}: Tripo answered with an unexpected error (HTTP "
                        f"{exc.http_status}); the task may have been created.",
                        request=resolved, body=body, sent_at=sent_at, cause=exc,
                        code=exc.code, request_id=exc.request_id, http_status=exc.http_status,
                    ) from exc
                refused += 1
                wait = exc.retry_after
                if wait is None:
                    base = 5.0 if isinstance(exc, ConcurrencyLimited) else 1.0
                    wait = min(30.0, base * (2 ** (refused - 1))) * (0.75 + 0.5 * random.random())
                if refused >= self.create_attempts or waited + wait > self.max_concurrency_wait:
                    log.info("%s refused (%s) %d time(s); giving up for now", label,
                             type(exc).__name__, refused)
                    raise exc
                log.info("%s refused (%s, code %s); resubmitting in %.1f s", label,
                         type(exc).__name__, exc.code, wait)
                waited += wait
                return wait
            if isinstance(exc, (ServerError, ProviderResponseError)):
                raise CreateOutcomeUnknown(
                    f"{label}: Tripo answered with an error or an unreadable answer "
                    f"(HTTP {exc.http_status}); the task may have been created.",
                    request=resolved, body=body, sent_at=sent_at, cause=exc,
                    code=exc.code, request_id=exc.request_id, http_status=exc.http_status,
                ) from exc
            raise exc

        def lost_after_sending(exc: NetworkError, sent_at: float) -> CreateOutcomeUnknown:
            return CreateOutcomeUnknown(
                f"{label}: the connection failed after the request was sent, so it is not "
                "known whether the task was created.",
                request=resolved, body=body, sent_at=sent_at, cause=exc,
            )

        data, sent_at = send_create(lambda: self._call("POST", route, json=body), label=label,
                                    retry=self.retry, sleep=self._sleep, clock=self._clock,
                                    lost_after_sending=lost_after_sending,
                                    on_answer_error=resubmit_wait)
        task_id = data.get("task_id") if isinstance(data, dict) else None
        if not task_id or not isinstance(task_id, (str, int)):
            raise CreateOutcomeUnknown(
                f"{label}: Tripo's answer has no task id; the task was probably created.",
                request=resolved, body=body, sent_at=sent_at,
            )
        log.info("Created %s task %s", resolved.task_type, task_id)
        return str(task_id)

    # ================================================================== reconcile

    def _type_names(self, task_type: str) -> set[str]:
        names = {task_type}
        cls = REQUEST_CLASSES.get(task_type)
        if cls is not None:
            tail = cls.route.rsplit("/", 1)[-1]
            names |= {tail, tail.replace("-", "_")}
        return names

    def _known_tokens(self, request: TaskRequest) -> TaskRequest:
        """``request`` with local files replaced by the tokens this provider uploaded them as
        (those it did not upload stay local paths)."""
        replacements = {}
        for ref in request.local_files():
            token = self._uploaded.get(self._file_key(ref.value))
            if token:
                replacements[ref.path] = token
        return request.with_inputs(replacements) if replacements else request

    @staticmethod
    def _file_key(path: Union[str, os.PathLike]) -> tuple[str, int, int]:
        absolute = os.path.abspath(os.fspath(path))
        try:
            st = os.stat(absolute)
        except OSError:
            return (absolute, -1, -1)
        return (absolute, st.st_size, st.st_mtime_ns)

    def reconcile_create(self, request: TaskRequest, sent_at: float, *,
                         exclude: Iterable[str] = ()) -> Optional[str]:
        """See :meth:`Provider.reconcile_create`. Looks at ``GET /v3/account/usage`` (newest
        first) for tasks of the request's type created at/after ``sent_at`` - 120 s, then
        compares each candidate's ``input`` (``GET /v3/tasks/{id}``) with the body sent.
        Local files of ``request`` are compared through the tokens this provider uploaded
        them as; a local file it does not know makes the comparison undecidable."""
        excluded = {e for e in exclude if e}
        request = self._known_tokens(request)
        body = request.to_body()
        skip = {str(ref.path[0]) for ref in request.local_files()}
        names = self._type_names(request.task_type)
        window_start = float(sent_at) - RECONCILE_WINDOW_SECONDS

        candidates: list[tuple[Optional[float], UsageItem]] = []
        covered = False
        offset = 0
        for _page in range(_USAGE_MAX_PAGES):
            items = self.usage(limit=_USAGE_PAGE, offset=offset)
            for item in items:
                created = _parse_time(item.created_at)
                if created is not None and created < window_start:
                    covered = True  # newest first: older pages are outside the window
                    continue
                if not item.task_id or item.task_id in excluded:
                    continue
                if item.type is not None and item.type not in names:
                    continue
                candidates.append((created, item))
            if covered:
                break
            if len(items) < _USAGE_PAGE:
                covered = True  # end of the list
                break
            offset += len(items)
        if not covered:
            raise CreateOutcomeUnknown(
                "Too many recent tasks on the account to check whether the task was created.",
                request=request, body=body, sent_at=sent_at,
            )

        matches: list[tuple[float, str]] = []
        undecided: list[str] = []
        for created, item in candidates:
            try:
                task = self.get_task(item.task_id)
            except TaskNotFound:
                continue
            verdict = _input_matches(task.input, body, skip)
            if verdict is True:
                matches.append((created if created is not None else float("inf"), item.task_id))
            elif verdict is None:
                undecided.append(item.task_id)
        if matches:
            matches.sort()
            chosen = matches[0][1]
            log.info("Reconciled %s create with existing task %s", request.task_type, chosen)
            return chosen
        if undecided:
            raise CreateOutcomeUnknown(
                "Recent tasks exist whose input cannot be compared with this request.",
                request=request, body=body, sent_at=sent_at,
            )
        log.info("Reconciled %s create: no task was created", request.task_type)
        return None

    # ================================================================== reads

    def get_task(self, task_id: str) -> Task:
        if not isinstance(task_id, str) or not task_id.strip():
            raise ValidationError("No task id given.", field="task_id")
        task_id = task_id.strip()
        data = self._read("GET", f"/v3/tasks/{quote(task_id, safe='')}", what="task query")
        if not isinstance(data, dict):
            raise ProviderResponseError("Tripo's task answer is not an object.")
        return Task.from_api(data, task_id=task_id)

    def poll_tasks(self, task_ids: Iterable[str]) -> PollResult:
        """Poll many tasks with ``POST /v3/tasks/list`` (100 a request). An id the server
        neither returned nor listed as missed appears in neither field (ask again later)."""
        ids = list(dict.fromkeys(i.strip() for i in task_ids if isinstance(i, str) and i.strip()))
        result = PollResult()
        for start in range(0, len(ids), POLL_CHUNK):
            chunk = ids[start:start + POLL_CHUNK]
            data = self._read("POST", "/v3/tasks/list", json={"task_ids": chunk},
                              what="task polling")
            if not isinstance(data, dict):
                raise ProviderResponseError("Tripo's task list answer is not an object.")
            tasks = data.get("tasks") or {}
            if isinstance(tasks, list):
                tasks = {str(t.get("task_id")): t for t in tasks if isinstance(t, dict)}
            if not isinstance(tasks, dict):
                raise ProviderResponseError("Tripo's task list answer has no task map.")
            for key, raw in tasks.items():
                task = Task.from_api(raw, task_id=str(key))
                result.tasks[task.task_id or str(key)] = task
            for missed in data.get("missed") or []:
                if isinstance(missed, str) and missed not in result.tasks:
                    result.missed.append(missed)
        return result

    def balance(self) -> Balance:
        data = self._read("GET", "/v3/account/balance", what="balance query")
        if not isinstance(data, dict) or "balance" not in data:
            raise ProviderResponseError("Tripo's balance answer has no balance.")
        try:
            return Balance(balance=float(data.get("balance") or 0.0),
                           frozen=float(data.get("frozen") or 0.0))
        except (TypeError, ValueError):
            raise ProviderResponseError("Tripo's balance answer is not a number.") from None

    def usage(self, limit: int = 50, offset: int = 0) -> list[UsageItem]:
        """One page of the account's task history, newest first."""
        data = self._read("GET", "/v3/account/usage",
                          params={"limit": int(limit), "offset": int(offset)}, what="usage query")
        items = data.get("items") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise ProviderResponseError("Tripo's usage answer has no item list.")
        return [UsageItem.model_validate(i) for i in items if isinstance(i, dict)]

    # ================================================================== files

    @staticmethod
    def _file_format(path: Path) -> str:
        ext = path.suffix.lower().lstrip(".")
        if ext in MODEL_FILE_FORMATS:
            validate_model_file(path, field="file")
            return ext
        fmt, _w, _h = validate_image_file(path, field="file")
        return fmt

    def upload_file(self, path: Union[str, os.PathLike]) -> str:
        """Upload a local image (png/jpeg/webp) or model (glb/fbx/obj/stl); return its
        ``file_...`` token. ≤ 50 MB: multipart ``POST /v3/files``; larger (≤ 150 MB):
        ``POST /v3/files/presign`` then ``PUT`` to the presigned URL without the API key."""
        path = Path(path)
        fmt = self._file_format(path)
        size = path.stat().st_size
        if size > MAX_UPLOAD_BYTES:  # checked by _file_format too; kept for clarity
            raise ValidationError(f"'{path.name}' is larger than 150 MB.", field="file")
        key = self._file_key(path)
        if size <= MULTIPART_MAX_BYTES:
            token = call_with_retry(lambda: self._upload_multipart(path, fmt), policy=self.retry,
                                    sleep=self._sleep, what="upload")
        else:
            token = call_with_retry(lambda: self._upload_presigned(path, fmt, size),
                                    policy=self.retry, sleep=self._sleep, what="upload")
        self._uploaded[key] = token
        log.info("Uploaded %s (%d bytes)", path.name, size)
        return token

    def _upload_multipart(self, path: Path, fmt: str) -> str:
        with open(path, "rb") as fh:
            data = self._call("POST", "/v3/files",
                              files={"file": (path.name, fh, UPLOAD_CONTENT_TYPES[fmt])},
                              timeout=self.upload_timeout)
        return self._token_from(data)

    def _upload_presigned(self, path: Path, fmt: str, size: int) -> str:
        data = self._call("POST", "/v3/files/presign", json={"format": fmt})
        token = self._token_from(data)
        url = data.get("presigned_url") if isinstance(data, dict) else None
        if not isinstance(url, str) or not url.lower().startswith(("https://", "http://")):
            raise ProviderResponseError("Tripo's presign answer has no upload URL.")
        try:
            with open(path, "rb") as fh:
                resp = self._plain.put(url, data=fh, timeout=self.upload_timeout,
                                       headers={"Authorization": None,
                                                "Content-Type": UPLOAD_CONTENT_TYPES[fmt],
                                                "Content-Length": str(size)})
        except requests.RequestException as exc:
            raise network_error_from(exc, what="the upload server") from exc
        with resp:
            if not 200 <= resp.status_code < 300:
                log.debug("PUT %s -> HTTP %s", redact_url(url), resp.status_code)
                if resp.status_code in (429,) or resp.status_code >= 500:
                    raise ServerError(f"The upload server answered HTTP {resp.status_code}.",
                                      http_status=resp.status_code)
                raise ProviderResponseError(
                    f"The upload was refused (HTTP {resp.status_code}).",
                    http_status=resp.status_code,
                )
        return token

    @staticmethod
    def _token_from(data: Any) -> str:
        token = data.get("file_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise ProviderResponseError("Tripo's upload answer has no file token.")
        return token

    def _upload_inputs(self, request: TaskRequest) -> TaskRequest:
        """Upload the local files of ``request``; return a copy with their tokens."""
        local = request.local_files()
        if not local:
            return request
        tokens: dict[str, str] = {}
        replacements: dict[tuple, str] = {}
        for ref in local:
            key = os.path.abspath(ref.value)
            if key not in tokens:
                tokens[key] = self.upload_file(key)
            replacements[ref.path] = tokens[key]
        return request.with_inputs(replacements)

    # ================================================================== download

    def download(self, url: str, dest: Union[str, os.PathLike], *, task_id: Optional[str] = None,
                 output_key: str = "model_url", max_bytes: Optional[int] = DEFAULT_MAX_BYTES,
                 progress: Optional[Callable[[int, Optional[int]], None]] = None,
                 max_attempts: Optional[int] = None,
                 patience: float = DOWNLOAD_PATIENCE) -> Path:
        """Downloads an output; an expired link is refreshed from the task (``task_id``) as
        often as needed. Cut transfers are resumed or retried until ``max_attempts`` in a row
        brought nothing (None: no count) or ``patience`` seconds have passed."""
        refresh = None
        if task_id:
            old_path = urlsplit(url).path

            def refresh() -> Optional[str]:
                # The same file under a fresh signature, else the URL now under output_key.
                task = self.get_task(task_id)
                if not task.is_success:
                    return None
                urls = task.output.urls()
                for candidate in urls.values():
                    if urlsplit(candidate).path == old_path:
                        return candidate
                return task.output.get_url(output_key)
        return download_file(self._plain, url, dest, max_bytes=max_bytes, refresh_url=refresh,
                             timeout=self.timeout, sleep=self._sleep, progress=progress,
                             max_attempts=max_attempts, patience=patience)

    # ================================================================== lifetime

    def close(self) -> None:
        self._sessions.close()
