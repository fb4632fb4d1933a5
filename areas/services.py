from django.db import transaction

from areas.models import ServiceArea


@transaction.atomic
def area_create(*, data: dict) -> ServiceArea:
    area = ServiceArea(**data)
    area.save()
    return area


@transaction.atomic
def area_update(*, area: ServiceArea, data: dict) -> ServiceArea:
    for field, value in data.items():
        setattr(area, field, value)
    area.save()
    return area


@transaction.atomic
def area_delete(*, area: ServiceArea) -> None:
    area.delete()
