"""The emulator's error type: one apiv3 error answer (HTTP status, Tripo code, message).

Codes and HTTP statuses follow the error table of Tripo's apiv3 documentation (its v2
documentation for the codes that carried over). Every failure the emulator answers goes through `ApiError`, so the
envelope `{"code", "message", "suggestion", "request_id"}` is built in one place (server.py).
"""

from __future__ import annotations

SUGGESTIONS = {
    1000: "Retry the request later with backoff.",
    1001: "Retry later; if it keeps failing, contact support.",
    1002: "Check the API key (Authorization: Bearer tsk_...).",
    1003: "Send a valid JSON object as the request body.",
    1004: "Check the parameters against the API documentation.",
    1005: "Request a fresh URL by querying the task again.",
    1007: "Slow down and retry after the Retry-After interval.",
    2000: "Wait for one of your running tasks to finish, then submit again.",
    2001: "Check the task id and that it belongs to this API key.",
    2006: "Use a source task of a type this operation accepts.",
    2007: "Wait until the source task has succeeded.",
    2008: "Change the input and try again.",
    2010: "Buy more credits or lower the task's options.",
    2015: "Use a newer model version.",
    2016: "Use the replacement task type.",
    2017: "Use one of the available model versions.",
    2018: "Try another model.",
}


class ApiError(Exception):
    """An error answer: `status` is the HTTP status, `code` the Tripo error code."""

    def __init__(self, status: int, code: int, message: str, *, headers: dict | None = None,
                 suggestion: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.suggestion = suggestion or SUGGESTIONS.get(code, "")


def invalid(message: str) -> ApiError:
    """HTTP 400 code 1004: an invalid parameter."""
    return ApiError(400, 1004, message)
