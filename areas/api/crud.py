"""The service areas' CRUD API: `/api/v1/service-areas/`, GeoJSON Features in and out. Writes go through the
services (areas.services); who may see and write what is in areas.listing and here."""

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import permissions, viewsets
from rest_framework.exceptions import PermissionDenied

from areas.filters import ServiceAreaFilter, StrictInBBoxFilter
from areas.listing import GeometryBudgetPagination, parse_geometry_mode, visible_areas, with_listed_geometry
from areas.models import ServiceArea
from areas.serializers import ServiceAreaSerializer
from areas.services import area_create, area_delete, area_update
from core.concurrency import IF_MATCH, ETagMixin
from providers.permissions import can_manage_provider

NOT_YOUR_PROVIDER = "Only the provider's owner or staff may manage its service areas."


def _check_can_manage(user, provider):
    if not can_manage_provider(user, provider):
        raise PermissionDenied(NOT_YOUR_PROVIDER)


GEOMETRY_PARAMETER = OpenApiParameter(
    "geometry",
    OpenApiTypes.STR,
    enum=["full", "simplified", "none"],
    description="What geometry to return: `full` (default), `simplified` (to a thousandth of each area's size, for "
    "overview maps) or `none`. Other users' geometries are never shown (`null`).",
)


@extend_schema_view(
    list=extend_schema(
        summary="List service areas",
        description="A paginated GeoJSON FeatureCollection: your areas, and other users' areas of approved providers "
        "(without geometry); staff see all. Filter by `provider` and by `in_bbox`. A page carries at most "
        "LIST_MAX_POSITIONS_PER_PAGE positions of geometry (250,000 by default); a heavier one is a 400 that says so.",
        parameters=[GEOMETRY_PARAMETER],
    ),
    create=extend_schema(
        summary="Create a service area",
        description="Only for a provider you own (or as staff). Limits per owner (staff are exempt): number of "
        "areas, positions over all areas (403 naming the quota), and one area's span (400 on `geometry`).",
    ),
    retrieve=extend_schema(summary="Get a service area", parameters=[GEOMETRY_PARAMETER]),
    update=extend_schema(
        summary="Replace a service area", description="Owner of its provider or staff only.", parameters=[IF_MATCH]
    ),
    partial_update=extend_schema(
        summary="Update some members of a service area",
        description='Send a Feature with only what changes, e.g. `{"type": "Feature", "properties": '
        '{"price": "50.00"}}`: only those fields are written.',
        parameters=[IF_MATCH],
    ),
    destroy=extend_schema(
        summary="Delete a service area", description="Owner of its provider or staff only.", parameters=[IF_MATCH]
    ),
)
class ServiceAreaViewSet(ETagMixin, viewsets.ModelViewSet):
    queryset = ServiceArea.objects.select_related("provider", "index_state")
    serializer_class = ServiceAreaSerializer
    pagination_class = GeometryBudgetPagination
    filter_backends = [DjangoFilterBackend, StrictInBBoxFilter]
    filterset_class = ServiceAreaFilter
    bbox_filter_field = "geometry"
    bbox_filter_include_overlapping = True
    permission_classes = [permissions.IsAuthenticated]

    def get_queryset(self):
        queryset = visible_areas(self.request.user, super().get_queryset())
        if self.request.method in permissions.SAFE_METHODS:
            # Reads carry the geometry asked for (and only the viewer's own, or all for staff); nothing else of it
            # is loaded.
            mode = parse_geometry_mode(self.request.query_params)
            queryset = with_listed_geometry(queryset, user=self.request.user, mode=mode)
        return queryset

    def check_object_permissions(self, request, obj):
        super().check_object_permissions(request, obj)
        if request.method not in permissions.SAFE_METHODS:
            _check_can_manage(request.user, obj.provider)

    def perform_create(self, serializer):
        _check_can_manage(self.request.user, serializer.validated_data["provider"])
        serializer.instance = self.etag_object = area_create(data=serializer.validated_data)

    def perform_update(self, serializer):
        if "provider" in serializer.validated_data:
            _check_can_manage(self.request.user, serializer.validated_data["provider"])
        serializer.instance = self.etag_object = area_update(
            area=serializer.instance, data=serializer.validated_data, if_match=self.if_match
        )

    def perform_destroy(self, instance):
        area_delete(area=instance, if_match=self.if_match)
