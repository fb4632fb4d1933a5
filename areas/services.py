from django.db import transaction

from areas.models import ServiceArea
from hexindex.services import areas_changed, areas_deleting

PAYLOAD_FIELDS = ("name", "price", "provider_id")


@transaction.atomic
def area_create(*, data: dict) -> ServiceArea:
    area = ServiceArea(**data)
    area.save()
    areas_changed([area.id], versions={area.id: area.geometry_version})
    return area


@transaction.atomic
def area_update(*, area: ServiceArea, data: dict) -> ServiceArea:
    version_before = area.geometry_version
    payload_before = [getattr(area, field) for field in PAYLOAD_FIELDS]
    for field, value in data.items():
        setattr(area, field, value)
    area.save()  # the database bumps geometry_version if the geometry changed
    if area.geometry_version != version_before:
        areas_changed([area.id], versions={area.id: area.geometry_version})
    elif [getattr(area, field) for field in PAYLOAD_FIELDS] != payload_before:
        areas_changed([area.id])  # same cells, new lookup result
    return area


@transaction.atomic
def area_delete(*, area: ServiceArea) -> None:
    areas_deleting([area.id])
    area.delete()
