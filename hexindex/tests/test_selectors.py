"""The indexed lookup against the exact PostGIS answer, on random areas and points (hypothesis)."""

import random
from collections import Counter

import pytest
from django.db import transaction
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, box, mapping

from areas.selectors import areas_covering
from areas.services import area_create, area_update
from core.redis import breaker
from hexindex import caches, redis_index
from hexindex.build import index_areas
from hexindex.exact import lookup_exact
from hexindex.selectors import MAX_PENDING_CHECKS, lookup
from testing.areas import PROPERTY, areas, points_for, star, to_geos
from testing.clock import LaterClock
from testing.geo import square
from testing.index import geometry, ids
from testing.net import SilentServer


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
            price = rng.choice(["1.00", "2.00"])
            created.append(
                area_create(data={"provider": provider, "name": "x", "price": price, "geometry": to_geos(shape)})
            )
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


def test_a_point_deep_inside_is_answered_by_one_redis_read_and_no_query(
    make_area, index_all, index_round_trips, django_assert_num_queries
):
    area = make_area(square(10.0, 50.0, 0.5), price="12.00")
    index_all()
    lookup(lat=50.01, lng=10.02)  # warms this process's cache of results
    index_round_trips.reset()
    with django_assert_num_queries(0):
        result = lookup(lat=50.01, lng=10.02)
    assert index_round_trips.count == 1, index_round_trips.sent
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


def test_in_process_exact_checks_agree_with_geos_inside_outside_and_near_the_outline():
    """The crossing-number check on cached outline segments, with holes and several parts: points are drawn where
    the shapes are (inside, on and near the outline, just outside, anywhere around), and the test requires that it
    saw each verdict for each shape: settled inside, settled outside, settled though close to the outline, and
    left to PostGIS (within EXACT_CHECK_MARGIN)."""
    from shapely.geometry import Point

    from hexindex.cells import EXACT_CHECK_MARGIN
    from hexindex.outlines import covered_or_unsure, outline_segments

    seen = Counter()

    @settings(max_examples=60, deadline=None)
    @given(seed=st.integers(0, 10**6), data=st.data())
    def check(seed, data):
        rng = random.Random(seed)
        shapes = [MultiPolygon([star(rng, 10.0, 50.0, 0.2, 24, True), star(rng, 10.6, 50.0, 0.1, 8, False)])]
        shapes.append(MultiPolygon([box(-0.5, -0.5, 0.5, 0.5)]))
        segments = [outline_segments(shape) for shape in shapes]
        for _ in range(30):
            subject = data.draw(st.sampled_from(range(len(shapes))))
            lng, lat = _point_where(data, rng, shapes[subject], data.draw(st.sampled_from(WHERE)))
            inside, unsure = covered_or_unsure(lng, lat, segments)
            point = Point(lng, lat)
            for n, (shape, is_inside, is_unsure) in enumerate(zip(shapes, inside, unsure, strict=True)):
                distance = shape.boundary.distance(point)
                if abs(distance - EXACT_CHECK_MARGIN) > 1e-12:  # at the margin itself, either answer is right
                    assert is_unsure == (distance <= EXACT_CHECK_MARGIN), (n, lng, lat, distance)
                if not is_unsure:
                    assert is_inside == shape.covers(point), (n, lng, lat)
                if n == subject:
                    near = "near, " if distance < 1e-6 else ""
                    seen[n, "unsure" if is_unsure else near + ("inside" if is_inside else "outside")] += 1

    check()
    for n in (0, 1):
        for verdict in ("inside", "outside", "near, inside", "near, outside", "unsure"):
            assert seen[n, verdict] > 0, (n, verdict, seen)


WHERE = ["outline", "inside", "around", "anywhere"]


