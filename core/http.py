"""Domain errors (core.errors) as HTTP answers: the one place their status, body and headers become a response.
project.errors and project.exceptions use it for Django and DRF views, partners.endpoint for the partner API."""

import logging

from django.http import JsonResponse

from core.errors import ApplicationError, DependencyUnavailable

log = logging.getLogger(__name__)


def error_response(error: ApplicationError) -> JsonResponse:
    if isinstance(error, DependencyUnavailable):
        log.warning("%s unavailable: %s", error.fields.get("service"), error.detail)
    response = JsonResponse(error.body(), status=error.status, headers=error.headers)
    if error.status == 429:
        # Counted in the metrics; a client hammering past its limit must not write a log line per request too.
        response._has_been_logged = True
    return response
