from django.db import transaction

from areas.models import ServiceArea
from areas.quotas import check_area_quotas
from hexindex import api as index

PAYLOAD_FIELDS = ("name", "price", "provider_id")


@transaction.atomic
def area_create(*, data: dict) -> ServiceArea:
    check_area_quotas(owner=data["provider"].owner, geometry=data["geometry"])
    area = ServiceArea(**data)
    area.save()
    index.areas_changed([area.id], versions={area.id: area.geometry_version})
    return area


@transaction.atomic
def area_update(*, area: ServiceArea, data: dict) -> ServiceArea:
    # Locks the row and reads where the area is now: lookups there must find it whether or not this write commits.
    before = index.current_boxes([area.id])
    if "geometry" in data or ("provider" in data and data["provider"].owner_id != area.provider.owner_id):
        owner = data["provider"].owner if "provider" in data else area.provider.owner
        check_area_quotas(owner=owner, geometry=data.get("geometry"), replacing=area)
    version_before = area.geometry_version
    payload_before = [getattr(area, field) for field in PAYLOAD_FIELDS]
    for field, value in data.items():
        setattr(area, field, value)
    area.save()  # the database bumps geometry_version if the geometry changed
    if area.geometry_version != version_before:
        index.areas_changed([area.id], before=before, versions={area.id: area.geometry_version})
    elif [getattr(area, field) for field in PAYLOAD_FIELDS] != payload_before:
        index.areas_changed([area.id], before=before)  # same cells, new lookup result
    return area


@transaction.atomic
def area_delete(*, area: ServiceArea) -> None:
    index.areas_deleting([area.id])
    area.delete()
