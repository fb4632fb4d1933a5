"""Reference endpoints for the benchmark, served only under the bench settings.

- plain lookup: what a careful GeoDjango + DRF implementation does without an index: a `covers` filter on the
  GiST-indexed geometry, the provider joined, the geometry column not fetched, a DRF serializer.
- trivial: a constant payload through the same stack (Django, DRF, gunicorn): the ceiling.
"""

from django.contrib.gis.geos import Point
from rest_framework import permissions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from areas.models import ServiceArea
from areas.views import parse_point


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
