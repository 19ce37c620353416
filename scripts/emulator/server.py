"""A local Tripo apiv3 emulator: a real HTTP server on loopback, standard library only.

    from emulator.server import EmulatorServer      # with <repo>/scripts on sys.path
    server = EmulatorServer("127.0.0.1", 0, task_seconds=0.5).start()
    ... requests to server.url ...
    server.stop()

Routes:
- `/v3/...`: the apiv3 routes (api.py), `Authorization: Bearer <key>` required.
- `GET /files/<task_id>/<name>?expires=&sig=`: signed, expiring downloads, streamed from disk.
- `PUT /uploads/<file_token>?expires=&sig=`: presigned uploads (no auth), streamed to disk.
- `/_emulator/...`: test control, no auth (see `_control`).
- `/v1/...`, `/account/user/wallet/`, `/aistudio/assets/...`: the 3D AI Studio wire format for
  Tripo models (aistudio.py), with its own accounts, rate limit and error bodies.
Faults (faults.py) are applied here, around the processing of a request. Every request is
recorded in the request log, with whether it carried an Authorization header (never its value).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shlex
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from . import aistudio, catalog
from .api import MAX_MULTIPART_UPLOAD, MAX_PRESIGNED_UPLOAD, TripoApi
from .errors import ApiError, invalid
from .faults import FaultBook
from .images import IMAGE_FORMATS, MODEL_FORMATS, sniff_format
from .state import Config, RequestLog

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CACHE_DIR = REPO / ".cache" / "emulator-assets"
MAX_JSON_BODY = 8 * 1024 * 1024
CHUNK = 1024 * 1024
MALFORMED_BODY = b'{"code": 0, "data": {"task_id": "'  # cut short: not valid JSON

CONTENT_TYPES = {
    ".glb": "model/gltf-binary", ".png": "image/png", ".webp": "image/webp", ".zip": "application/zip",
    ".fbx": "application/octet-stream", ".usdz": "model/vnd.usdz+zip", ".stl": "model/stl",
    ".3mf": "model/3mf", ".obj": "model/obj",
}


def resolve_blender_command(value=None) -> list[str]:
    """How the asset factory starts Blender: the argument (a list, or a string to shell-split),
    else $TRIPO_BLENDER_COMMAND (shell-split), else $BLENDER_EXECUTABLE, else this Python."""
    if isinstance(value, (list, tuple)) and value:
        return list(value)
    if isinstance(value, str) and value.strip():
        return shlex.split(value)
    if os.environ.get("TRIPO_BLENDER_COMMAND"):
        return shlex.split(os.environ["TRIPO_BLENDER_COMMAND"])
    if os.environ.get("BLENDER_EXECUTABLE"):
        return [os.environ["BLENDER_EXECUTABLE"]]
    return [sys.executable]


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict = field(default_factory=dict)
    file: Path | None = None  # streamed instead of `body`
    offset: int = 0
    length: int = 0


def _json(status: int, payload) -> Response:
    return Response(status, json.dumps(payload).encode("utf-8"))


def _ok(data) -> Response:
    return _json(200, {"code": 0, "data": data})


def _error(exc: ApiError, request_id: str) -> Response:
    response = _json(exc.status, {"code": exc.code, "message": exc.message,
                                  "suggestion": exc.suggestion, "request_id": request_id})
    response.headers.update(exc.headers)
    return response


FAULT_ANSWERS = {
    "429": lambda: ApiError(429, 1007, "too many requests (injected)", headers={"Retry-After": "1"}),
    "500": lambda: ApiError(500, 1000, "internal server error (injected)"),
    "503": lambda: ApiError(503, 1000, "service unavailable (injected)", headers={"Retry-After": "1"}),
    "2000": lambda: ApiError(429, 2000, "concurrency limit reached (injected)"),
    "expire": lambda: ApiError(403, 1005, "the URL has expired (injected)"),
}


def classify(path: str) -> tuple[str, str | None]:
    """(log kind, fault target) of a request path."""
    if path.startswith("/_emulator/"):
        return "control", None
    if aistudio.owns(path):
        return aistudio.classify(path)
    if path.startswith("/files/"):
        return "download", "download"
    if path.startswith("/uploads/"):
        return "upload", "upload"
    if path in catalog.ROUTES:
        return "api", "create"
    targets = {"/v3/files": "upload", "/v3/files/presign": "upload", "/v3/tasks/list": "list",
               "/v3/account/balance": "balance", "/v3/account/usage": "usage"}
    if path in targets:
        return "api", targets[path]
    if path.startswith("/v3/tasks/"):
        return "api", "get"
    return "api", "other"


class BodyTooLarge(Exception):
    pass


class _Body:
    """The request body, read lazily (Content-Length or chunked)."""

    def __init__(self, handler: BaseHTTPRequestHandler):
        self._rfile = handler.rfile
        self.chunked = "chunked" in handler.headers.get("Transfer-Encoding", "").lower()
        try:
            self.length = None if self.chunked else int(handler.headers.get("Content-Length") or 0)
        except ValueError:
            self.length = 0
        self.consumed = not self.chunked and self.length == 0

    def blocks(self, limit: int):
        if self.length is not None and self.length > limit:
            raise BodyTooLarge()
        total = 0
        for block in (self._chunks() if self.chunked else self._fixed()):
            total += len(block)
            if total > limit:
                raise BodyTooLarge()
            yield block
        self.consumed = True

    def _fixed(self):
        left = self.length
        while left > 0:
            block = self._rfile.read(min(CHUNK, left))
            if not block:
                raise ConnectionError("the client closed the connection mid-body")
            left -= len(block)
            yield block

    def _chunks(self):
        while True:
            size = int(self._rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self._rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            left = size
            while left > 0:
                block = self._rfile.read(min(CHUNK, left))
                if not block:
                    raise ConnectionError("the client closed the connection mid-body")
                left -= len(block)
                yield block
            self._rfile.readline()

    def read(self, limit: int) -> bytes:
        return b"".join(self.blocks(limit))


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str, bytes]]:
    """{field name: (file name, content)} of a multipart/form-data body."""
    return {name: (filename, content)
            for name, (filename, _type, content) in multipart_parts(content_type, body).items()}


def multipart_parts(content_type: str, body: bytes) -> dict[str, tuple[str, str | None, bytes]]:
    """{field name: (file name, the part's Content-Type or None, content)} of a
    multipart/form-data body."""
    match = re.search(r'boundary="?([^";]+)"?', content_type or "")
    if not content_type.lower().startswith("multipart/form-data") or not match:
        raise invalid("the upload must be multipart/form-data with a `file` field")
    delimiter = b"--" + match.group(1).encode("latin-1")
    fields = {}
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        lines = head.decode("utf-8", "replace").split("\r\n")
        disposition = next((line for line in lines
                            if line.lower().startswith("content-disposition")), "")
        part_type = next((line.split(":", 1)[1].strip() for line in lines
                          if line.lower().startswith("content-type:")), None)
        name = re.search(r'\bname="([^"]*)"', disposition)
        filename = re.search(r'\bfilename="([^"]*)"', disposition)
        if name:
            fields[name.group(1)] = (filename.group(1) if filename else "", part_type,
                                     content.removesuffix(b"\r\n"))
    return fields


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TripoEmulator/1.0"
    timeout = 300  # idle keep-alive connections end after this

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format, *args):  # noqa: A002  (the base class's signature)
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self):
        self._serve()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET

    # --- the request cycle --------------------------------------------------------------------

    def _serve(self) -> None:
        emulator: EmulatorServer = self.server.emulator
        request_id = f"req_{os.urandom(8).hex()}"
        parts = urlsplit(self.path)
        path, query = parts.path, parts.query
        kind, target = classify(path)
        has_auth = "Authorization" in self.headers
        entry = emulator.log.start(self.command, path, query, has_auth, kind)
        entry["content_type"] = self.headers.get("Content-Type")
        if self.headers.get("Range"):
            entry["range"] = self.headers.get("Range")
        if has_auth and kind in ("download", "upload"):
            log.warning("a %s request carried an Authorization header: %s %s", kind,
                        self.command, path)
        fault = emulator.faults.take(target)
        if fault:
            entry["fault"] = fault.describe()
            log.info("fault %s on %s %s", fault.describe(), self.command, path)
        body = _Body(self)

        try:
            if self.command == "PUT" and kind == "upload":
                payload = None  # streamed to disk while processing
            else:
                limit = MAX_MULTIPART_UPLOAD + CHUNK if path == "/v3/files" else (
                    aistudio.MAX_BODY if aistudio.owns(path) else MAX_JSON_BODY)
                payload = body.read(limit)
                if payload and "json" in self.headers.get("Content-Type", "json"):
                    try:
                        entry["json"] = json.loads(payload)
                    except ValueError:
                        pass
                if payload and path == "/v3/files":
                    try:  # the fields and their content types, for tests (never the bytes)
                        entry["multipart"] = {
                            name: {"filename": filename, "content_type": part_type}
                            for name, (filename, part_type, _content)
                            in multipart_parts(self.headers.get("Content-Type", ""), payload).items()}
                    except ApiError:
                        pass
        except BodyTooLarge:
            self.close_connection = True
            what = "50 MB" if path == "/v3/files" else f"{MAX_JSON_BODY // CHUNK} MB"
            self._send(emulator.error_response(path, invalid(f"the request body exceeds {what}"),
                                               request_id), request_id, entry)
            return
        except (ConnectionError, ValueError, OSError):
            self.close_connection = True
            return

        kind_of_fault = fault.kind if fault else None
        if kind_of_fault == "reset_before":
            self._reset()
            return
        if kind_of_fault == "late":
            if target == "create":
                emulator.process_late(path, query, payload, self.headers.get("Authorization"),
                                      self.headers.get("Content-Type", ""))
            self._reset()
            return
        if kind_of_fault == "slow":
            time.sleep(emulator.api.config.slow_seconds)
        if kind_of_fault == "malformed":
            response = Response(200, MALFORMED_BODY)
        elif kind_of_fault in FAULT_ANSWERS:
            response = emulator.error_response(path, FAULT_ANSWERS[kind_of_fault](), request_id)
        else:
            try:
                response = emulator.dispatch(self, kind, path, query, payload, body)
            except ApiError as exc:
                response = emulator.error_response(path, exc, request_id)
            except BodyTooLarge:
                self.close_connection = True
                response = _error(invalid("the upload exceeds 150 MB"), request_id)
            except (ConnectionError, TimeoutError):  # the client went away mid-body
                self.close_connection = True
                return
            except Exception:  # an emulator bug: answer like the service would, and log it
                log.exception("error handling %s %s", self.command, path)
                response = _error(ApiError(500, 1000, "internal server error"), request_id)
        if not body.consumed:
            self.close_connection = True  # an unread body would be taken for the next request
        if kind_of_fault == "reset_after":
            self._reset()
            return
        self._send(response, request_id, entry, truncate=kind_of_fault == "truncate")

    def _reset(self) -> None:
        """Ends the connection without an answer (RST)."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass

    def _send(self, response: Response, request_id: str, entry: dict, truncate=False) -> None:
        length = response.length if response.file else len(response.body)
        entry["status"] = response.status
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(length))
            self.send_header("X-Request-Id", request_id)
            for name, value in response.headers.items():
                self.send_header(name, value)
            if self.close_connection or truncate:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command == "HEAD":
                return
            to_send = length // 2 if truncate else length
            if response.file is None:
                self.wfile.write(response.body[:to_send])
                return
            with open(response.file, "rb") as handle:
                handle.seek(response.offset)
                while to_send > 0:
                    block = handle.read(min(CHUNK, to_send))
                    if not block:
                        break
                    self.wfile.write(block)
                    to_send -= len(block)
        except OSError:  # the client went away while we answered
            self.close_connection = True


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, *args, **kwargs):
        self.connections: set = set()  # open client connections, closed by `stop()`
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address):
        with self._connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections, self.connections = list(self.connections), set()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):
        log.debug("connection error from %s", client_address, exc_info=True)


