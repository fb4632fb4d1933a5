"""Errors of the domain, each with what it means over HTTP: raised by services, selectors and the index, turned
into a JSON answer in one place (project.exceptions for DRF views, project.errors for plain views and the lean
path). Domain code raises these, never an HTTP framework's exceptions.

The body is `{"detail": ..., "code": ...}` plus the error's own fields (`service`, `quota`, `limit`...), or for
InvalidInput the fields and their messages (`{"lat": ["Must be between -90.0 and 90.0."]}`), as DRF answers
validation errors.
"""

from __future__ import annotations

from django.db import InterfaceError, OperationalError

DATABASE_ERRORS = (OperationalError, InterfaceError)  # connection refused or lost, statement timeout
DATABASE_UNAVAILABLE = "The database is unavailable or too slow right now; nothing was changed. Please retry shortly."
RETRY_AFTER_SECONDS = 5


class ApplicationError(Exception):
    """Base of every domain error. Subclasses set `status` and `code`; an instance carries the detail, extra body
    fields and extra headers."""

    status: int = 400
    code: str = "invalid"
    default_detail: str = "The request is not valid."

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None, **fields):
        self.detail = detail if detail is not None else self.default_detail
        self.fields = fields
        self.headers = headers or {}
        super().__init__(self.detail)

    def body(self) -> dict:
        return {"detail": self.detail, "code": self.code, **self.fields}


class InvalidInput(ApplicationError):
    """400 naming each bad field: `InvalidInput({"lat": ["Must be between -90.0 and 90.0."]})`."""

    def __init__(self, errors: dict[str, list | dict]):
        super().__init__("Invalid input.")
        self.errors = errors

    def body(self) -> dict:
        return self.errors


class NotAuthenticated(ApplicationError):
    status, code, default_detail = 401, "not_authenticated", "Authentication credentials were not provided."


class Forbidden(ApplicationError):
    status, code, default_detail = 403, "permission_denied", "You may not do this."


class PreconditionFailed(ApplicationError):
    status, code = 412, "precondition_failed"


class TooManyRequests(ApplicationError):
    """429; `retry_after` seconds go in Retry-After."""

    status, code, default_detail = 429, "rate_limited", "Too many requests."

    def __init__(self, detail: str | None = None, *, retry_after: int, headers: dict[str, str] | None = None, **fields):
        super().__init__(detail, headers={"Retry-After": str(retry_after), **(headers or {})}, **fields)


class DependencyUnavailable(ApplicationError):
    """503 naming the service that failed (`postgres`, `redis`), with Retry-After."""

    status, code = 503, "dependency_unavailable"

    def __init__(self, detail: str | None = None, *, service: str, **fields):
        super().__init__(detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}, service=service, **fields)


class DatabaseUnavailable(DependencyUnavailable):
    code = "database_unavailable"

    def __init__(self):
        super().__init__(DATABASE_UNAVAILABLE, service="postgres")


def as_application_error(exc: BaseException) -> ApplicationError | None:
    """The domain error an exception stands for: itself, a database outage, or None (a bug: a 500)."""
    if isinstance(exc, ApplicationError):
        return exc
    if isinstance(exc, DATABASE_ERRORS):
        return DatabaseUnavailable()
    return None
