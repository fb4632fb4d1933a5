from django.db import transaction

from areas.models import VERSION_FIELDS, ServiceArea
from areas.quotas import check_area_quotas
from core.concurrency import check_if_match
from hexindex import api as index


def _limited_owner(provider) -> int | None:
    """Whose limits on changes waiting to be indexed a write counts against (staff have none)."""
    return None if provider.owner.is_staff else provider.owner_id


@transaction.atomic
def area_create(*, data: dict) -> ServiceArea:
    check_area_quotas(owner=data["provider"].owner, geometry=data["geometry"])
    area = ServiceArea(**data)
    area.save()
    index.areas_changed([area.id], versions={area.id: area.geometry_version}, owner_id=_limited_owner(area.provider))
    return area


@transaction.atomic
def area_update(*, area: ServiceArea, data: dict, if_match: str | None = None) -> ServiceArea:
    # Locks the row and reads where the area is now: lookups there must find it whether or not this write commits.
    before = index.current_boxes([area.id])
    area.refresh_from_db(fields=VERSION_FIELDS)  # as locked: what If-Match is compared with
    check_if_match(if_match, area.etag, what="service area")
    if "geometry" in data or ("provider" in data and data["provider"].owner_id != area.provider.owner_id):
        owner = data["provider"].owner if "provider" in data else area.provider.owner
        check_area_quotas(owner=owner, geometry=data.get("geometry"), replacing=area)
    geometry_before, payload_before = area.geometry_version, area.payload_version
    for field, value in data.items():
        setattr(area, field, value)
    # Only the fields sent: a concurrent write of other fields (committed after this request read the row) stays.
    area.save(update_fields=[*data, "updated_at"])  # the database bumps geometry_version if the geometry changed
    # The versions (as the triggers moved them) say what changed, whatever this instance held before the lock.
    owner_id = _limited_owner(area.provider)
    if area.geometry_version != geometry_before:
        index.areas_changed([area.id], before=before, versions={area.id: area.geometry_version}, owner_id=owner_id)
    elif area.payload_version != payload_before:
        index.areas_changed([area.id], before=before, owner_id=owner_id)  # same cells, new lookup result
    area.refresh_from_db()  # the response shows the row as stored, fields written by others included
    return area


@transaction.atomic
def area_delete(*, area: ServiceArea, if_match: str | None = None) -> None:
    if if_match is not None:
        locked = ServiceArea.objects.select_for_update().only(*VERSION_FIELDS).get(pk=area.pk)
        check_if_match(if_match, locked.etag, what="service area")
    index.areas_deleting([area.id])
    area.delete()
