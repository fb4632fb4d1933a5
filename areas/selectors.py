from django.contrib.gis.geos import Point

from areas.models import ServiceArea
from hexindex.api import AreaPayload

# Every query that feeds AreaPayload selects these, in this order.
PAYLOAD_ROW = ("id", "price", "name", "provider_id", "provider__name", "provider__currency")


def areas_covering(*, lat: float, lng: float) -> list[dict]:
    """Every service area of an approved provider whose geometry covers the point (boundary included: ST_Covers),
    cheapest first, then by id. The exact reference answer, through the ORM: the indexed lookup must return the same."""
    point = Point(lng, lat, srid=4326)
    rows = (
        ServiceArea.objects.filter(geometry__covers=point, provider__approved=True)
        .order_by("price", "id")
        .values_list(*PAYLOAD_ROW)
    )
    return [AreaPayload(*row).as_dict() for row in rows]
