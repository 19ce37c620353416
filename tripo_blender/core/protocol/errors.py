"""Exceptions of the Tripo protocol core, and the mapping from API answers to them.

Every error the core raises is a :class:`TripoError`. Each carries what the server said
(``code``, ``request_id``, ``http_status``, its ``suggestion``) and offers
:meth:`TripoError.user_message`: one or two sentences a person understands, saying what
happened and what to do about it.

No ``bpy`` here (see ``core/__init__``).
"""

from __future__ import annotations

import email.utils
import time
from typing import Any, Mapping, Optional

__all__ = [
    "TripoError",
    "ValidationError",
    "RetiredTaskType",
    "InvalidApiKeyFormat",
    "AuthenticationError",
    "PermissionDenied",
    "BadRequest",
    "ContentPolicyError",
    "InsufficientCredits",
    "TaskNotFound",
    "InvalidSourceTask",
    "InvalidModelVersion",
    "ModelTooComplex",
    "RateLimited",
    "ConcurrencyLimited",
    "ServerError",
    "NetworkError",
    "CreateOutcomeUnknown",
    "DownloadError",
    "FeatureUnavailable",
    "ProviderResponseError",
    "error_from_response",
    "parse_retry_after",
    "ERROR_CODE_CLASSES",
]


class TripoError(Exception):
    """Base of every error raised by the core.

    ``message`` is what happened (server message or ours); ``suggestion`` what to do
    (the server's ``suggestion`` when it sent one, else a default of the class).
    """

    #: What to do, when neither the server nor the raiser gave a suggestion.
    default_suggestion: Optional[str] = None
    #: Short title of the problem, used by :meth:`user_message` when there is no message.
    title: str = "The Tripo request failed"
    #: Whether repeating the same call later may succeed (reads only; creates have own rules).
    retryable: bool = False

    def __init__(
        self,
        message: Optional[str] = None,
        *,
        code: Optional[int] = None,
        suggestion: Optional[str] = None,
        request_id: Optional[str] = None,
        http_status: Optional[int] = None,
    ) -> None:
        self.message: str = (message or "").strip() or self.title
        self.code = code
        self.suggestion = suggestion or self.default_suggestion
        self.request_id = request_id
        self.http_status = http_status
        super().__init__(self.message)

    def user_message(self) -> str:
        """What happened and what to do, for a person (one or two sentences)."""
        text = self.message.rstrip()
        if text and text[-1] not in ".!?":
            text += "."
        if self.suggestion:
            sug = self.suggestion.strip()
            if sug and sug[-1] not in ".!?":
                sug += "."
            if sug and sug.lower() not in text.lower():
                text = f"{text} {sug}"
        details = []
        if self.code is not None:
            details.append(f"code {self.code}")
        if self.request_id:
            details.append(f"request id {self.request_id}")
        if details:
            text += f" ({', '.join(details)})"
        return text

    def __str__(self) -> str:  # pragma: no cover - trivial
        parts = [self.message]
        if self.code is not None:
            parts.append(f"[code {self.code}]")
        if self.http_status is not None:
            parts.append(f"[HTTP {self.http_status}]")
        if self.request_id:
            parts.append(f"[request {self.request_id}]")
        return " ".join(parts)

    def __repr__(self) -> str:  # pragma: no cover - trivial
        return (
            f"{type(self).__name__}(message={self.message!r}, code={self.code!r}, "
            f"http_status={self.http_status!r}, request_id={self.request_id!r})"
        )


# --------------------------------------------------------------------------- client side


