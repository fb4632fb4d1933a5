"""Parsing of service-area geometries, without a database."""

import math

import pytest
from shapely.geometry import Point

from areas import geometry as g
from areas.geometry import GeometryError, parse_area_geometry

SQUARE = [[[10.0, 50.0], [11.0, 50.0], [11.0, 51.0], [10.0, 51.0], [10.0, 50.0]]]


def test_polygon_becomes_multipolygon_with_lng_lat_order_kept():
    parsed = parse_area_geometry({"type": "Polygon", "coordinates": SQUARE})
    assert parsed.geom_type == "MultiPolygon"
    # Longitude 10..11, latitude 50..51: a swap would put the point at (50.5, 10.5).
    assert parsed.covers(Point(10.5, 50.5))
    assert not parsed.covers(Point(50.5, 10.5))


def test_exterior_ring_is_oriented_counter_clockwise_and_holes_clockwise():
    clockwise = [list(reversed(SQUARE[0]))]
    hole_ccw = [[10.2, 50.2], [10.4, 50.2], [10.4, 50.4], [10.2, 50.4], [10.2, 50.2]]
    parsed = parse_area_geometry({"type": "Polygon", "coordinates": [clockwise[0], hole_ccw]})
    polygon = parsed.geoms[0]
    assert polygon.exterior.is_ccw
    assert not polygon.interiors[0].is_ccw


def test_altitude_is_accepted_and_dropped():
    with_altitude = [[[*p, 12.5] for p in SQUARE[0]]]
    parsed = parse_area_geometry({"type": "Polygon", "coordinates": with_altitude})
    assert not parsed.has_z


def test_multipolygon_with_parts_touching_at_a_corner_is_valid():
    east = [[[11.0, 51.0], [12.0, 51.0], [12.0, 52.0], [11.0, 52.0], [11.0, 51.0]]]
    parsed = parse_area_geometry({"type": "MultiPolygon", "coordinates": [SQUARE, east]})
    assert len(parsed.geoms) == 2


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("POLYGON((0 0, 1 0, 1 1, 0 0))", g.NOT_AN_OBJECT),
        ([1, 2], g.NOT_AN_OBJECT),
        ({"type": "Point", "coordinates": [1, 2]}, g.WRONG_TYPE.format(type="Point")),
        ({"type": "polygon", "coordinates": SQUARE}, g.WRONG_TYPE.format(type="polygon")),
        ({"type": "Polygon"}, g.MISSING_COORDINATES),
        ({"type": "Polygon", "coordinates": "[]"}, g.NOT_A_LIST.format(where="coordinates")),
        ({"type": "Polygon", "coordinates": []}, g.EMPTY.format(where="coordinates")),
        ({"type": "MultiPolygon", "coordinates": []}, g.EMPTY.format(where="coordinates")),
        ({"type": "MultiPolygon", "coordinates": [[]]}, g.EMPTY.format(where="coordinates[0]")),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]},
            g.RING_TOO_SHORT.format(where="coordinates[0]", count=3),
        ),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]},
            g.RING_NOT_CLOSED.format(where="coordinates[0]"),
        ),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1], [0, 1], [0, 0]]]},
            g.BAD_POSITION.format(where="coordinates[0][2]"),
        ),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], ["1", 1], [0, 1], [0, 0]]]},
            g.NOT_A_NUMBER.format(where="coordinates[0][2]"),
        ),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [True, 1], [0, 1], [0, 0]]]},
            g.NOT_A_NUMBER.format(where="coordinates[0][2]"),
        ),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [math.nan, 1], [0, 1], [0, 0]]]},
            g.NOT_FINITE.format(where="coordinates[0][2]"),
        ),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, math.inf], [0, 1], [0, 0]]]},
            g.NOT_FINITE.format(where="coordinates[0][2]"),
        ),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [181, 0], [1, 1], [0, 1], [0, 0]]]},
            g.LNG_RANGE.format(where="coordinates[0][1]", value=181),
        ),
        (
            # Tokyo written as [lat, lng]: latitude 139.7 does not exist.
            {"type": "Polygon", "coordinates": [[[35.6, 139.7], [35.7, 139.7], [35.7, 139.8], [35.6, 139.7]]]},
            g.LAT_RANGE.format(where="coordinates[0][0]", value=139.7),
        ),
    ],
)
def test_malformed_geojson_is_refused_with_its_location(value, message):
    with pytest.raises(GeometryError) as error:
        parse_area_geometry(value)
    assert str(error.value) == message


def test_self_intersection_is_refused_with_the_geos_reason_not_repaired():
    bowtie = [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]
    with pytest.raises(GeometryError) as error:
        parse_area_geometry({"type": "Polygon", "coordinates": bowtie})
    assert str(error.value) == g.INVALID.format(reason="Self-intersection[0.5 0.5]")


def test_multipolygon_parts_sharing_an_edge_are_refused():
    east = [[[11.0, 50.0], [12.0, 50.0], [12.0, 51.0], [11.0, 51.0], [11.0, 50.0]]]
    with pytest.raises(GeometryError, match="Invalid geometry: Self-intersection"):
        parse_area_geometry({"type": "MultiPolygon", "coordinates": [SQUARE, east]})


def test_overlapping_multipolygon_parts_are_refused():
    shifted = [[[10.5, 50.0], [11.5, 50.0], [11.5, 51.0], [10.5, 51.0], [10.5, 50.0]]]
    with pytest.raises(GeometryError, match="Invalid geometry: Self-intersection"):
        parse_area_geometry({"type": "MultiPolygon", "coordinates": [SQUARE, shifted]})


def test_hole_outside_its_shell_is_refused():
    outside = [[20, 20], [21, 20], [21, 21], [20, 21], [20, 20]]
    with pytest.raises(GeometryError, match="Invalid geometry: Hole lies outside shell"):
        parse_area_geometry({"type": "Polygon", "coordinates": [SQUARE[0], outside]})


def test_degenerate_ring_is_refused():
    collinear = [[[0, 0], [1, 0], [2, 0], [0, 0]]]
    with pytest.raises(GeometryError, match="Invalid geometry"):
        parse_area_geometry({"type": "Polygon", "coordinates": collinear})


def test_absurd_vertex_count_is_refused_before_parsing_positions():
    ring = [[0.0, 0.0]] * (g.MAX_VERTICES + 1)
    with pytest.raises(GeometryError) as error:
        parse_area_geometry({"type": "Polygon", "coordinates": [ring]})
    assert str(error.value) == g.TOO_MANY_VERTICES


def test_too_many_parts_is_refused():
    with pytest.raises(GeometryError) as error:
        parse_area_geometry({"type": "MultiPolygon", "coordinates": [SQUARE] * (g.MAX_PARTS + 1)})
    assert str(error.value) == g.TOO_MANY_PARTS


def test_a_coordinate_with_hundreds_of_digits_is_refused_not_a_server_error():
    huge = int("9" * 400)
    square = {"type": "Polygon", "coordinates": [[[huge, 0], [1, 0], [1, 1], [0, 1], [huge, 0]]]}
    with pytest.raises(GeometryError, match="finite"):
        parse_area_geometry(square)
