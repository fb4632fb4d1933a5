from decimal import Decimal

from django.contrib.gis.geos import Point

from areas.models import ServiceArea


def area_payload(
    *, area_id: int, name: str, price: Decimal, currency: str, provider_id: int, provider_name: str
) -> dict:
    """One lookup result. Every lookup path builds its results here, so they are byte-for-byte the same."""
    return {
        "id": area_id,
        "name": name,
        "price": str(price),
        "currency": currency,
        "provider": {"id": provider_id, "name": provider_name},
    }


def areas_covering(*, lat: float, lng: float) -> list[dict]:
    """Every service area whose geometry covers the point (boundary included: ST_Covers), cheapest first,
    then by id. The exact reference answer: the indexed lookup must return the same."""
    point = Point(lng, lat, srid=4326)
    rows = (
        ServiceArea.objects.filter(geometry__covers=point)
        .order_by("price", "id")
        .values_list("id", "name", "price", "provider__currency", "provider_id", "provider__name")
    )
    return [
        area_payload(
            area_id=area_id,
            name=name,
            price=price,
            currency=currency,
            provider_id=provider_id,
            provider_name=provider_name,
        )
        for area_id, name, price, currency, provider_id, provider_name in rows
    ]
