"""Streamed, size-checked, atomic downloads of task outputs.

- The body is written in chunks to ``<dest>.part`` beside the destination and moved into
  place with ``os.replace`` only once complete; on any failure the partial file is removed.
  Memory use stays flat whatever the size.
- Only http(s) URLs. The API key is never sent: the session given must be a plain one (no
  auth), and the ``Authorization`` header is removed explicitly on every request anyway.
- Signed output URLs expire: on 401/403/410 the ``refresh_url`` callback (the provider
  re-queries the task) is called for a fresh URL, as often as needed: a slow transfer of a big
  file can outlive several short-lived links. What bounds it is time (``patience``), not a count.
- A body shorter than ``Content-Length`` (cut connection) is retried; where the server accepts
  ranges (``Accept-Ranges: bytes``) the retry asks only for the missing bytes (``Range``) and
  appends them, checked against ``Content-Range``. Retries stop after ``max_attempts`` in a row
  that brought no new byte (the job engine sets no count: a paid result is worth waiting for),
  or when ``patience`` runs out; then :class:`DownloadError`.
- One writer per ``.part``: the download holds an exclusive lock on it (``fcntl.flock`` on
  POSIX) from the first byte to the rename, so a second download of the same file (another
  process, or a restarted engine in this one) waits for the first to finish or give up instead
  of writing into the same file.
- A ``progress`` callback may raise :class:`DownloadCancelled` to stop between chunks (an
  engine that stops); the ``.part`` is removed then too.

No ``bpy`` here (see ``core/__init__``).
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional, Union
from urllib.parse import urlsplit

import requests

from ..protocol.errors import DownloadError, TripoError
from .http import redact_url

log = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:  # Windows: no .part lock (one engine per process downloads a job)
    fcntl = None

__all__ = ["download_file", "DownloadCancelled", "CHUNK_SIZE", "DEFAULT_MAX_BYTES",
           "EXPIRED_STATUSES"]

CHUNK_SIZE = 1024 * 1024
#: Default cap of a single download (1 GiB).
DEFAULT_MAX_BYTES = 1024 * 1024 * 1024
#: Answers taken as "this signed URL expired".
EXPIRED_STATUSES = frozenset({401, 403, 410})
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class DownloadCancelled(Exception):
    """Raised by a progress callback to stop a download between chunks."""


#: How long a download waits for another writer of the same ``.part`` to finish.
PART_LOCK_TIMEOUT = 120.0
#: How long one download keeps refreshing expired links and retrying cut transfers.
DOWNLOAD_PATIENCE = 600.0


class _Truncated(Exception):
    def __init__(self, reason: str, resumable: bool = False) -> None:
        super().__init__(reason)
        self.resumable = resumable


class _RangeRefused(Exception):
    """The server did not answer a Range request with the bytes asked for: start over."""


class _Expired(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Retryable(Exception):
    pass


def _check_url(url: str) -> None:
    if not isinstance(url, str) or urlsplit(url).scheme.lower() not in ("http", "https") \
            or not urlsplit(url).hostname:
        raise DownloadError(
            f"Cannot download '{redact_url(str(url))}': only http(s) links are supported.",
            url=redact_url(str(url)),
        )


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:  # pragma: no cover - e.g. file locked on Windows
        log.warning("Could not remove partial download %s: %s", path, exc)


@contextmanager
def _part_lock(part: Path, timeout: float, sleep: Callable[[float], None]):
    """Holds an exclusive lock on ``part`` (created if missing) for the whole download."""
    if fcntl is None:
        yield
        return
    deadline = time.monotonic() + timeout
    while True:
        fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            if time.monotonic() > deadline:
                raise DownloadError(f"'{part.name}' is still being downloaded by another "
                                    "process; try again once it has finished.") from None
            sleep(0.2)
            continue
        try:  # the previous holder may have removed or renamed the file: lock the live one
            same = os.fstat(fd).st_ino == os.stat(part).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _content_range_start(value: Optional[str]) -> tuple[Optional[int], Optional[int]]:
    """(first byte, total size) of a ``Content-Range: bytes A-B/T`` header (None where absent)."""
    if not value or not value.strip().lower().startswith("bytes "):
        return None, None
    span, _, total = value.strip()[6:].partition("/")
    first = span.partition("-")[0]
    try:
        return int(first), (int(total) if total.strip().isdigit() else None)
    except ValueError:
        return None, None


def _fetch_once(session: requests.Session, url: str, part: Path, *, max_bytes: Optional[int],
                chunk_size: int, timeout, progress: Optional[Callable[[int, Optional[int]], None]],
                offset: int = 0) -> int:
    """One attempt: stream ``url`` into ``part`` (from byte ``offset`` on, appended to the
    first ``offset`` bytes already there, when ``offset`` > 0); returns the size on disk."""
    headers = {
        "Authorization": None,  # None removes it even if the session had one
        "Accept-Encoding": "identity",  # so Content-Length is the size on disk
        "Accept": "*/*",
    }
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = session.get(url, stream=True, timeout=timeout, headers=headers,
                           allow_redirects=True)
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
            requests.exceptions.ChunkedEncodingError) as exc:
        raise _Retryable(f"connection failed ({type(exc).__name__})") from exc
    with resp:
        if resp.status_code in EXPIRED_STATUSES:
            raise _Expired(resp.status_code)
        if resp.status_code in _RETRY_STATUSES:
            raise _Retryable(f"HTTP {resp.status_code}")
        if resp.status_code == 404:
            raise _Expired(404)
        if offset and resp.status_code == 416:
            raise _RangeRefused()
        if not 200 <= resp.status_code < 300:
            raise DownloadError(f"The download failed: the server answered HTTP {resp.status_code}.",
                                http_status=resp.status_code, url=redact_url(url))
        encoded = resp.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
        start = 0
        total: Optional[int] = None
        if resp.status_code == 206:
            first, total = _content_range_start(resp.headers.get("Content-Range"))
            if not offset or first != offset or encoded:
                raise _RangeRefused()  # not the bytes asked for: never splice them in
            start = offset
        length = resp.headers.get("Content-Length")
        if length is not None and not encoded:
            try:
                total = start + int(length) if total is None else total
            except ValueError:
                total = None
        elif resp.status_code != 206:
            total = None
        resumable = resp.headers.get("Accept-Ranges", "").lower() == "bytes" and not encoded
        if max_bytes is not None and total is not None and total > max_bytes:
            raise DownloadError(
                f"The file is {total / 1048576:.1f} MB, more than the "
                f"{max_bytes / 1048576:.1f} MB allowed for a download; nothing was saved.",
                url=redact_url(url),
            )
        written = start
        if total is not None and hasattr(getattr(resp, "raw", None), "enforce_content_length"):
            # A cut body then ends the iteration with every byte received (checked against the
            # length below), instead of an exception that drops the last buffered block.
            resp.raw.enforce_content_length = False
        try:
            with open(part, "r+b" if start else "wb") as out:
                if start:
                    out.seek(start)
                    out.truncate()
                for chunk in resp.iter_content(chunk_size=chunk_size):
                    if not chunk:
                        continue
                    written += len(chunk)
                    if max_bytes is not None and written > max_bytes:
                        raise DownloadError(
                            f"The file is larger than the {max_bytes / 1048576:.1f} MB allowed "
                            "for a download; it was stopped and nothing was saved.",
                            url=redact_url(url),
                        )
                    out.write(chunk)
                    if progress is not None:
                        progress(written, total)
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError,
                requests.exceptions.Timeout) as exc:
            raise _Truncated(f"connection cut after {written} bytes", resumable) from exc
        if total is not None and written != total:
            raise _Truncated(f"got {written} of {total} bytes", resumable and written < total)
        return written


def download_file(
    session: requests.Session,
    url: str,
    dest: Union[str, os.PathLike],
    *,
    max_bytes: Optional[int] = DEFAULT_MAX_BYTES,
    refresh_url: Optional[Callable[[], Optional[str]]] = None,
    chunk_size: int = CHUNK_SIZE,
    max_attempts: Optional[int] = 3,
    timeout=(10, 60),
    sleep: Callable[[float], None] = time.sleep,
    progress: Optional[Callable[[int, Optional[int]], None]] = None,
    patience: float = DOWNLOAD_PATIENCE,
    clock: Callable[[], float] = time.monotonic,
    max_refreshes: Optional[int] = None,
) -> Path:
    """Download ``url`` to ``dest`` (parent folders created). Returns ``dest`` as a Path.

    ``refresh_url()`` is called whenever the URL looks expired (401/403/410; 404 once), for
    ``patience`` seconds (and at most ``max_refreshes`` times, for a service whose links are not
    signed afresh); it returns a fresh URL (or None if there is none). Cut or failed
    transfers are retried (resumed with ``Range`` where the server allows it) until
    ``max_attempts`` in a row brought no new byte (None: no count), or ``patience`` runs out. ``progress(bytes_so_far, total_or_None)`` is called per
    chunk. Raises :class:`DownloadError` (or the :class:`TripoError` raised by
    ``refresh_url``); the destination is then untouched and no ``.part`` file remains.
    """
    _check_url(url)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    with _part_lock(part, PART_LOCK_TIMEOUT, sleep):
        return _download_locked(session, url, dest, part, max_bytes=max_bytes,
                                refresh_url=refresh_url, chunk_size=chunk_size,
                                max_attempts=max_attempts, timeout=timeout, sleep=sleep,
                                progress=progress, patience=patience, clock=clock,
                                max_refreshes=max_refreshes)


def _download_locked(session, url, dest: Path, part: Path, **options) -> Path:
    # The .part is truncated by each attempt, never removed in between: removing it would let
    # another writer lock a new file under the same name while this one still writes.
    try:
        return _attempts(session, url, dest, part, **options)
    except BaseException:
        _remove(part)
        raise


def _attempts(session, url, dest: Path, part: Path, *, max_bytes, refresh_url, chunk_size,
              max_attempts, timeout, sleep, progress, patience, clock, max_refreshes) -> Path:
    deadline = clock() + patience
    refreshes = 0
    refreshed_missing = False
    fruitless = 0          # failed attempts in a row that added no byte
    offset = 0             # bytes of the .part kept for a ranged retry
    last_reason = ""
    while True:
        before = offset
        try:
            size = _fetch_once(session, url, part, max_bytes=max_bytes, chunk_size=chunk_size,
                               timeout=timeout, progress=progress, offset=offset)
            os.replace(part, dest)
            log.debug("Downloaded %s (%d bytes, resumed at %d) to %s", redact_url(url), size,
                      before, dest)
            return dest
        except _Expired as exc:
            out_of_time = clock() > deadline
            used_up = max_refreshes is not None and refreshes >= max_refreshes
            if refresh_url is None or out_of_time or used_up or (exc.status == 404 and refreshed_missing):
                raise DownloadError(
                    f"The download link is no longer valid (HTTP {exc.status})"
                    + (f", and fresh links kept failing for {patience:.0f} s." if out_of_time else "."),
                    http_status=exc.status, url=redact_url(url),
                    suggestion=("Query the task again for a fresh link" if refresh_url is None
                                else "The task's files may have been deleted; "
                                     "generate the result again"),
                ) from None
            refreshed_missing = refreshed_missing or exc.status == 404
            if refreshes:  # a fresh link that failed at once: give the service a moment
                sleep(min(10.0, 0.5 * 2 ** (refreshes - 1)))
            refreshes += 1
            log.info("Download link expired (HTTP %s); asking for a fresh one (%d)", exc.status,
                     refreshes)
            new_url = refresh_url()
            if not new_url:
                raise DownloadError("The download link expired and the task has no fresh one.",
                                    http_status=exc.status, url=redact_url(url)) from None
            _check_url(new_url)
            if urlsplit(new_url).path != urlsplit(url).path:
                offset = 0  # another file: the bytes kept are not its beginning
            url = new_url
        except _RangeRefused:
            log.info("The server did not resume %s at byte %d; starting over", redact_url(url), offset)
            offset = 0
        except (_Truncated, _Retryable) as exc:
            last_reason = str(exc)
            if isinstance(exc, _Truncated) and exc.resumable:
                try:
                    offset = part.stat().st_size
                except OSError:
                    offset = 0
            else:
                offset = 0
            fruitless = 0 if offset > before else fruitless + 1
            if (max_attempts is not None and fruitless >= max_attempts) or clock() > deadline:
                raise DownloadError(
                    f"The download kept failing ({last_reason}).", url=redact_url(url),
                ) from None
            log.info("Download of %s failed (%s); retrying%s", redact_url(url), last_reason,
                     f" from byte {offset}" if offset else "")
            if offset <= before:
                sleep(min(8.0, 0.5 * (2 ** (min(fruitless, 6) - 1))))
        except TripoError:
            raise
        except OSError as exc:
            raise DownloadError(f"Could not write '{dest}': {exc.strerror or exc}.",
                                url=redact_url(url)) from None
