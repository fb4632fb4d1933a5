"""The indexed lookup against the exact PostGIS answer, on random areas and points (hypothesis)."""

import itertools
import math
import random

import numpy as np
import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Polygon, box, mapping

from areas.selectors import areas_covering
from areas.services import area_create, area_update
from conftest import square
from core.redis import breaker
from hexindex import caches, redis_index
from hexindex.build import index_areas
from hexindex.exact import lookup_exact
from hexindex.selectors import MAX_PENDING_CHECKS, lookup

PROPERTY = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
WORLD = box(-180, -90, 180, 90)


def ids(result) -> list[int]:
    import orjson

    return [item["id"] for item in orjson.loads(result.body)["results"]]


def star(rng, lng, lat, radius, vertices, hole) -> Polygon:
    angles = np.linspace(0, 2 * math.pi, vertices, endpoint=False)
    radii = [radius * (0.5 + 0.5 * rng.random()) for _ in angles]
    outer = [(lng + r * math.cos(a), lat + r * math.sin(a)) for r, a in zip(radii, angles, strict=True)]
    holes = []
    if hole:
        inner = min(radii) * 0.4
        holes = [
            [
                (lng + inner * math.cos(a), lat + inner * math.sin(a))
                for a in np.linspace(2 * math.pi, 0, 7, endpoint=False)
            ]
        ]
    return Polygon(outer, holes)


@st.composite
def areas(draw):
    """A random valid area: star polygons with or without holes, multi-part, slivers, near ±180 and the poles,
    from metres to thousands of kilometres across."""
    rng = random.Random(draw(st.integers(0, 10**6)))
    kind = draw(st.sampled_from(["star", "star-hole", "multi", "sliver", "antimeridian", "polar"]))
    radius = draw(st.sampled_from([2e-5, 1e-3, 0.02, 0.3, 3.0, 20.0]))
    lng = draw(st.floats(-170, 170))
    lat = draw(st.floats(-70, 70))
    vertices = draw(st.sampled_from([3, 5, 8, 24, 80]))
    if kind in ("star", "star-hole"):
        shape = star(rng, lng, lat, radius, vertices, kind == "star-hole")
    elif kind == "multi":
        # A second part with a hole, beside the first (never overlapping it).
        shape = MultiPolygon(
            [star(rng, lng, lat, radius, vertices, False), star(rng, lng + 2.5 * radius, lat, radius, 6, True)]
        )
    elif kind == "sliver":
        shape = Polygon([(lng, lat), (lng + radius * 10, lat + radius * 1e-3), (lng, lat + radius * 2e-3)])
    elif kind == "antimeridian":
        shape = star(rng, 180.0 - radius / 3, lat, radius, vertices, False).union(
            star(rng, -180.0 + radius / 4, lat, radius / 2, vertices, False)
        )
    else:
        shape = (
            box(-180, 90 - radius, 180, 90) if rng.random() < 0.5 else star(rng, lng, 85.0, min(radius, 4.0), 12, False)
        )
    assert shape.is_valid
    shape = shape.intersection(WORLD)
    parts = [p for p in getattr(shape, "geoms", [shape]) if isinstance(p, Polygon) and not p.is_empty]
    area = MultiPolygon(parts)
    if not area.is_valid or area.is_empty:
        area = MultiPolygon([box(lng, lat, lng + radius, lat + radius)])
    return area


def points_for(rng, area, count):
    """Random points around the area, plus its vertices, edge midpoints and the antimeridian."""
    minx, miny, maxx, maxy = area.bounds
    dx, dy = (maxx - minx) * 0.3 + 1e-6, (maxy - miny) * 0.3 + 1e-6
    points = [
        (max(-90, min(90, rng.uniform(miny - dy, maxy + dy))), max(-180, min(180, rng.uniform(minx - dx, maxx + dx))))
        for _ in range(count)
    ]
    for polygon in area.geoms:
        coords = list(polygon.exterior.coords)
        for (x1, y1), (x2, y2) in list(itertools.pairwise(coords))[:6]:
            points += [(y1, x1), ((y1 + y2) / 2, (x1 + x2) / 2)]
    points += [(miny, 180.0), (miny, -180.0), (0.0, 0.0)]
    return points


