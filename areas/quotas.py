"""Per-owner limits on what a user may store (settings QUOTA_*, AREA_MAX_SPAN_KM). Staff are exempt."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, Sum
from django.db.models.functions import Coalesce
from shapely import from_wkb

from areas.geometry import span_km
from areas.models import ServiceArea
from core.errors import ApplicationError, InvalidInput

TOO_WIDE = (
    "This area spans {span:,.0f} km; one area may span at most {limit:,.0f} km. Split it into several areas "
    "(each with its own price)."
)
OVER_QUOTA = "Your account may hold at most {limit:,} {what}; this change would make it {total:,}."


class QuotaExceeded(ApplicationError):
    """403 with a body naming the quota: {"detail", "code": "quota_exceeded", "quota", "limit"}."""

    status, code = 403, "quota_exceeded"

    def __init__(self, *, quota: str, limit: int, total: int, what: str):
        super().__init__(OVER_QUOTA.format(limit=limit, total=total, what=what), quota=quota, limit=limit)


def check_area_quotas(*, owner, geometry, replacing: ServiceArea | None = None) -> None:
    """Refuse (QuotaExceeded, or InvalidInput on `geometry`) a new or changed area that breaks the owner's
    limits. Call inside the writing transaction: it locks the owner's row, so two concurrent writes of one owner
    cannot both pass."""
    if owner.is_staff:
        return
    get_user_model().objects.select_for_update().filter(pk=owner.pk).first()
    if geometry is not None:
        span = span_km(from_wkb(bytes(geometry.wkb)))
        if span > settings.AREA_MAX_SPAN_KM:
            raise InvalidInput({"geometry": [TOO_WIDE.format(span=span, limit=settings.AREA_MAX_SPAN_KM)]})
    stored = ServiceArea.objects.filter(provider__owner=owner)
    if replacing is not None:
        stored = stored.exclude(pk=replacing.pk)
    totals = stored.aggregate(areas=Count("id"), vertices=Coalesce(Sum("vertex_count"), 0))
    new_vertices = geometry.num_coords if geometry is not None else replacing.vertex_count
    if totals["areas"] + 1 > settings.QUOTA_AREAS_PER_OWNER:
        raise QuotaExceeded(
            quota="areas", limit=settings.QUOTA_AREAS_PER_OWNER, total=totals["areas"] + 1, what="service areas"
        )
    if totals["vertices"] + new_vertices > settings.QUOTA_VERTICES_PER_OWNER:
        raise QuotaExceeded(
            quota="vertices",
            limit=settings.QUOTA_VERTICES_PER_OWNER,
            total=totals["vertices"] + new_vertices,
            what="positions of geometry over all service areas",
        )
