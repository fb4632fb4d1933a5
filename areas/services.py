from django.db import transaction

from areas.models import ServiceArea
from hexindex.services import forget_areas, schedule_index


@transaction.atomic
def area_create(*, data: dict) -> ServiceArea:
    area = ServiceArea(**data)
    area.save()
    schedule_index(area_id=area.id, version=area.geometry_version)
    return area


@transaction.atomic
def area_update(*, area: ServiceArea, data: dict) -> ServiceArea:
    version_before = area.geometry_version
    for field, value in data.items():
        setattr(area, field, value)
    area.save()  # the database bumps geometry_version if the geometry changed
    if area.geometry_version != version_before:
        schedule_index(area_id=area.id, version=area.geometry_version)
    return area


@transaction.atomic
def area_delete(*, area: ServiceArea) -> None:
    cleanup = forget_areas([area.id])
    area.delete()
    transaction.on_commit(cleanup)
