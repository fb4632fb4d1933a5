"""Reference endpoints for the benchmark, served only under the bench settings.

The strongest baselines a careful engineer would write instead of the index, and the ceilings:
- raw lookup: no index, no ORM, no DRF: ONE hand-written query (hexindex.exact: the covering areas found first on
  the GiST-indexed geometry with ST_Covers, then their providers joined) as a prepared statement on the persistent
  connection, serialised with orjson into the lookup's exact body. On the lean path (no middleware), like the
  lookup. It is the query the index falls back to: the index is measured against its own exact answer.
- plain lookup: what a careful GeoDjango + DRF implementation does without an index: a `covers` filter on the
  GiST-indexed geometry, the provider joined, the geometry column not fetched, a DRF serializer; full stack.
- minimal: a plain Django view returning a constant one-result body on the lean path: the ceiling for the lookup.
- trivial: the same constant through DRF and the full middleware stack: the ceiling for the plain lookup.
"""

import orjson
from django.contrib.gis.geos import Point
from django.http import HttpResponse
from django.views.decorators.http import require_GET
from rest_framework import permissions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from areas.lookups import parse_point
from areas.models import ServiceArea
from core.errors import InvalidInput
from hexindex.exact import exact_rows


class PlainResultSerializer(serializers.ModelSerializer):
    currency = serializers.CharField(source="provider.currency")
    provider = serializers.SerializerMethodField()

    class Meta:
        model = ServiceArea
        fields = ["id", "name", "price", "currency", "provider"]

    def get_provider(self, area):
        return {"id": area.provider_id, "name": area.provider.name}


def plain_lookup(*, lat: float, lng: float) -> dict:
    areas = (
        ServiceArea.objects.filter(geometry__covers=Point(lng, lat, srid=4326))
        .select_related("provider")
        .defer("geometry", "provider__email", "provider__phone_number")
        .order_by("price", "id")
    )
    results = PlainResultSerializer(areas, many=True).data
    return {"count": len(results), "results": results}


class PlainLookupView(APIView):
    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    def get(self, request):
        lat, lng = parse_point(request.query_params)
        return Response(plain_lookup(lat=lat, lng=lng))


TRIVIAL = {
    "count": 1,
    "results": [
        {"id": 1, "name": "JFK airport", "price": "45.00", "currency": "USD", "provider": {"id": 1, "name": "Acme"}}
    ],
}


class TrivialView(APIView):
    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    def get(self, request):
        return Response(TRIVIAL)


MINIMAL_BODY = orjson.dumps(TRIVIAL)


@require_GET
def minimal(request):
    return HttpResponse(MINIMAL_BODY, content_type="application/json")


@require_GET
def raw_lookup(request):
    try:
        lat, lng = parse_point(request.GET)
    except InvalidInput as exc:
        return HttpResponse(orjson.dumps(exc.errors), status=400, content_type="application/json")
    # The lookup's body byte for byte (the same serialisation): the benchmark checks it on every point.
    results = [row.as_dict() for row in exact_rows(lat=lat, lng=lng)]
    return HttpResponse(orjson.dumps({"count": len(results), "results": results}), content_type="application/json")


# The lookup and the baselines it is compared with, as a careful engineer would serve them: without middleware.
minimal.lean = raw_lookup.lean = True
