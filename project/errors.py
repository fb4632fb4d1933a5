"""Failures of a dependency are a JSON 503 that names it, on every path; nothing else is ever an HTML page.

- Domain errors (core.errors.ApplicationError, and database outages) become JSON in core.http.error_response, used
  by project.exceptions.exception_handler for DRF views and by everything below.
- Plain Django views (admin, docs): DependencyErrorMiddleware.process_exception (it runs before Django's debug
  page, so DEBUG does not turn an outage into a traceback either). Under /api/ any other unexpected error is a
  JSON 500 there too, DEBUG or not.
- The lean lookup path: project.lean answers any unexpected error with `unexpected_error_response`.
- Anything else that escapes (a middleware): handler500 below, as JSON.
"""

import logging
import sys

from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.core.signals import got_request_exception
from django.http import Http404, JsonResponse
from django.views.defaults import page_not_found

from core.errors import as_application_error
from core.http import error_response

log = logging.getLogger(__name__)
request_log = logging.getLogger("django.request")


def dependency_error_response(exc: BaseException) -> JsonResponse | None:
    """A JSON answer for a domain error or a database outage, or None (anything else: a bug)."""
    error = as_application_error(exc)
    return error_response(error) if error is not None else None


SERVER_ERROR = {"detail": "Internal server error.", "code": "server_error"}
# Exceptions Django itself answers with a 4xx: left to it.
CLIENT_ERRORS = (Http404, PermissionDenied, BadRequest, SuspiciousOperation)


def unexpected_error_response(request, exc: BaseException) -> JsonResponse:
    """The answer to an exception nothing else handled: a 503 naming a failed dependency, or a JSON 500 (logged with
    its traceback, and announced like Django announces it, for error reporting)."""
    response = dependency_error_response(exc)
    if response is not None:
        return response
    # Logged where Django logs its own 500s (error reporting listens there), with the traceback.
    request_log.error("Internal Server Error: %s", request.path, exc_info=exc, extra={"status_code": 500})
    got_request_exception.send(sender=None, request=request)
    return JsonResponse(SERVER_ERROR, status=500)


class DependencyErrorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if request.path.startswith("/api/") and not isinstance(exception, CLIENT_ERRORS):
            return unexpected_error_response(request, exception)
        return dependency_error_response(exception)


def server_error(request, *args, **kwargs) -> JsonResponse:
    """handler500: JSON, and a 503 naming the dependency when that is what failed."""
    exc = sys.exc_info()[1]
    response = dependency_error_response(exc) if exc is not None else None
    return response or JsonResponse(SERVER_ERROR, status=500)


def not_found(request, exception, *args, **kwargs):
    """handler404: JSON under /api/ (a partner's client parses it), Django's page elsewhere (the portal, the admin)."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return page_not_found(request, exception)


def bad_request(request, exception, *args, **kwargs) -> JsonResponse:
    """handler400 (e.g. a Host not in ALLOWED_HOSTS): JSON like every other error."""
    return JsonResponse({"detail": "Bad request.", "code": "bad_request"}, status=400)
