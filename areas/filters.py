import math

import django_filters
from django.contrib.gis.geos import Polygon
from django.db.models import Q
from rest_framework.exceptions import ValidationError
from rest_framework_gis.filters import InBBoxFilter

from areas.models import ServiceArea

BBOX_FORMAT = "in_bbox is minLng,minLat,maxLng,maxLat: four finite numbers, e.g. -74.3,40.5,-73.7,40.9."
BBOX_RANGE = "in_bbox: longitudes must be within [-180, 180] and latitudes within [-90, 90]."
BBOX_ORDER = "in_bbox: minLat must not be greater than maxLat."


class ServiceAreaFilter(django_filters.FilterSet):
    provider = django_filters.NumberFilter(field_name="provider_id", help_text="Only this provider's areas.")

    class Meta:
        model = ServiceArea
        fields = ["provider"]


class StrictInBBoxFilter(InBBoxFilter):
    """`in_bbox=minLng,minLat,maxLng,maxLat`: areas whose bounding box overlaps it.

    Malformed input is a 400 (the stock filter lets NaN through to the database). A box with minLng > maxLng
    crosses the antimeridian, e.g. `177,-20,-178,-15` around Fiji.
    """

    def get_filter_bbox(self, request):
        raw = request.query_params.get(self.bbox_param)
        if not raw:
            return None
        try:
            min_lng, min_lat, max_lng, max_lat = (float(part) for part in raw.split(","))
        except ValueError:
            raise ValidationError({self.bbox_param: [BBOX_FORMAT]}) from None
        if not all(math.isfinite(v) for v in (min_lng, min_lat, max_lng, max_lat)):
            raise ValidationError({self.bbox_param: [BBOX_FORMAT]})
        if not (-180 <= min_lng <= 180 and -180 <= max_lng <= 180 and -90 <= min_lat <= 90 and -90 <= max_lat <= 90):
            raise ValidationError({self.bbox_param: [BBOX_RANGE]})
        if min_lat > max_lat:
            raise ValidationError({self.bbox_param: [BBOX_ORDER]})
        spans = [(min_lng, max_lng)] if min_lng <= max_lng else [(min_lng, 180.0), (-180.0, max_lng)]
        boxes = []
        for west, east in spans:
            box = Polygon.from_bbox((west, min_lat, east, max_lat))
            box.srid = 4326
            boxes.append(box)
        return boxes

    def filter_queryset(self, request, queryset, view):
        boxes = self.get_filter_bbox(request)
        if not boxes:
            return queryset
        overlaps = Q()
        for box in boxes:
            overlaps |= Q(geometry__bboverlaps=box)
        return queryset.filter(overlaps)
