import math
import re

from django.http import HttpResponse, JsonResponse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_view, inline_serializer
from rest_framework import permissions, serializers, viewsets
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.views import APIView

from areas.filters import ServiceAreaFilter, StrictInBBoxFilter
from areas.models import ServiceArea
from areas.serializers import ProviderRefSerializer, ServiceAreaSerializer
from areas.services import area_create, area_delete, area_update
from hexindex.api import lookup
from project.pagination import FeatureCollectionPagination
from providers.permissions import can_manage_provider

NOT_YOUR_PROVIDER = "Only the provider's owner or staff may manage its service areas."
COORDINATE_MISSING = "This query parameter is required."
COORDINATE_NOT_A_NUMBER = "Must be a decimal number, e.g. {example}."
COORDINATE_OUT_OF_RANGE = "Must be between {low} and {high}."

# Plain ASCII decimal notation only: Python's float() would also take "nan", "inf", "1_000", " 1 " and digits of
# other scripts ("٤٠").
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_COORDINATES = (("lat", -90.0, 90.0, "40.6413"), ("lng", -180.0, 180.0, "-73.7781"))


def parse_point(query_params) -> tuple[float, float]:
    """`lat` and `lng` from a query string, or a ValidationError naming each bad one."""
    values, errors = {}, {}
    for name, low, high, example in _COORDINATES:
        raw = query_params.get(name)
        if raw is None or raw == "":
            errors[name] = [COORDINATE_MISSING]
        elif not _DECIMAL.fullmatch(raw) or not math.isfinite(value := float(raw)):
            errors[name] = [COORDINATE_NOT_A_NUMBER.format(example=example)]
        elif not low <= value <= high:
            errors[name] = [COORDINATE_OUT_OF_RANGE.format(low=low, high=high)]
        else:
            values[name] = value
    if errors:
        raise ValidationError(errors)
    return values["lat"], values["lng"]


def _check_can_manage(user, provider):
    if not can_manage_provider(user, provider):
        raise PermissionDenied(NOT_YOUR_PROVIDER)


@extend_schema_view(
    list=extend_schema(
        summary="List service areas",
        description="A paginated GeoJSON FeatureCollection. Filter by `provider` and by `in_bbox`.",
    ),
    create=extend_schema(summary="Create a service area", description="Only for a provider you own (or as staff)."),
    retrieve=extend_schema(summary="Get a service area"),
    update=extend_schema(summary="Replace a service area", description="Owner of its provider or staff only."),
    partial_update=extend_schema(
        summary="Update some members of a service area",
        description='Send a Feature with only what changes, e.g. `{"type": "Feature", "properties": '
        '{"price": "50.00"}}`.',
    ),
    destroy=extend_schema(summary="Delete a service area", description="Owner of its provider or staff only."),
)
class ServiceAreaViewSet(viewsets.ModelViewSet):
    queryset = ServiceArea.objects.select_related("provider", "index_state")
    serializer_class = ServiceAreaSerializer
    pagination_class = FeatureCollectionPagination
    filter_backends = [DjangoFilterBackend, StrictInBBoxFilter]
    filterset_class = ServiceAreaFilter
    bbox_filter_field = "geometry"
    bbox_filter_include_overlapping = True
    permission_classes = [permissions.IsAuthenticated]

    def check_object_permissions(self, request, obj):
        super().check_object_permissions(request, obj)
        if request.method not in permissions.SAFE_METHODS:
            _check_can_manage(request.user, obj.provider)

    def perform_create(self, serializer):
        _check_can_manage(self.request.user, serializer.validated_data["provider"])
        serializer.instance = area_create(data=serializer.validated_data)

    def perform_update(self, serializer):
        if "provider" in serializer.validated_data:
            _check_can_manage(self.request.user, serializer.validated_data["provider"])
        serializer.instance = area_update(area=serializer.instance, data=serializer.validated_data)

    def perform_destroy(self, instance):
        area_delete(area=instance)


class LookupResultSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Service area id.")
    name = serializers.CharField(help_text="Service area name.")
    price = serializers.DecimalField(max_digits=12, decimal_places=2, help_text="In `currency`.")
    currency = serializers.CharField(help_text="ISO 4217 code of the provider.")
    provider = ProviderRefSerializer()


@extend_schema(
    summary="Which providers serve this point, and at what price?",
    description=(
        "Every service area whose geometry covers the point (a point on an area's boundary counts as inside), "
        "cheapest first, then by id. Public: no token needed."
    ),
    auth=[],
    parameters=[
        OpenApiParameter("lat", OpenApiTypes.DOUBLE, required=True, description="Latitude, -90 to 90."),
        OpenApiParameter("lng", OpenApiTypes.DOUBLE, required=True, description="Longitude, -180 to 180."),
    ],
    responses={
        200: inline_serializer(
            "LookupResponse", fields={"count": serializers.IntegerField(), "results": LookupResultSerializer(many=True)}
        ),
        400: inline_serializer(
            "LookupError",
            fields={
                "lat": serializers.ListField(child=serializers.CharField(), required=False),
                "lng": serializers.ListField(child=serializers.CharField(), required=False),
            },
        ),
    },
    examples=[
        OpenApiExample(
            "Two providers serve JFK",
            value={
                "count": 2,
                "results": [
                    {
                        "id": 7,
                        "name": "JFK airport",
                        "price": "45.00",
                        "currency": "USD",
                        "provider": {"id": 3, "name": "Acme Shuttles"},
                    },
                    {
                        "id": 12,
                        "name": "New York City",
                        "price": "60.00",
                        "currency": "USD",
                        "provider": {"id": 5, "name": "Big Apple Cabs"},
                    },
                ],
            },
            response_only=True,
            status_codes=["200"],
        ),
        OpenApiExample(
            "Latitude out of range", value={"lat": ["Must be between -90.0 and 90.0."]}, status_codes=["400"]
        ),
    ],
)
class LookupView(APIView):
    """Documented as a DRF view, served as a plain Django one: a public read-only GET needs no content negotiation,
    authentication, throttling or request wrapping (and, through project.lean, no middleware)."""

    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    def dispatch(self, request, *args, **kwargs):
        if request.method not in ("GET", "HEAD"):
            return super().dispatch(request, *args, **kwargs)  # DRF's 405 with its Allow header
        return lookup_response(request)

    def get(self, request):
        return lookup_response(request)  # for the schema; dispatch answers GET itself


def lookup_response(request) -> HttpResponse:
    try:
        lat, lng = parse_point(request.GET)
    except ValidationError as exc:
        return JsonResponse(exc.detail, status=400)
    # The body arrives serialised: results are cached as JSON and spliced together, not re-encoded.
    return HttpResponse(lookup(lat=lat, lng=lng).body, content_type="application/json")