@pytest.mark.django_db
@PROPERTY
@given(shapes=st.lists(areas(), min_size=1, max_size=3), seed=st.integers(0, 10**6), indexed=st.booleans())
def test_indexed_lookup_equals_postgis(make_provider, shapes, seed, indexed):
    rng = random.Random(seed)
    client = redis_index.client()
    client.flushdb()
    redis_index.set_live_generation(1)
    with transaction.atomic():
        provider = make_provider()
        created = []
        for shape in shapes:
            data = {"provider": provider, "name": "x", "price": rng.choice(["1.00", "2.00"]), "geometry": _geos(shape)}
            created.append(area_create(data=data))
        if indexed:
            report = index_areas([a.id for a in created])
            assert sorted(report.indexed) == sorted(a.id for a in created)
        for shape in shapes:
            for lat, lng in points_for(rng, shape, 15):
                expected = [r["id"] for r in areas_covering(lat=lat, lng=lng)]
                result = lookup(lat=lat, lng=lng)
                assert ids(result) == expected, (lat, lng, mapping(shape))
                assert result.body == lookup_exact(lat=lat, lng=lng).body
        transaction.set_rollback(True)


def _geos(shape):
    from django.contrib.gis.geos import GEOSGeometry

    return GEOSGeometry(memoryview(shape.wkb), srid=4326)


def redis_reads(client=None) -> int:
    """Round trips this process made to Redis on the request path (counted by core.redis, not by the server, which
    other runs share)."""
    from core.redis import round_trips

    return round_trips()


def geometry(value):
    from areas.serializers import AreaGeometryField

    return AreaGeometryField().to_internal_value(value)


def test_a_point_deep_inside_is_answered_by_one_redis_read_and_no_query(
    make_area, index_all, index_redis, django_assert_num_queries
):
    area = make_area(square(10.0, 50.0, 0.5), price="12.00")
    index_all()
    lookup(lat=50.01, lng=10.02)  # warms this process's cache of results
    calls = redis_reads(index_redis)
    with django_assert_num_queries(0):
        result = lookup(lat=50.01, lng=10.02)
    assert redis_reads(index_redis) - calls == 1
    assert ids(result) == [area.id]
    assert (result.source, result.exact_checks, result.postgres_queries) == ("index", 0, 0)


def test_a_point_near_the_outline_costs_at_most_one_query(make_area, index_all, django_assert_max_num_queries):
    area = make_area(square(10.0, 50.0, 0.5))
    index_all()
    for lng in (10.5, 10.4999999, 10.5000001, 10.49, 10.51):  # on, just inside, just outside the east edge
        with django_assert_max_num_queries(1):
            result = lookup(lat=50.123, lng=lng)
        assert ids(result) == ([area.id] if lng <= 10.5 else []), lng
        assert result.body == lookup_exact(lat=50.123, lng=lng).body


def test_outlines_one_process_fetched_are_shared_with_the_others_through_redis(
    make_area, index_all, monkeypatch, django_assert_num_queries
):

    area = make_area(square(10.0, 50.0, 0.5))
    index_all()
    first = lookup(lat=50.3, lng=10.49999)  # near the east edge: an exact check, outline fetched from PostgreSQL
    assert (first.exact_checks, first.postgres_queries, ids(first)) == (1, 1, [area.id])
    # Another web process: empty caches of its own, but the outline is in Redis now.
    monkeypatch.setattr(caches, "results", caches.Results())
    monkeypatch.setattr(caches, "shapes", caches.Shapes())
    with django_assert_num_queries(0):
        second = lookup(lat=50.3, lng=10.499995)
    assert (second.exact_checks, second.postgres_queries, ids(second)) == (1, 0, [area.id])
    with django_assert_num_queries(0):
        outside = lookup(lat=50.3, lng=10.500005)
    assert ids(outside) == []


def test_swapped_coordinates_find_nothing(make_area, index_all):
    area = make_area(square(10.0, 50.0, 0.5))
    index_all()
    assert ids(lookup(lat=50.0, lng=10.0)) == [area.id]
    assert ids(lookup(lat=10.0, lng=50.0)) == []


def test_a_changed_price_is_shown_at_once_and_after_the_refresh(make_area, index_all):
    area = make_area(square(10.0, 50.0, 0.5), price="12.00")
    index_all()
    assert b'"price":"12.00"' in lookup(lat=50.0, lng=10.0).body  # cached in this process now
    area_update(area=area, data={"price": "9.50"})
    pending = lookup(lat=50.0, lng=10.0)
    assert (pending.pending, b'"price":"9.50"' in pending.body) == (1, True)
    index_all()
    refreshed = lookup(lat=50.0, lng=10.0)
    assert (refreshed.pending, b'"price":"9.50"' in refreshed.body) == (0, True)


