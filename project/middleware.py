from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import JsonResponse

from project.health import live

BODY_TOO_LARGE = "Request body too large: the limit is {limit} bytes."
LENGTH_REQUIRED = "Send request bodies with a Content-Length header."
LIVENESS_PATH = "/health/live/"  # as routed in project/urls.py


class RequestTooLargeMiddleware:
    """Refuse oversized bodies with 413 before anything reads them.

    Django only enforces DATA_UPLOAD_MAX_MEMORY_SIZE when `request.body` is read, and DRF's parsers read the
    stream instead, so the limit is applied here, on the declared length. A chunked body has no declared
    length, so it is refused too (411) rather than read without a bound.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None:
            length = request.META.get("CONTENT_LENGTH") or ""
            if length.isdigit() and int(length) > limit:
                return JsonResponse({"detail": BODY_TOO_LARGE.format(limit=limit)}, status=413)
            if not length and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
                return JsonResponse({"detail": LENGTH_REQUIRED}, status=411)
        return self.get_response(request)


class LivenessProbeMiddleware:
    """Answer the liveness probe whatever its Host header. Goes first: the middleware after it refuses such hosts.

    The load balancer probes each task at its private IP address, a Host no configuration can list in advance,
    and CommonMiddleware (or the HTTPS redirect) would answer it with 400: the task would never become healthy.
    The liveness view builds nothing from the Host header. Probes naming an allowed host take the usual path.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info == LIVENESS_PATH and not _host_allowed(request):
            return live(request)
        return self.get_response(request)


def _host_allowed(request) -> bool:
    try:
        request.get_host()
    except DisallowedHost:
        return False
    return True