class ValidationError(TripoError, ValueError):
    """A request is invalid; found before anything was sent. ``field`` names the option."""

    title = "The request is not valid"
    default_suggestion = None

    def __init__(self, message: str, *, field: Optional[str] = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.field = field


class RetiredTaskType(ValidationError):
    """The task type existed in API v2 and was retired by Tripo."""

    title = "This task type was retired by Tripo"


class InvalidApiKeyFormat(ValidationError):
    """The key does not look like a Tripo API key (``tsk_...``)."""

    title = "This is not a Tripo API key"
    default_suggestion = (
        "Create an API key on the Tripo platform (https://platform.tripo3d.ai, API keys page); "
        "API keys start with 'tsk_'. Keys starting with 'tcli_' are client tokens, not API keys"
    )


# --------------------------------------------------------------------------- server side


class AuthenticationError(TripoError):
    """HTTP 401, whatever the code in the body."""

    title = "Tripo did not accept the API key"
    default_suggestion = "Check the API key in the add-on preferences (it starts with 'tsk_')"


class PermissionDenied(TripoError):
    title = "Tripo denied access to this resource"
    default_suggestion = "Check that the key has access to this feature and the task belongs to it"


class BadRequest(TripoError):
    title = "Tripo rejected the request as invalid"
    default_suggestion = "Change the options mentioned above and submit again"


class ContentPolicyError(TripoError):
    title = "Tripo refused the input under its content policy"
    default_suggestion = "Change the prompt or image and submit again"


class InsufficientCredits(TripoError):
    title = "Not enough Tripo credits for this task"
    default_suggestion = "Buy or top up credits on the Tripo platform, then submit again"


class TaskNotFound(TripoError):
    title = "Tripo does not know this task"
    default_suggestion = (
        "The task id may be wrong or belong to another API key; it can no longer be tracked"
    )


class InvalidSourceTask(TripoError):
    title = "The source task cannot be used for this step"
    default_suggestion = "Pick a finished task of a type this step accepts"


class InvalidModelVersion(TripoError):
    title = "The model version is deprecated or unknown"
    default_suggestion = "Choose a current model version and submit again"


class ModelTooComplex(TripoError):
    title = "The model is too complex for this operation"
    default_suggestion = "Try another model, or reduce it first (for example with smart low poly)"


class RateLimited(TripoError):
    """HTTP 429 code 1007 (too many requests). ``retry_after`` in seconds when known."""

    title = "Too many requests to Tripo"
    default_suggestion = "Wait a moment; the add-on retries automatically"
    retryable = True

    def __init__(self, message: Optional[str] = None, *, retry_after: Optional[float] = None,
                 **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ConcurrencyLimited(TripoError):
    """HTTP 429 code 2000: too many tasks running on the account at once.

    Not a subclass of :class:`RateLimited`: a job engine should wait for one of its running
    tasks to finish (queue the job) rather than wait a fixed time. ``retry_after`` in seconds
    when the server sent ``Retry-After``.
    """

    title = "Too many Tripo tasks are running at once on this account"
    default_suggestion = "The task waits in the queue until one of the running tasks finishes"
    retryable = True

    def __init__(self, message: Optional[str] = None, *, retry_after: Optional[float] = None,
                 **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ServerError(TripoError):
    title = "Tripo had a server error"
    default_suggestion = "Try again in a few minutes"
    retryable = True


class NetworkError(TripoError):
    """Could not talk to the server (DNS, refused connection, reset, timeout, proxy).

    ``sent`` says whether the request may have reached the server: ``False`` when the
    connection was never established, ``True``/``None`` otherwise.
    """

    title = "Could not reach Tripo"
    default_suggestion = "Check the internet connection and the proxy settings, then try again"
    retryable = True

    def __init__(self, message: Optional[str] = None, *, sent: Optional[bool] = None,
                 **kw: Any) -> None:
        super().__init__(message, **kw)
        self.sent = sent


class CreateOutcomeUnknown(TripoError):
    """A create request may have reached Tripo, but no usable answer came back.

    It is never replayed blindly (that could bill twice). ``request`` is the request as sent
    (local files already replaced by their upload tokens), ``body`` the JSON sent and
    ``sent_at`` the ``time.time()`` at which it was sent: pass ``request`` and ``sent_at`` to
    ``Provider.reconcile_create`` to find out whether a task was created. ``cause`` is the
    underlying error.
    """

    title = "The task may or may not have been created"
    default_suggestion = (
        "The add-on checks the account's task list before submitting again, so it is not billed twice"
    )

    def __init__(self, message: Optional[str] = None, *, request: Any = None,
                 body: Optional[dict] = None, sent_at: Optional[float] = None,
                 cause: Optional[BaseException] = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.request = request
        self.body = body
        self.sent_at = sent_at
        self.cause = cause


class DownloadError(TripoError):
    title = "Downloading the result failed"
    default_suggestion = "Try the download again; if the link expired the add-on fetches a new one"

    def __init__(self, message: Optional[str] = None, *, url: Optional[str] = None,
                 **kw: Any) -> None:
        super().__init__(message, **kw)
        self.url = url


class FeatureUnavailable(TripoError):
    """The provider does not offer this feature; ``reason`` says why."""

    title = "This feature is not available"

    def __init__(self, message: Optional[str] = None, *, reason: Optional[str] = None,
                 **kw: Any) -> None:
        super().__init__(message or reason, **kw)
        self.reason = reason or self.message


class ProviderResponseError(TripoError):
    """The server answered something the core cannot read (not JSON, wrong shape)."""

    title = "Tripo sent an answer the add-on cannot read"
    default_suggestion = "Try again later; if it persists, the API may have changed"
    retryable = True


# --------------------------------------------------------------------------- mapping

#: Error codes of the reference table and the class each maps to.
ERROR_CODE_CLASSES: dict[int, type[TripoError]] = {
    1000: ServerError,
    1001: ServerError,
    1002: AuthenticationError,
    1003: BadRequest,
    1004: BadRequest,
    1005: PermissionDenied,
    1007: RateLimited,
    2000: ConcurrencyLimited,
    2001: TaskNotFound,
    # v2 codes without an own class in v3's table: bad input of some sort.
    2002: BadRequest,
    2003: BadRequest,
    2004: BadRequest,
    2006: InvalidSourceTask,
    2007: InvalidSourceTask,
    2008: ContentPolicyError,
    2010: InsufficientCredits,
    2014: ServerError,
    2015: InvalidModelVersion,
    2016: BadRequest,
    2017: InvalidModelVersion,
    2018: ModelTooComplex,
    2019: BadRequest,
}

#: Default messages for codes whose answer carried no message.
_CODE_MESSAGES: dict[int, str] = {
    2006: "The source task is of a type this step does not accept",
    2007: "The source task has not finished successfully",
    2015: "This model version is deprecated",
    2017: "This model version is not valid",
}


def parse_retry_after(value: Any, *, now: Optional[float] = None) -> Optional[float]:
    """``Retry-After`` header → seconds to wait (delta-seconds or HTTP date), or None."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _int_or_none(value: Any) -> Optional[int]:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _header(headers: Optional[Mapping[str, Any]], *names: str) -> Optional[str]:
    if not headers:
        return None
    lowered = {str(k).lower(): v for k, v in dict(headers).items()}
    for name in names:
        value = lowered.get(name.lower())
        if value:
            return str(value)
    return None


def error_from_response(
    http_status: Optional[int],
    payload: Optional[Mapping[str, Any]],
    headers: Optional[Mapping[str, Any]] = None,
) -> TripoError:
    """Map an error answer of the API to the matching :class:`TripoError`.

    Rules (reference table): HTTP 401 is always :class:`AuthenticationError`; otherwise the
    body's ``code`` decides; without a known code the HTTP status does (429 → rate limited,
    5xx → server error, 403 → permission, 404 → task not found, other 4xx → bad request).
    ``payload`` may be None (body not JSON).
    """
    body = payload if isinstance(payload, Mapping) else {}
    code = _int_or_none(body.get("code"))
    message = body.get("message") or body.get("msg") or body.get("error") or None
    if message is not None and not isinstance(message, str):
        message = str(message)
    suggestion = body.get("suggestion") or None
    if suggestion is not None and not isinstance(suggestion, str):
        suggestion = str(suggestion)
    request_id = body.get("request_id") or _header(
        headers, "X-Request-Id", "X-Tripo-Request-Id", "X-Tripo-Trace-Id", "Request-Id"
    )
    if request_id is not None:
        request_id = str(request_id)
    retry_after = parse_retry_after(_header(headers, "Retry-After"))

    cls: type[TripoError]
    if http_status == 401:
        cls = AuthenticationError
    elif code is not None and code in ERROR_CODE_CLASSES:
        cls = ERROR_CODE_CLASSES[code]
    elif http_status == 429:
        cls = RateLimited
    elif http_status is not None and http_status >= 500:
        cls = ServerError
    elif http_status == 403:
        cls = PermissionDenied
    elif http_status == 404:
        cls = TaskNotFound
    elif http_status is not None and 400 <= http_status < 500:
        cls = BadRequest
    else:
        cls = ProviderResponseError
        if not message:
            message = (
                f"Tripo answered with HTTP {http_status} and an error code the add-on does not know"
                if code is not None
                else f"Tripo answered with HTTP {http_status} and no readable body"
            )

    if not message and code in _CODE_MESSAGES:
        message = _CODE_MESSAGES[code]
    kwargs: dict[str, Any] = dict(
        code=code, suggestion=suggestion, request_id=request_id, http_status=http_status
    )
    if issubclass(cls, (RateLimited, ConcurrencyLimited)):
        return cls(message, retry_after=retry_after, **kwargs)
    return cls(message, **kwargs)
