import orjson
from django.core.exceptions import RequestDataTooBig
from rest_framework import status
from rest_framework.exceptions import Throttled
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from accounts.security import LOGIN_DELAYED, LoginDelayed
from areas.quotas import QuotaExceeded
from hexindex.api import IndexBusy, IndexUnavailable
from project.errors import dependency_error_response


def exception_handler(exc, context):
    """DRF's handler, plus domain errors: a clean 413 for bodies that get past the middleware's declared-length
    check, 503 naming the index when a write could not be registered with it, and 429 with Retry-After for a
    sign-in attempt that must wait."""
    if isinstance(exc, LoginDelayed):
        exc = Throttled(wait=exc.wait, detail=LOGIN_DELAYED)
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": str(exc)}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, IndexUnavailable):
        return Response(
            {"detail": str(exc), "code": "index_unavailable", "service": "redis"},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    if isinstance(exc, IndexBusy):
        return Response(
            {"detail": str(exc), "code": "index_busy"},
            status=status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(exc.retry_after)},
        )
    if (response := dependency_error_response(exc)) is not None:
        return Response(orjson.loads(response.content), status=503, headers={"Retry-After": response["Retry-After"]})
    if isinstance(exc, QuotaExceeded):
        return Response(exc.body, status=exc.status_code)
    return drf_exception_handler(exc, context)