class EmulatorServer:
    """The emulator on `host:port` (0: any free port). Binds at construction, so `url` is known
    before `start()`; `start()` serves in a background thread; `stop()` ends it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None,
                 task_seconds: float = 3.0, faults: str = "", blender_command=None,
                 cache_dir=None, *, concurrency_limit: int = 10, rate_limit_per_minute: int = 200,
                 balance: int = 10000, blocked_word: str = "forbidden",
                 url_ttl_seconds: float = 300.0, slow_seconds: float = 2.0, factory=None,
                 factory_workers: int = 2, aistudio_api_key: str | None = None,
                 aistudio_rate_limit: int = 3, asset_profile: str = "light"):
        config = Config(api_key=api_key, task_seconds=task_seconds,
                             concurrency_limit=concurrency_limit,
                             rate_limit_per_minute=rate_limit_per_minute, balance=balance,
                             blocked_word=blocked_word, url_ttl_seconds=url_ttl_seconds,
                             slow_seconds=slow_seconds)
        config.update({"asset_profile": asset_profile})  # validated like a config request
        self.cache_dir = Path(cache_dir) if cache_dir else DEFAULT_CACHE_DIR
        self.blender_command = resolve_blender_command(blender_command)
        self.faults = FaultBook()
        self.faults.add(faults)  # a bad spec raises ValueError here, before anything listens
        self.log = RequestLog()
        self._factory = factory
        self._factory_lock = threading.Lock()
        self.api = TripoApi(config, self._get_factory, self.cache_dir, factory_workers)
        self.studio = aistudio.StudioApi(
            aistudio.StudioConfig(api_key=aistudio_api_key, task_seconds=task_seconds,
                                  rate_limit_per_minute=aistudio_rate_limit),
            self._get_factory, self.cache_dir, make_response=Response,
            parse_multipart=parse_multipart, factory_workers=factory_workers)
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.emulator = self
        bound_host, bound_port = self._httpd.server_address[:2]
        shown = "127.0.0.1" if bound_host in ("0.0.0.0", "") else bound_host
        self.url = f"http://{shown}:{bound_port}"
        self.port = bound_port
        self.api.base_url = self.url
        self.studio.base_url = self.url
        self._thread: threading.Thread | None = None

    def _get_factory(self):
        with self._factory_lock:
            if self._factory is None:
                from .factory_client import AssetFactory  # another module; imported on first use
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                self._factory = AssetFactory(self.blender_command, self.cache_dir)
            return self._factory

    def start(self) -> "EmulatorServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="tripo-emulator",
                                        daemon=True)
        self._thread.start()
        log.info("Tripo emulator listening on %s (blender: %s)", self.url,
                 shlex.join(self.blender_command))
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._httpd.server_close()
        self._httpd.close_connections()  # idle keep-alive connections would outlive the server
        self.api.close()
        self.studio.close()
        close = getattr(self._factory, "close", None)
        if close is not None:
            close()  # ends the factory's Blender worker

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- dispatch -----------------------------------------------------------------------------

    def process_late(self, path: str, query: str, payload: bytes, authorization: str | None,
                     content_type: str) -> None:
        """The `late` fault: processes a create `late_seconds` from now, unanswered."""
        def process() -> None:
            try:
                key = self.api.authenticate(authorization)
                data = json.loads(self._api("POST", path, query, payload, key, content_type).body)
                log.info("late create processed: %s", data.get("data"))
            except ApiError as exc:
                log.info("late create refused: %s %s", exc.code, exc.message)
            except Exception:  # noqa: BLE001 - an emulator bug must not kill the timer thread silently
                log.exception("late create of %s failed", path)

        timer = threading.Timer(self.api.config.late_seconds, process)
        timer.daemon = True
        timer.start()


    def error_response(self, path: str, exc: ApiError, request_id: str) -> Response:
        """An error answer in the wire format of the path's flavour."""
        if aistudio.owns(path):
            return self.studio.error_response(exc, request_id)
        return _error(exc, request_id)

    def dispatch(self, handler: _Handler, kind: str, path: str, query: str, payload, body: _Body):
        method = handler.command
        if kind == "control":
            return self._control(method, path.removeprefix("/_emulator/"), payload)
        if aistudio.owns(path):
            return self.studio.handle(method, path, query, payload, handler.headers)
        if kind == "download":
            if method not in ("GET", "HEAD"):
                raise ApiError(405, 1003, "downloads are GET only")
            return self._download(path, query, handler.headers.get("Range"))
        if kind == "upload":
            if method != "PUT":
                raise ApiError(405, 1003, "presigned uploads are PUT only")
            return self._put_upload(path, query, body, handler.headers.get("Content-Type"))
        if not path.startswith("/v3/"):
            raise ApiError(404, 1004, f"no route {path}")
        key = self.api.authenticate(handler.headers.get("Authorization"))
        return self._api(method, path, query, payload, key, handler.headers.get("Content-Type", ""))

    def _api(self, method: str, path: str, query: str, payload: bytes, key: str,
             content_type: str) -> Response:
        def expect(wanted: str) -> None:
            if method != wanted:
                raise ApiError(405, 1003, f"{path} expects {wanted}")

        def json_body():
            if not payload:
                return None
            try:
                return json.loads(payload)
            except ValueError:
                raise ApiError(400, 1003, "the body is not valid JSON") from None

        if path in catalog.ROUTES:
            expect("POST")
            return _ok(self.api.create(path, key, json_body()))
        if path.startswith(("/v3/generation/", "/v3/models/", "/v3/mesh/", "/v3/animations/")) \
                and catalog.is_retired_route(path):
            raise ApiError(400, 2016, f"{path} is retired: refine and stylize are no longer offered")
        if path == "/v3/tasks/list":
            expect("POST")
            return _ok(self.api.list_tasks(key, json_body()))
        if path.startswith("/v3/tasks/"):
            expect("GET")
            return _ok(self.api.get_task(key, path.removeprefix("/v3/tasks/"), query))
        if path == "/v3/account/balance":
            expect("GET")
            return _ok(self.api.balance(key))
        if path == "/v3/account/usage":
            expect("GET")
            return _ok(self.api.usage(key, query))
        if path == "/v3/files":
            expect("POST")
            return _ok(self._multipart_upload(key, content_type, payload))
        if path == "/v3/files/presign":
            expect("POST")
            return _ok(self.api.presign(key, json_body()))
        raise ApiError(404, 1004, f"no route {path}")

    # --- files --------------------------------------------------------------------------------

    def _download(self, path: str, query: str, range_header: str | None) -> Response:
        self.api.signer.check(path, query)
        parts = path.split("/", 3)
        file = self.api.served_file(parts[2], parts[3]) if len(parts) == 4 else None
        if file is None or not file.is_file():
            raise ApiError(404, 2019, "file not found in storage")
        size = file.stat().st_size
        response = Response(200, content_type=CONTENT_TYPES.get(file.suffix, "application/octet-stream"),
                            file=file, length=size, headers={"Accept-Ranges": "bytes"})
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", (range_header or "").strip())
        if match and (match.group(1) or match.group(2)):
            if match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            else:  # a suffix range: the last N bytes
                start, end = max(0, size - int(match.group(2))), size - 1
            if start >= size or start > end:
                return Response(416, headers={"Content-Range": f"bytes */{size}"})
            response.status, response.offset, response.length = 206, start, end - start + 1
            response.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return response

    def _put_upload(self, path: str, query: str, body: _Body, content_type: str | None) -> Response:
        self.api.signer.check(path, query)
        upload = self.api.uploads.get(path.removeprefix("/uploads/"))
        if upload is None:
            raise ApiError(404, 2019, "no such presigned upload")

        dest = self.api.upload_dir / f"{upload.token}.{upload.declared_format}"
        digest = hashlib.md5()
        try:
            with open(dest, "wb") as handle:
                for block in body.blocks(MAX_PRESIGNED_UPLOAD):
                    handle.write(block)
                    digest.update(block)
        except BodyTooLarge:
            dest.unlink(missing_ok=True)
            raise
        if dest.stat().st_size == 0:
            dest.unlink()
            raise invalid("the uploaded file is empty")
        # Our choice where the SDK leaves it to the storage server: a presigned URL is signed for
        # the content type of the declared format (storage services refuse a PUT whose type
        # differs from the signed one), and the official SDK tripo3d 1.0.0 sends that type.
        # Checked after the body so that an oversized body is still refused as such.
        expected = catalog.UPLOAD_CONTENT_TYPES[upload.declared_format]
        if (content_type or "").split(";")[0].strip().lower() != expected:
            dest.unlink()
            raise ApiError(403, 1005, f"the presigned PUT must carry Content-Type: {expected} "
                                      f"for a {upload.declared_format} file (got {content_type!r})")
        self.api.store_upload(upload, dest, f"upload.{upload.declared_format}")
        return Response(200, b"", content_type="text/plain", headers={"ETag": f'"{digest.hexdigest()}"'})

    def _multipart_upload(self, key: str, content_type: str, payload: bytes) -> dict:
        fields = multipart_parts(content_type, payload or b"")
        if "file" not in fields:
            raise invalid("the multipart body needs a `file` field")
        unknown = sorted(set(fields) - {"file"})
        if unknown:
            raise invalid(f"{unknown[0]}: the multipart body takes only a `file` field")
        filename, part_type, data = fields["file"]
        if not data:
            raise invalid("the uploaded file is empty")
        if len(data) > MAX_MULTIPART_UPLOAD:
            raise invalid("files up to 50 MB go to POST /v3/files; use /v3/files/presign for larger ones")
        fmt = sniff_format(data[:64], filename)
        if fmt not in IMAGE_FORMATS + MODEL_FORMATS:
            raise invalid(f"unsupported file type {fmt or 'unknown'} "
                          f"(one of {', '.join(IMAGE_FORMATS + MODEL_FORMATS)})")
        # Our choice where the SDK leaves it to the server: the part's content type must be the
        # one of its format, as the official SDK tripo3d 1.0.0 sends it (model/gltf-binary for a
        # GLB), so a client sending a generic type fails here rather than in production.
        expected = catalog.UPLOAD_CONTENT_TYPES[fmt]
        if (part_type or "").split(";")[0].strip().lower() != expected:
            raise invalid(f"file: the part's Content-Type must be {expected} for a {fmt} file "
                          f"(got {part_type!r})")
        upload = self.api.new_upload(key, fmt)
        dest = self.api.upload_dir / f"{upload.token}.{fmt}"
        dest.write_bytes(data)
        self.api.store_upload(upload, dest, filename)
        return {"file_token": upload.token}

    # --- test control -------------------------------------------------------------------------

    def _control(self, method: str, name: str, payload: bytes) -> Response:
        """`POST reset`, `POST config {...}`, `POST faults {"spec", "clear"}`, `GET faults`,
        `GET requests`, `GET tasks`, `POST big-file {"size_mb"}`, `GET health`."""
        try:
            body = json.loads(payload) if payload else {}
        except ValueError:
            return _json(400, {"error": "the body is not valid JSON"})
        if not isinstance(body, dict):
            return _json(400, {"error": "the body must be a JSON object"})
        try:
            if name.startswith("aistudio/"):
                status, answer = self.studio.control(method, name.removeprefix("aistudio/"), body)
                return _json(status, answer)
            if (method, name) == ("POST", "reset"):
                self.api.reset()
                self.studio.reset()
                self.faults.clear()
                self.log.clear()
                return _json(200, {"ok": True})
            if (method, name) == ("POST", "config"):
                return _json(200, {"config": self.api.configure(body)})
            if (method, name) == ("GET", "config"):
                return _json(200, {"config": self.api.config.as_dict()})
            if (method, name) == ("POST", "faults"):
                if body.get("clear"):
                    self.faults.clear()
                self.faults.add(body.get("spec", ""))
                return _json(200, {"faults": self.faults.pending()})
            if (method, name) == ("GET", "faults"):
                return _json(200, {"faults": self.faults.pending()})
            if (method, name) == ("GET", "requests"):
                return _json(200, {"requests": self.log.entries()})
            if (method, name) == ("GET", "tasks"):
                return _json(200, {"tasks": self.api.dump_tasks()})
            if (method, name) == ("POST", "big-file"):
                return _json(200, {"url": self.api.big_file(body.get("size_mb", 200))})
            if (method, name) == ("GET", "health"):
                return _json(200, {"ok": True, "url": self.url})
        except ValueError as exc:
            return _json(400, {"error": str(exc)})
        return _json(404, {"error": f"no control route {method} /_emulator/{name}"})
