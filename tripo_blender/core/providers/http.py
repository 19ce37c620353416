"""HTTP plumbing: proxy settings, sessions, the base URL rule and retries of reads.

No ``bpy`` here (see ``core/__init__``).

Retries: only idempotent reads are retried here (task queries, polling, balance, usage,
uploads that just produce a token). A task creation is never passed through
:func:`call_with_retry`; see ``tripo_v3.TripoV3Provider.create_task`` for its own rules.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Callable, Literal, Optional, TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests

from ..protocol.errors import (
    ConcurrencyLimited,
    NetworkError,
    ProviderResponseError,
    RateLimited,
    ServerError,
    TripoError,
    ValidationError,
)

log = logging.getLogger(__name__)

__all__ = [
    "ProxyConfig",
    "make_session",
    "check_base_url",
    "is_loopback_host",
    "RetryPolicy",
    "call_with_retry",
    "is_retryable_read_error",
    "network_error_from",
    "redact_url",
    "USER_AGENT",
]

USER_AGENT = "tripo-blender/0.1 (+https://github.com/) python-requests"
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

T = TypeVar("T")


# =========================================================================== proxies


@dataclass(frozen=True)
class ProxyConfig:
    """How to reach the internet.

    - ``"system"``: what requests does by default: ``HTTP(S)_PROXY``/``NO_PROXY`` environment
      variables (and the OS settings Python reads).
    - ``"none"``: no proxy at all; environment variables are ignored.
    - ``"custom"``: every request goes through ``url`` (``http://``, ``https://``,
      ``socks5://`` or ``socks5h://``; SOCKS needs PySocks). Environment proxies are ignored.
    """

    mode: Literal["system", "none", "custom"] = "system"
    url: Optional[str] = None

    def __post_init__(self) -> None:
        if self.mode not in ("system", "none", "custom"):
            raise ValidationError(
                f"Proxy mode '{self.mode}' is not one of system, none, custom.", field="proxy"
            )
        if self.mode == "custom":
            url = (self.url or "").strip()
            if not url:
                raise ValidationError("A custom proxy needs a URL, e.g. http://proxy:8080.",
                                      field="proxy")
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https", "socks5", "socks5h") or not parts.hostname:
                raise ValidationError(
                    f"Proxy URL '{redact_url(url)}' is not valid; write it as "
                    "http://host:port (or https://, socks5://).",
                    field="proxy",
                )

    def describe(self) -> str:
        if self.mode == "custom":
            return f"proxy {redact_url(self.url or '')}"
        return {"system": "system proxy settings", "none": "no proxy"}[self.mode]


def make_session(proxy: Optional[ProxyConfig] = None, *,
                 user_agent: str = USER_AGENT) -> requests.Session:
    """A new ``requests.Session`` following ``proxy``. It carries no credentials."""
    proxy = proxy or ProxyConfig()
    session = requests.Session()
    session.headers["User-Agent"] = user_agent
    if proxy.mode == "none":
        session.trust_env = False
        session.proxies.clear()
    elif proxy.mode == "custom":
        # trust_env off: otherwise environment proxies would override the session's.
        session.trust_env = False
        url = (proxy.url or "").strip()
        session.proxies.update({"http": url, "https": url})
    return session



class ThreadSessions:
    """One ``requests.Session`` per thread and purpose, all closed together.

    A Session is not guaranteed thread-safe, and the job engine polls from one thread and
    downloads from others. Purposes keep credentials apart: ``"api"`` carries the key per request,
    ``"plain"`` (downloads, presigned uploads) never does.
    """

    def __init__(self, proxy: Optional[ProxyConfig] = None):
        self.proxy = proxy
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def get(self, purpose: str) -> requests.Session:
        session = getattr(self._local, purpose, None)
        if session is None:
            session = make_session(self.proxy)
            setattr(self._local, purpose, session)
            with self._lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            try:
                session.close()
            except Exception:  # pragma: no cover - closing never matters enough to fail
                pass


# =========================================================================== base URL


def is_loopback_host(host: Optional[str]) -> bool:
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str) -> str:
    """Validate the API base URL and return it normalised (no trailing slash).

    HTTPS is required, except for loopback hosts (127.0.0.1, localhost, ::1) used by local
    emulators. Raises :class:`ValidationError`.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValidationError("The API address is empty.", field="base_url")
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(
            f"The API address '{text}' is not a valid URL; it should look like "
            "https://openapi.tripo3d.ai.",
            field="base_url",
        )
    if parts.username or parts.password:
        raise ValidationError("The API address must not contain a user name or password.",
                              field="base_url")
    if parts.query or parts.fragment:
        raise ValidationError("The API address must not contain '?' or '#' parts.",
                              field="base_url")
    if parts.scheme != "https" and not is_loopback_host(parts.hostname):
        raise ValidationError(
            f"The API address '{text}' uses plain http; the API key would travel unencrypted. "
            "Use https:// (plain http is only allowed for 127.0.0.1, localhost and ::1).",
            field="base_url",
        )
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def redact_url(url: str) -> str:
    """URL without query string and credentials (signed URLs carry secrets there)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<url>"
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


# =========================================================================== errors


def network_error_from(exc: requests.RequestException, *, what: str = "Tripo") -> NetworkError:
    """Turn a requests exception into :class:`NetworkError`; ``sent`` is False only when the
    request certainly never left (DNS failure, refused connection, connect timeout, TLS
    handshake or proxy connect failure)."""
    sent: Optional[bool] = True
    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError,
                        requests.exceptions.ProxyError, requests.exceptions.InvalidURL,
                        requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema)):
        sent = False
        reason = {
            requests.exceptions.ConnectTimeout: "the connection timed out",
            requests.exceptions.SSLError: "the secure connection (TLS) failed",
            requests.exceptions.ProxyError: "the proxy refused or failed the connection",
        }.get(type(exc), "the connection could not be made")
    elif isinstance(exc, requests.exceptions.ReadTimeout):
        reason = "the server did not answer in time"
    elif isinstance(exc, requests.exceptions.ConnectionError):
        if _is_connect_failure(exc):
            sent = False
            reason = "the connection could not be made (server unreachable or name not found)"
        else:
            reason = "the connection was interrupted"
    elif isinstance(exc, requests.exceptions.ChunkedEncodingError):
        reason = "the answer was cut off"
    else:
        reason = "the request failed"
    message = f"Could not reach {what}: {reason}."
    err = NetworkError(message, sent=sent)
    err.__cause__ = exc
    return err


def _is_connect_failure(exc: BaseException) -> bool:
    """True when the error chain shows the TCP connection was never established."""
    try:
        from urllib3.exceptions import NewConnectionError, MaxRetryError
    except Exception:  # pragma: no cover - urllib3 always ships with requests
        return False
    seen = set()
    stack: list[BaseException] = [exc]
    while stack:
        cur = stack.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, NewConnectionError):
            return True
        if isinstance(cur, ConnectionRefusedError):
            return True
        if isinstance(cur, MaxRetryError) and cur.reason is not None:
            stack.append(cur.reason)
        for arg in getattr(cur, "args", ()):
            if isinstance(arg, BaseException):
                stack.append(arg)
        if cur.__cause__ is not None:
            stack.append(cur.__cause__)
        if cur.__context__ is not None:
            stack.append(cur.__context__)
    return False


# =========================================================================== retries


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of :func:`call_with_retry`: attempts, total time (seconds) and backoff."""

    max_attempts: int = 5
    max_total_seconds: float = 60.0
    base_delay: float = 0.5
    max_delay: float = 15.0
    jitter: float = 0.25  # +/- fraction of the delay

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Backoff before retry number ``attempt`` (1-based)."""
        raw = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return max(0.0, raw * (1.0 + self.jitter * (2.0 * rng() - 1.0)))


def is_retryable_read_error(exc: BaseException) -> bool:
    """Errors a read may be repeated after: 429, 500/502/503/504, connection problems,
    timeouts, unreadable answers."""
    if isinstance(exc, (RateLimited, ConcurrencyLimited, NetworkError, ProviderResponseError)):
        return True
    if isinstance(exc, ServerError):
        return exc.http_status is None or exc.http_status in RETRYABLE_STATUSES
    return False


def call_with_retry(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    is_retryable: Callable[[BaseException], bool] = is_retryable_read_error,
    what: str = "request",
    rng: Callable[[], float] = random.random,
) -> T:
    """Call ``fn`` (an idempotent read) until it succeeds, retrying retryable
    :class:`TripoError`s with exponential backoff and jitter. ``Retry-After`` (``retry_after``
    on the error) is honoured. Stops after ``policy.max_attempts`` attempts or when the next
    wait would pass ``policy.max_total_seconds``; then the last error is raised."""
    start = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except TripoError as exc:
            if not is_retryable(exc) or attempt >= policy.max_attempts:
                raise
            wait = policy.delay(attempt, rng)
            retry_after = getattr(exc, "retry_after", None)
            if retry_after is not None:
                wait = max(float(retry_after), 0.0)
            elapsed = clock() - start
            if elapsed + wait > policy.max_total_seconds:
                log.info("Giving up %s after %d attempt(s): %s", what, attempt, type(exc).__name__)
                raise
            log.info("Retrying %s in %.1f s (attempt %d failed: %s)", what, wait, attempt,
                     type(exc).__name__)
            sleep(wait)