def _point_where(data, rng, shape, where) -> tuple[float, float]:
    """(lng, lat) of a point of the kind asked for: on the outline moved by up to a scale from nothing to a
    kilometre ("outline"), covered by the shape ("inside"), in its bounding box grown by half ("around"), or
    anywhere in the box of both test shapes ("anywhere")."""
    minx, miny, maxx, maxy = shape.bounds
    if where == "outline":
        along = shape.boundary.interpolate(data.draw(st.floats(0, 1)), normalized=True)
        scale = data.draw(st.sampled_from([0.0, 1e-10, 5e-10, 2e-9, 1e-8, 1e-7, 1e-5, 1e-3, 1e-2]))
        return along.x + data.draw(st.floats(-1, 1)) * scale, along.y + data.draw(st.floats(-1, 1)) * scale
    if where == "inside":
        from shapely.geometry import Point

        while True:  # the shapes fill a good part of their bounding box: a few tries at most
            lng, lat = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
            if shape.covers(Point(lng, lat)):
                return lng, lat
    if where == "around":
        dx, dy = (maxx - minx) / 2, (maxy - miny) / 2
        return rng.uniform(minx - dx, maxx + dx), rng.uniform(miny - dy, maxy + dy)
    return data.draw(st.floats(-1, 11)), data.draw(st.floats(-1, 51))


def test_points_on_an_edge_or_a_vertex_are_left_to_postgis():
    from hexindex.outlines import covered_or_unsure, outline_segments

    square_segments = [outline_segments(MultiPolygon([box(0, 0, 1, 1)]))]
    for lng, lat in ((1.0, 0.5), (0.0, 0.0), (0.5, 1.0 + 1e-10)):
        assert covered_or_unsure(lng, lat, square_segments)[1].tolist() == [True]
    assert covered_or_unsure(0.5, 0.5, square_segments)[0].tolist() == [True]


def test_an_unresponsive_redis_opens_the_circuit_and_lookups_go_straight_to_postgis(
    make_area, index_all, settings, client_for, monkeypatch
):
    import time

    from core import redis as core_redis

    area = make_area(square(10.0, 50.0, 0.5))
    index_all()
    live_url = settings.HEXINDEX_REDIS_URL
    settings.HEXINDEX_LOOKUP_TIMEOUT = 0.2
    settings.REDIS_SOCKET_TIMEOUT = 30.0  # what any other Redis client of the process would wait
    settings.HEXINDEX_BREAKER_SECONDS = 60.0  # open for the whole test, however slow the machine
    with SilentServer() as silent:  # accepts connections and never answers: packets "dropped"
        settings.HEXINDEX_REDIS_URL = silent.url()
        try:
            started = time.monotonic()
            first = lookup(lat=50.0, lng=10.0)
            first_seconds = time.monotonic() - started
            later = [lookup(lat=50.0, lng=10.0) for _ in range(5)]
            assert (first.source, ids(first)) == ("postgis", [area.id])
            assert [(r.source, ids(r)) for r in later] == [("postgis", [area.id])] * 5
            # One connection, so one timeout: the later lookups did not try Redis at all.
            assert silent.connections() == 1
            assert breaker.state == "open"
            # The lookup's own timeout (0.2 s) applied, not another client's (30 s): a time bound is the behaviour
            # here, so this one is generous (a loaded machine), yet far below the other.
            assert first_seconds < 10.0, first_seconds
            # Writes are refused at once with a 503 naming Redis, without trying it either.
            owner = area.provider.owner
            response = client_for(owner).patch(
                f"/api/v1/service-areas/{area.id}/", {"type": "Feature", "properties": {"price": "1"}}, format="json"
            )
            assert response.status_code == 503 and response.json()["service"] == "redis"
            assert silent.connections() == 1
        finally:
            settings.HEXINDEX_REDIS_URL = live_url
    monkeypatch.setattr(core_redis, "time", LaterClock(61.0))  # the pause has passed
    assert breaker.state == "half-open"
    assert lookup(lat=50.0, lng=10.0).source == "index"  # the trial after the pause closes the circuit again
    assert breaker.state == "closed"
