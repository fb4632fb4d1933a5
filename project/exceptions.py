from django.core.exceptions import RequestDataTooBig
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import as_application_error
from core.http import error_response


def exception_handler(exc, context):
    """DRF's handler, plus every domain error (core.errors: as core.http answers them, database outages as a 503
    naming postgres) and a clean 413 for bodies that get past the middleware's declared-length check."""
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": str(exc)}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    error = as_application_error(exc)
    if error is not None:
        return error_response(error)  # a JsonResponse: DRF sends any HttpResponse as it is
    return drf_exception_handler(exc, context)
