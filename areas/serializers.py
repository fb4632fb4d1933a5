from django.contrib.gis.geos import GEOSGeometry
from drf_spectacular.utils import OpenApiExample, extend_schema_field, extend_schema_serializer
from rest_framework import serializers
from rest_framework_gis.fields import GeometryField
from rest_framework_gis.serializers import GeoFeatureModelSerializer
from shapely import to_wkb

from areas.geometry import GeometryError, geometry_to_geojson, parse_area_geometry
from areas.models import PRICE_DECIMAL_PLACES, PRICE_MAX_DIGITS, ServiceArea
from hexindex.api import IndexStatus, index_status
from providers.models import Provider

NOT_A_FEATURE = 'Send a GeoJSON Feature: {"type": "Feature", "geometry": {...}, "properties": {...}}.'
PROPERTIES_NOT_OBJECT = "'properties' must be an object."
MISSING_MEMBER = "This member of the Feature is required."
PRICE_INVALID = 'A price is a decimal number with at most two decimal places, e.g. "45.00".'

EXAMPLE_POLYGON = {
    "type": "Polygon",
    "coordinates": [[[-73.83, 40.62], [-73.74, 40.62], [-73.74, 40.67], [-73.83, 40.67], [-73.83, 40.62]]],
}


class AreaGeometryField(GeometryField):
    """GeoJSON Polygon or MultiPolygon in; always MultiPolygon out, at full coordinate precision."""

    def to_internal_value(self, value):
        try:
            geometry = parse_area_geometry(value)
        except GeometryError as exc:
            raise serializers.ValidationError(str(exc)) from exc
        return GEOSGeometry(memoryview(to_wkb(geometry)), srid=4326)

    def get_attribute(self, instance):
        # Reads annotate what they may show (areas.listing); writes answer with the geometry just stored.
        if "listed_geometry" in instance.__dict__:
            return instance.listed_geometry
        return super().get_attribute(instance)

    def to_representation(self, value):
        return None if value is None else geometry_to_geojson(value.coords)


class IndexStateSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=IndexStatus.choices,
        help_text="`ready`: live in the hexagon index. `pending`: being indexed; lookups already find it. "
        "`failed`: could not be indexed (see `error`); lookups still find it.",
    )
    resolution = serializers.IntegerField(allow_null=True, help_text="H3 resolution of the boundary cells.")
    interior_cells = serializers.IntegerField(allow_null=True, help_text="Cells entirely inside (compacted).")
    boundary_cells = serializers.IntegerField(allow_null=True, help_text="Cells crossing the outline.")
    indexed_at = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField(allow_null=True)


class ProviderRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "Service area",
            value={
                "type": "Feature",
                "geometry": EXAMPLE_POLYGON,
                "properties": {"provider": 3, "name": "JFK airport", "price": "45.00"},
            },
            request_only=True,
        ),
        OpenApiExample(
            "Service area",
            value={
                "type": "Feature",
                "id": 7,
                "geometry": {"type": "MultiPolygon", "coordinates": [EXAMPLE_POLYGON["coordinates"]]},
                "bbox": [-73.83, 40.62, -73.74, 40.67],
                "properties": {
                    "provider": 3,
                    "name": "JFK airport",
                    "price": "45.00",
                    "currency": "USD",
                    "created_at": "2026-11-28T09:00:00Z",
                    "updated_at": "2026-11-28T09:00:00Z",
                    "index": {
                        "status": "ready",
                        "resolution": 9,
                        "interior_cells": 41,
                        "boundary_cells": 52,
                        "indexed_at": "2026-11-28T09:00:01Z",
                        "error": None,
                    },
                },
            },
            response_only=True,
        ),
    ]
)
class ServiceAreaSerializer(GeoFeatureModelSerializer):
    geometry = AreaGeometryField(
        help_text="GeoJSON Polygon or MultiPolygon, positions as [longitude, latitude]; holes allowed. "
        "Stored and returned as a MultiPolygon. Read as `null` for other users' areas, and as you choose with "
        "`?geometry=full|simplified|none`."
    )
    provider = serializers.PrimaryKeyRelatedField(queryset=Provider.objects.all())
    price = serializers.DecimalField(
        max_digits=PRICE_MAX_DIGITS,
        decimal_places=PRICE_DECIMAL_PLACES,
        min_value=0,
        help_text="Price of a ride in this area, in the provider's currency. Two decimal places, not negative.",
        error_messages={"invalid": PRICE_INVALID},
    )
    currency = serializers.CharField(source="provider.currency", read_only=True, help_text="The provider's currency.")
    index = serializers.SerializerMethodField(help_text="Read-only state of the area in the hexagon index.")

    class Meta:
        model = ServiceArea
        geo_field = "geometry"
        auto_bbox = True
        fields = ["id", "provider", "name", "price", "currency", "created_at", "updated_at", "index"]
        read_only_fields = ["id", "created_at", "updated_at"]

    def to_internal_value(self, data):
        # A Feature is required (the generic serializer also takes flat objects, which hides mistakes).
        if not isinstance(data, dict) or data.get("type") != "Feature":
            raise serializers.ValidationError({"type": [NOT_A_FEATURE]})
        properties = data.get("properties", {})
        if not isinstance(properties, dict):
            raise serializers.ValidationError({"properties": [PROPERTIES_NOT_OBJECT]})
        if not self.partial:
            missing = {member: [MISSING_MEMBER] for member in ("geometry", "properties") if member not in data}
            if missing:
                raise serializers.ValidationError(missing)
        flat = dict(properties)
        if "geometry" in data:
            flat["geometry"] = data["geometry"]
        return serializers.ModelSerializer.to_internal_value(self, flat)

    @extend_schema_field(IndexStateSerializer)
    def get_index(self, area: ServiceArea) -> dict:
        return IndexStateSerializer(index_status(area)).data

    def validate_name(self, value):
        value = value.strip()
        if not value:
            raise serializers.ValidationError("This field may not be blank.")
        return value