def test_a_moved_area_is_found_where_it_is_and_not_where_it_was(make_area, index_all):
    area = make_area(square(10.0, 50.0, 0.2))
    index_all()
    area_update(area=area, data={"geometry": geometry(square(20.0, 45.0, 0.2))})
    assert ids(lookup(lat=50.0, lng=10.0)) == []  # pending: its old records are not trusted
    assert ids(lookup(lat=45.0, lng=20.0)) == [area.id]
    index_all()
    assert ids(lookup(lat=50.0, lng=10.0)) == []
    assert ids(lookup(lat=45.0, lng=20.0)) == [area.id]


def test_many_pending_areas_at_a_point_are_answered_by_the_exact_query(make_provider, index_all):
    provider = make_provider()
    from areas.models import ServiceArea

    ServiceArea.objects.bulk_create(
        ServiceArea(provider=provider, name=f"a{i}", price="1.00", geometry=geometry(square(10.0, 50.0, 0.1)))
        for i in range(MAX_PENDING_CHECKS + 1)
    )
    from hexindex.invalidation import areas_changed

    with transaction.atomic():
        areas_changed(list(ServiceArea.objects.values_list("id", flat=True)), enqueue_builds=False)
    result = lookup(lat=50.0, lng=10.0)
    assert (result.source, result.count) == ("postgis", MAX_PENDING_CHECKS + 1)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), data=st.data())
def test_in_process_exact_checks_agree_with_geos_away_from_the_outline(seed, data):
    """The crossing-number check on cached outline segments, with holes and several parts."""
    from hexindex.outlines import covered_or_unsure, outline_segments

    rng = random.Random(seed)
    shapes = [MultiPolygon([star(rng, 10.0, 50.0, 0.2, 24, True), star(rng, 10.6, 50.0, 0.1, 8, False)])]
    shapes.append(MultiPolygon([box(-0.5, -0.5, 0.5, 0.5)]))
    segments = [outline_segments(shape) for shape in shapes]
    for _ in range(30):
        lng, lat = data.draw(st.floats(-1, 11)), data.draw(st.floats(-1, 51))
        inside, unsure = covered_or_unsure(lng, lat, segments)
        for shape, is_inside, is_unsure in zip(shapes, inside, unsure, strict=True):
            from shapely.geometry import Point

            point = Point(lng, lat)
            assert is_unsure == (shape.boundary.distance(point) <= 1e-9)
            if not is_unsure:
                assert is_inside == shape.covers(point)


def test_points_on_an_edge_or_a_vertex_are_left_to_postgis():
    from hexindex.outlines import covered_or_unsure, outline_segments

    square_segments = [outline_segments(MultiPolygon([box(0, 0, 1, 1)]))]
    for lng, lat in ((1.0, 0.5), (0.0, 0.0), (0.5, 1.0 + 1e-10)):
        assert covered_or_unsure(lng, lat, square_segments)[1].tolist() == [True]
    assert covered_or_unsure(0.5, 0.5, square_segments)[0].tolist() == [True]


def test_an_unresponsive_redis_opens_the_circuit_and_lookups_go_straight_to_postgis(
    make_area, index_all, settings, api, client_for, make_user
):
    import socket
    import time

    area = make_area(square(10.0, 50.0, 0.5))
    index_all()
    silent = socket.socket()  # accepts connections (the kernel does) and never answers: packets "dropped"
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    live_url = settings.HEXINDEX_REDIS_URL
    settings.HEXINDEX_REDIS_URL = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
    settings.HEXINDEX_LOOKUP_TIMEOUT = 0.2
    settings.HEXINDEX_BREAKER_SECONDS = 0.5
    try:
        started = time.perf_counter()
        first = lookup(lat=50.0, lng=10.0)
        first_seconds = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(5):
            later = lookup(lat=50.0, lng=10.0)
        later_seconds = (time.perf_counter() - started) / 5
        assert (first.source, ids(first), later.source, ids(later)) == ("postgis", [area.id], "postgis", [area.id])
        assert first_seconds < 1.0 and later_seconds < 0.1  # one timeout, then none
        assert breaker.state == "open"
        # Writes are refused at once with a 503 naming Redis, not after a timeout each.
        owner = area.provider.owner
        response = client_for(owner).patch(
            f"/api/v1/service-areas/{area.id}/", {"type": "Feature", "properties": {"price": "1"}}, format="json"
        )
        assert response.status_code == 503 and response.json()["service"] == "redis"
    finally:
        settings.HEXINDEX_REDIS_URL = live_url
        silent.close()
    time.sleep(0.6)
    assert lookup(lat=50.0, lng=10.0).source == "index"  # the trial after the pause closes the circuit again
    assert breaker.state == "closed"
