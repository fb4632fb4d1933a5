"""OpenAPI shapes for service-area Features, spelled out: the generic GIS extension describes a MultiPolygon
field only and trips over request-only components."""

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.plumbing import build_object_type


def _array(items: dict, min_items: int | None = None, max_items: int | None = None) -> dict:
    schema = {"type": "array", "items": items}
    if min_items is not None:
        schema["minItems"] = min_items
    if max_items is not None:
        schema["maxItems"] = max_items
    return schema


NUMBER = {"type": "number", "format": "double"}

POSITION = {
    **_array(NUMBER, 2, 3),
    "description": "[longitude, latitude]: longitude first, as in GeoJSON (RFC 7946).",
    "example": [-73.7781, 40.6413],
}
LINEAR_RING = {
    **_array(POSITION, 4),
    "description": "Closed ring: at least 4 positions, the last equal to the first. The first ring of a polygon "
    "is its outline, any further rings are holes.",
}
POLYGON_COORDINATES = _array(LINEAR_RING, 1)
EXAMPLE_RING = [[-73.83, 40.62], [-73.74, 40.62], [-73.74, 40.67], [-73.83, 40.67], [-73.83, 40.62]]


def _geometry(name: str, coordinates: dict, example) -> dict:
    return build_object_type(
        properties={"type": {"type": "string", "enum": [name]}, "coordinates": coordinates},
        required=["type", "coordinates"],
        description=f"GeoJSON {name}.",
    ) | {"example": {"type": name, "coordinates": example}}


POLYGON = _geometry("Polygon", POLYGON_COORDINATES, [EXAMPLE_RING])
MULTIPOLYGON = _geometry("MultiPolygon", _array(POLYGON_COORDINATES, 1), [[EXAMPLE_RING]])
BBOX = _array(NUMBER, 4, 4) | {"description": "[minLng, minLat, maxLng, maxLat]"}


class ServiceAreaFeatureExtension(OpenApiSerializerExtension):
    target_class = "areas.serializers.ServiceAreaSerializer"
    priority = 1  # ahead of drf-spectacular's generic GeoFeatureModelSerializer extension

    def map_serializer(self, auto_schema, direction):
        properties = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        properties.pop("description", None)
        properties["properties"].pop("geometry", None)
        area_id = properties["properties"].pop("id", None)
        required = properties.pop("required", [])
        properties["required"] = [name for name in required if name not in ("geometry", "id")]
        if not properties["required"]:
            properties.pop("required")

        members = {"type": {"type": "string", "enum": ["Feature"]}}
        if direction == "response":
            members |= {"id": area_id, "geometry": MULTIPOLYGON, "bbox": BBOX, "properties": properties}
            required_members = ["type", "id", "geometry", "properties"]
        else:
            members |= {"geometry": {"oneOf": [POLYGON, MULTIPOLYGON]}, "properties": properties}
            required_members = ["type"] if self.target.partial else ["type", "geometry", "properties"]
        return build_object_type(
            properties=members,
            required=required_members,
            description="A service area as a GeoJSON Feature (RFC 7946).",
        )
