from django.contrib.gis.geos import Point

from areas.models import ServiceArea

PAYLOAD_FIELDS = ("id", "name", "price", "provider_id", "provider__name", "provider__currency")


def area_payload(row: dict) -> dict:
    """One lookup result, from a `.values(*PAYLOAD_FIELDS)` row."""
    return {
        "id": row["id"],
        "name": row["name"],
        "price": str(row["price"]),
        "currency": row["provider__currency"],
        "provider": {"id": row["provider_id"], "name": row["provider__name"]},
    }


def areas_covering(*, lat: float, lng: float) -> list[dict]:
    """Every service area whose geometry covers the point (boundary included: ST_Covers), cheapest first,
    then by id. This is the exact answer every faster path must reproduce."""
    point = Point(lng, lat, srid=4326)
    rows = ServiceArea.objects.filter(geometry__covers=point).order_by("price", "id").values(*PAYLOAD_FIELDS)
    return [area_payload(row) for row in rows]
