"""Strict parsing of service-area geometries from GeoJSON (RFC 7946). No Django here: the API and the bulk
importer share it.

Everything wrong with an input is reported with where it is (`coordinates[0][3]`) and what to do about it.
Invalid geometry is refused with GEOS's own reason and never repaired silently: a "made valid" polygon can
cover a different area than the one the provider drew.
"""

import math
from numbers import Real

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon

MAX_VERTICES = 50_000
MAX_PARTS = 1_000

NOT_AN_OBJECT = 'Geometry must be a GeoJSON geometry object, e.g. {"type": "Polygon", "coordinates": [...]}.'
WRONG_TYPE = "Geometry type must be Polygon or MultiPolygon, not {type!r}."
MISSING_COORDINATES = "Geometry has no 'coordinates' array."
NOT_A_LIST = "{where}: expected an array."
EMPTY = "{where}: must not be empty."
BAD_POSITION = "{where}: a position is [longitude, latitude] (optionally a third number, altitude)."
NOT_A_NUMBER = "{where}: coordinates must be numbers."
NOT_FINITE = "{where}: coordinates must be finite numbers."
LNG_RANGE = "{where}: longitude {value} is outside [-180, 180]. GeoJSON positions are [longitude, latitude]."
LAT_RANGE = "{where}: latitude {value} is outside [-90, 90]. GeoJSON positions are [longitude, latitude]."
RING_TOO_SHORT = "{where}: a linear ring needs at least 4 positions, got {count}."
RING_NOT_CLOSED = "{where}: a linear ring must end where it starts (first and last positions equal)."
TOO_MANY_VERTICES = f"Geometry has more than {MAX_VERTICES:,} positions; simplify it or split it into several areas."
TOO_MANY_PARTS = f"A MultiPolygon may have at most {MAX_PARTS:,} polygons."
INVALID = "Invalid geometry: {reason}."


class GeometryError(ValueError):
    """The input is not an acceptable service-area geometry; the message says why."""


class _Budget:
    """Counts positions while walking, so an absurd input is refused before it is fully read."""

    def __init__(self):
        self.used = 0

    def spend(self, count: int) -> None:
        self.used += count
        if self.used > MAX_VERTICES:
            raise GeometryError(TOO_MANY_VERTICES)


def _position(value, where: str) -> tuple[float, float]:
    if not isinstance(value, list) or len(value) not in (2, 3):
        raise GeometryError(BAD_POSITION.format(where=where))
    for number in value:
        # bool is an int in Python, but `true` is not a coordinate.
        if isinstance(number, bool) or not isinstance(number, Real):
            raise GeometryError(NOT_A_NUMBER.format(where=where))
        try:
            finite = math.isfinite(number)
        except OverflowError:  # an integer too large for a float (JSON allows any number of digits)
            finite = False
        if not finite:
            raise GeometryError(NOT_FINITE.format(where=where))
    lng, lat = float(value[0]), float(value[1])
    if not -180.0 <= lng <= 180.0:
        raise GeometryError(LNG_RANGE.format(where=where, value=value[0]))
    if not -90.0 <= lat <= 90.0:
        raise GeometryError(LAT_RANGE.format(where=where, value=value[1]))
    return lng, lat


def _ring(value, where: str, budget: _Budget) -> list[tuple[float, float]]:
    if not isinstance(value, list):
        raise GeometryError(NOT_A_LIST.format(where=where))
    budget.spend(len(value))
    if len(value) < 4:
        raise GeometryError(RING_TOO_SHORT.format(where=where, count=len(value)))
    ring = [_position(position, f"{where}[{i}]") for i, position in enumerate(value)]
    if ring[0] != ring[-1]:
        raise GeometryError(RING_NOT_CLOSED.format(where=where))
    return ring


def _polygon(value, where: str, budget: _Budget) -> Polygon:
    if not isinstance(value, list):
        raise GeometryError(NOT_A_LIST.format(where=where))
    if not value:
        raise GeometryError(EMPTY.format(where=where))
    shell, *holes = (_ring(ring, f"{where}[{i}]", budget) for i, ring in enumerate(value))
    return Polygon(shell, holes)


def parse_area_geometry(value) -> MultiPolygon:
    """GeoJSON Polygon/MultiPolygon (parsed JSON) -> valid shapely MultiPolygon, rings oriented per RFC 7946
    (exterior counter-clockwise, holes clockwise). Raises GeometryError."""
    if not isinstance(value, dict):
        raise GeometryError(NOT_AN_OBJECT)
    geom_type = value.get("type")
    if geom_type not in ("Polygon", "MultiPolygon"):
        raise GeometryError(WRONG_TYPE.format(type=geom_type))
    if "coordinates" not in value:
        raise GeometryError(MISSING_COORDINATES)
    coordinates = value["coordinates"]
    if not isinstance(coordinates, list):
        raise GeometryError(NOT_A_LIST.format(where="coordinates"))
    if not coordinates:
        raise GeometryError(EMPTY.format(where="coordinates"))
    budget = _Budget()
    if geom_type == "Polygon":
        polygons = [_polygon(coordinates, "coordinates", budget)]
    else:
        if len(coordinates) > MAX_PARTS:
            raise GeometryError(TOO_MANY_PARTS)
        polygons = [_polygon(part, f"coordinates[{i}]", budget) for i, part in enumerate(coordinates)]
    geometry = MultiPolygon(polygons)
    reason = shapely.is_valid_reason(geometry)
    if reason != "Valid Geometry":
        raise GeometryError(INVALID.format(reason=reason))
    if geometry.is_empty or geometry.area == 0:
        raise GeometryError(INVALID.format(reason="the area is empty"))
    return shapely.orient_polygons(geometry, exterior_cw=False)


def geometry_to_geojson(coords) -> dict:
    """A MultiPolygon's nested coordinate tuples -> GeoJSON. Floats keep full precision (Python's repr round
    trips), so a client that sends back what it read changes nothing."""
    return {"type": "MultiPolygon", "coordinates": coords}


EARTH_RADIUS_KM = 6371.0088
_SPAN_SAMPLE = 2_000


def span_km(geometry) -> float:
    """The greatest great-circle distance between two points of the geometry, in km (its diameter on the sphere).

    Measured between vertices of each part's convex hull, as unit vectors, so an area across the antimeridian or
    around a pole measures what it covers, not its longitude range."""
    hulls = [shapely.convex_hull(part) for part in getattr(geometry, "geoms", [geometry])]
    points = np.concatenate([shapely.get_coordinates(hull) for hull in hulls])
    if len(points) > _SPAN_SAMPLE:  # a fine outline's hull: a sample of it measures the same to a few km
        points = points[np.linspace(0, len(points) - 1, _SPAN_SAMPLE).astype(int)]
    lng, lat = np.radians(points[:, 0]), np.radians(points[:, 1])
    unit = np.column_stack([np.cos(lat) * np.cos(lng), np.cos(lat) * np.sin(lng), np.sin(lat)])
    closest = float(np.clip((unit @ unit.T).min(), -1.0, 1.0))
    return math.acos(closest) * EARTH_RADIUS_KM
