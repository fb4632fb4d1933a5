"""GET /api/v1/lookup/: exactly the areas covering a point, cheapest first.

These run against the public endpoint, once for each way the lookup can be served: from the hexagon index,
with the areas not yet indexed (checked directly in PostGIS), with Redis down, and with Redis empty (served
by PostGIS while the Redis side is rebuilt). The answer must be the same every time.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from areas.lookups import COORDINATE_MISSING, COORDINATE_NOT_A_NUMBER, COORDINATE_OUT_OF_RANGE
from testing.geo import multipolygon, polygon, square
from testing.net import closed_port

URL = "/api/v1/lookup/"
MODES = ["indexed", "pending", "redis-down", "redis-empty"]


@pytest.fixture(params=MODES)
def mode(request):
    return request.param


@pytest.fixture
def get(api, mode, settings, index_all, index_redis):
    """GET the lookup endpoint, served the way `mode` says. Areas are written beforehand with Redis up (writes
    need it); only the lookup itself sees Redis down or empty."""

    def request(params):
        if mode == "indexed":
            index_all()
        if mode == "redis-empty":
            index_redis.flushdb()
        if mode != "redis-down":
            return api.get(URL, params)
        real = settings.HEXINDEX_REDIS_URL
        settings.HEXINDEX_REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
        try:
            return api.get(URL, params)
        finally:
            settings.HEXINDEX_REDIS_URL = real

    return request


@pytest.fixture
def find(get):
    """Look a point up through the API; returns the ids found, in order."""

    def lookup(*, lat, lng) -> list[int]:
        response = get({"lat": lat, "lng": lng})
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["count"] == len(body["results"])
        return [result["id"] for result in body["results"]]

    return lookup


def test_returns_the_documented_payload(get, make_area, make_provider):
    provider = make_provider(name="Acme Shuttles", currency="USD")
    area = make_area(square(-73.78, 40.64, 0.05), provider=provider, name="JFK", price="45")

    response = get({"lat": "40.64", "lng": "-73.78"})

    assert response.status_code == 200
    assert response.json() == {
        "count": 1,
        "results": [
            {
                "id": area.id,
                "name": "JFK",
                "price": "45.00",
                "currency": "USD",
                "provider": {"id": provider.id, "name": "Acme Shuttles"},
            }
        ],
    }


def test_lat_and_lng_are_not_swapped(find, make_area):
    # Kyiv is at lat 50.45, lng 30.52. Written the other way round, (lat 30.52, lng 50.45) is in Iran.
    kyiv = make_area(square(30.52, 50.45, 0.2))
    iran = make_area(square(50.45, 30.52, 0.2))
    assert find(lat=50.45, lng=30.52) == [kyiv.id]
    assert find(lat=30.52, lng=50.45) == [iran.id]


def test_point_inside_a_hole_is_not_covered(find, make_area):
    outer = [(10.0, 40.0), (14.0, 40.0), (14.0, 43.0), (10.0, 43.0)]
    hole = [(11.0, 41.0), (11.0, 42.0), (13.0, 42.0), (13.0, 41.0)]
    area = make_area(polygon(outer, hole))
    assert find(lat=41.5, lng=12.0) == []  # in the hole
    assert find(lat=40.5, lng=12.0) == [area.id]  # between hole and outline
    assert find(lat=42.0, lng=12.0) == [area.id]  # on the hole's edge: the boundary is inside
    assert find(lat=41.0, lng=11.0) == [area.id]  # on a hole's corner


def test_each_part_of_a_multipolygon_counts_once(find, make_area):
    area = make_area(multipolygon(square(2.35, 48.85, 0.1), square(5.37, 43.30, 0.1)))  # Paris and Marseille
    assert find(lat=48.85, lng=2.35) == [area.id]
    assert find(lat=43.30, lng=5.37) == [area.id]
    assert find(lat=45.76, lng=4.84) == []  # Lyon, between the parts


def test_points_on_edges_and_vertices_are_inside(find, make_area):
    triangle = make_area(polygon([(0.0, 10.0), (2.0, 10.0), (0.0, 11.0)]))
    assert find(lat=10.0, lng=1.0) == [triangle.id]  # on the bottom edge
    assert find(lat=10.5, lng=0.0) == [triangle.id]  # on the left edge
    assert find(lat=10.5, lng=1.0) == [triangle.id]  # on the slanted edge, exactly
    assert find(lat=11.0, lng=0.0) == [triangle.id]  # on a vertex
    assert find(lat=10.0, lng=2.0) == [triangle.id]  # on another vertex
    assert find(lat=10.5000001, lng=1.0) == []  # just outside the slanted edge
    assert find(lat=9.9999999, lng=1.0) == []  # just below the bottom edge


def test_points_at_the_equator_and_prime_meridian(find, make_area):
    gulf_of_guinea = make_area(square(0.0, 0.0, 1.0))
    east = make_area(polygon([(0.0, -1.0), (1.0, -1.0), (1.0, 1.0), (0.0, 1.0)]))
    assert find(lat=0, lng=0) == [gulf_of_guinea.id, east.id]
    assert find(lat=0, lng=-0.5) == [gulf_of_guinea.id]
    assert find(lat=0.5, lng=0) == [gulf_of_guinea.id, east.id]
    assert find(lat=-0.0, lng=-0.0) == [gulf_of_guinea.id, east.id]


@pytest.mark.parametrize(
    ("lat", "lng"),
    [(35.68, 139.69), (40.71, -74.0), (-33.87, 151.21), (-23.55, -46.63)],
    ids=["north-east Tokyo", "north-west New York", "south-east Sydney", "south-west Sao Paulo"],
)
def test_every_hemisphere(find, make_area, lat, lng):
    # The same city mirrored into the other three hemispheres: a sign error finds the wrong one.
    areas = {(sx, sy): make_area(square(sx * lng, sy * lat, 0.3)) for sx in (1, -1) for sy in (1, -1)}
    for (sx, sy), area in areas.items():
        assert find(lat=sy * lat, lng=sx * lng) == [area.id]


def test_poles_and_the_antimeridian(find, make_area):
    arctic = make_area(polygon([(-180.0, 85.0), (180.0, 85.0), (180.0, 90.0), (-180.0, 90.0)]))
    fiji_east = make_area(polygon([(179.0, -17.0), (180.0, -17.0), (180.0, -16.0), (179.0, -16.0)]))
    fiji_west = make_area(polygon([(-180.0, -17.0), (-179.0, -17.0), (-179.0, -16.0), (-180.0, -16.0)]))
    assert find(lat=90, lng=0) == [arctic.id]
    assert find(lat=89.9, lng=-179.99) == [arctic.id]
    assert find(lat=-16.5, lng=180) == [fiji_east.id]
    assert find(lat=-16.5, lng=-180) == [fiji_west.id]
    assert find(lat=-16.5, lng=179.999) == [fiji_east.id]
    assert find(lat=-16.5, lng=-179.999) == [fiji_west.id]


def test_no_area_covers_the_point(get, make_area):
    make_area(square(10.0, 50.0, 1.0))
    response = get({"lat": -50, "lng": -10})
    assert response.json() == {"count": 0, "results": []}


def test_ordered_by_price_then_id(find, make_area):
    here = square(-0.12, 51.5, 0.5)
    dear = make_area(here, price="30.00")
    cheap_first = make_area(here, price="10.00")
    cheap_second = make_area(here, price="10.00")
    free = make_area(here, price="0")
    make_area(square(20.0, 20.0, 0.5), price="1.00")
    assert find(lat=51.5, lng=-0.12) == [free.id, cheap_first.id, cheap_second.id, dear.id]


def test_tiny_and_huge_areas(find, make_area):
    tiny = make_area(square(13.4050, 52.5200, 0.00001))  # about 2 m across, in Berlin
    huge = make_area(polygon([(-170.0, -60.0), (170.0, -60.0), (170.0, 80.0), (-170.0, 80.0)]))
    assert find(lat=52.5200, lng=13.4050) == [tiny.id, huge.id]
    assert find(lat=52.52002, lng=13.4050) == [huge.id]
    assert find(lat=0, lng=175) == []


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"lng": "1"}, "lat", COORDINATE_MISSING),
        ({"lat": "1"}, "lng", COORDINATE_MISSING),
        ({"lat": "", "lng": "1"}, "lat", COORDINATE_MISSING),
        ({"lat": "abc", "lng": "1"}, "lat", COORDINATE_NOT_A_NUMBER.format(example="40.6413")),
        ({"lat": "1", "lng": "nan"}, "lng", COORDINATE_NOT_A_NUMBER.format(example="-73.7781")),
        ({"lat": "inf", "lng": "1"}, "lat", COORDINATE_NOT_A_NUMBER.format(example="40.6413")),
        ({"lat": "1e400", "lng": "1"}, "lat", COORDINATE_NOT_A_NUMBER.format(example="40.6413")),
        ({"lat": "1_0", "lng": "1"}, "lat", COORDINATE_NOT_A_NUMBER.format(example="40.6413")),
        ({"lat": "0x10", "lng": "1"}, "lat", COORDINATE_NOT_A_NUMBER.format(example="40.6413")),
        ({"lat": "90.0001", "lng": "1"}, "lat", COORDINATE_OUT_OF_RANGE.format(low=-90.0, high=90.0)),
        ({"lat": "1", "lng": "-180.5"}, "lng", COORDINATE_OUT_OF_RANGE.format(low=-180.0, high=180.0)),
        ({"lat": "-73.9", "lng": "40.7"}, None, None),  # a swapped New York is a valid point (Antarctica)
    ],
)
def test_bad_coordinates_are_a_400_naming_the_field(api, db, params, field, message):
    response = api.get(URL, params)
    if field is None:
        assert response.status_code == 200
        return
    assert response.status_code == 400
    assert response.json()[field] == [message]


def test_both_bad_coordinates_are_reported_together(api, db):
    assert api.get(URL).json().keys() == {"lat", "lng"}


def test_lookup_is_public_and_ignores_tokens(api, make_area):
    make_area(square(10.0, 50.0, 1.0))
    assert api.get(URL, {"lat": 50, "lng": 10}).status_code == 200
    api.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert api.get(URL, {"lat": 50, "lng": 10}).status_code == 200


@pytest.mark.parametrize("mode", ["indexed"], indirect=True)
def test_no_database_query_when_every_candidate_is_interior(api, find, make_area, make_provider):
    big = square(10.0, 50.0, 1.0)
    for _ in range(20):
        make_area(big, provider=make_provider())
    assert len(find(lat=50, lng=10)) == 20  # builds the index
    with CaptureQueriesContext(connection) as queries:
        assert api.get(URL, {"lat": 50, "lng": 10}).json()["count"] == 20
    assert len(queries) == 0


@pytest.mark.parametrize("mode", ["indexed", "pending"], indirect=True)
def test_at_most_one_database_query_per_lookup_however_many_matches(api, find, make_area, make_provider):
    # Points on the outline: boundary candidates (indexed) or pending areas need one confirming query.
    here = square(10.0, 50.0, 1.0)
    make_area(here)
    find(lat=49.0, lng=10.0)
    with CaptureQueriesContext(connection) as one_match:
        assert api.get(URL, {"lat": 49.0, "lng": 10.0}).json()["count"] == 1
    for _ in range(20):
        make_area(here, provider=make_provider())
    find(lat=49.0, lng=10.0)
    with CaptureQueriesContext(connection) as many_matches:
        assert api.get(URL, {"lat": 49.0, "lng": 10.0}).json()["count"] == 21
    assert len(one_match) == len(many_matches) == 1
