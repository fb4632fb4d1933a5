"""Failures of a dependency are a JSON 503 that names it, on every path; nothing else is ever an HTML page.

- DRF views: project.exceptions.exception_handler calls `dependency_error_response`.
- Plain Django views (admin, docs): DependencyErrorMiddleware.process_exception (it runs before Django's debug
  page, so DEBUG does not turn an outage into a traceback either).
- Anything else that escapes (a middleware, the lean lookup path): handler500 below, as JSON.
"""

import logging
import sys

from django.db import InterfaceError, OperationalError
from django.http import JsonResponse

from accounts.security import LOGIN_LIMITS_UNAVAILABLE, LoginLimitsUnavailable

log = logging.getLogger(__name__)

DATABASE_ERRORS = (OperationalError, InterfaceError)  # connection refused or lost, statement timeout
DATABASE_UNAVAILABLE = "The database is unavailable or too slow right now; nothing was changed. Please retry shortly."
RETRY_AFTER_SECONDS = 5


def dependency_error_body(exc: BaseException) -> dict | None:
    """The 503 body for a dependency failure, or None when `exc` is not one."""
    if isinstance(exc, DATABASE_ERRORS):
        return {"detail": DATABASE_UNAVAILABLE, "code": "database_unavailable", "service": "postgres"}
    if isinstance(exc, LoginLimitsUnavailable):  # sign-in and registration fail closed
        return {"detail": LOGIN_LIMITS_UNAVAILABLE, "code": "login_limits_unavailable", "service": "redis"}
    return None


def dependency_error_response(exc: BaseException) -> JsonResponse | None:
    body = dependency_error_body(exc)
    if body is None:
        return None
    log.warning("%s unavailable: %s: %s", body["service"], exc.__class__.__name__, exc)
    return JsonResponse(body, status=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


class DependencyErrorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        return dependency_error_response(exception)


def server_error(request, *args, **kwargs) -> JsonResponse:
    """handler500: JSON, and a 503 naming the dependency when that is what failed."""
    exc = sys.exc_info()[1]
    response = dependency_error_response(exc) if exc is not None else None
    return response or JsonResponse({"detail": "Internal server error.", "code": "server_error"}, status=500)


def bad_request(request, exception, *args, **kwargs) -> JsonResponse:
    """handler400 (e.g. a Host not in ALLOWED_HOSTS): JSON like every other error."""
    return JsonResponse({"detail": "Bad request.", "code": "bad_request"}, status=400)
