from decimal import Decimal

from django.contrib.gis.geos import Point

from areas.models import ServiceArea

# Every query that feeds area_payload selects these, in this order.
PAYLOAD_ROW = ("id", "price", "name", "provider_id", "provider__name", "provider__currency")


def area_payload(area_id: int, price: Decimal, name: str, provider_id: int, provider_name: str, currency: str) -> dict:
    """One lookup result, from a PAYLOAD_ROW. Every lookup path builds its results here, so they are
    byte-for-byte the same."""
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
    rows = ServiceArea.objects.filter(geometry__covers=point).order_by("price", "id").values_list(*PAYLOAD_ROW)
    return [area_payload(*row) for row in rows]
