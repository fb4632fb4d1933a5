"""Optimistic concurrency for providers and service areas: `ETag` on reads and writes, `If-Match` on writes.

A client that read a version and writes with `If-Match: <its ETag>` gets 412 if someone else changed the object
meanwhile, instead of silently undoing their change. Writes without If-Match still only write the fields they
send (the services save those fields alone), so two writes of different fields never undo each other.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

from core.errors import PreconditionFailed

IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    description="The `ETag` you read: the write is refused with 412 if the object changed since. Optional.",
)
STALE = "This {what} changed since you read it (its ETag is now {etag}): read it again and retry your change."


def check_if_match(if_match: str | None, current: str, *, what: str) -> None:
    """RFC 9110 If-Match: `*` or a list of entity tags, compared strongly (a weak tag never matches)."""
    if if_match is None:
        return
    tags = [tag.strip() for tag in if_match.split(",")]
    if "*" in tags or current in tags:
        return
    raise PreconditionFailed(STALE.format(what=what, etag=current), headers={"ETag": current})


class ETagMixin:
    """For a ModelViewSet whose model has `etag`: sends it with single-object responses, and passes the request's
    If-Match to the write services (as `if_match`)."""

    def get_object(self):
        obj = super().get_object()
        self.etag_object = obj
        return obj

    @property
    def if_match(self) -> str | None:
        return self.request.headers.get("If-Match")

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        obj = getattr(self, "etag_object", None)
        if obj is not None and response.status_code in (200, 201) and request.method != "DELETE":
            response["ETag"] = obj.etag
        return response
