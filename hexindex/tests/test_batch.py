"""lookup_many: many points in one Redis read and at most one PostgreSQL query, each answer byte-identical to the
exact query's."""

import random

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import given
from hypothesis import strategies as st

from areas.models import ServiceArea
from areas.services import area_create
from core.redis import breaker
from hexindex import caches, redis_index
from hexindex.batch import lookup_exact_many, lookup_many
from hexindex.build import index_areas
from hexindex.exact import lookup_exact
from hexindex.invalidation import areas_changed
from hexindex.selectors import MAX_PENDING_CHECKS
from testing.areas import PROPERTY, areas, points_for, to_geos
from testing.geo import multipolygon, polygon, square
from testing.index import geometry, ids
from testing.net import closed_port


def forget_everything_seen(monkeypatch):
    """As a fresh web process: no cached results or outlines (so exact checks need PostgreSQL or shared ones)."""
    monkeypatch.setattr(caches, "results", caches.Results())
    monkeypatch.setattr(caches, "shapes", caches.Shapes())


@pytest.mark.django_db
@PROPERTY
@given(shapes=st.lists(areas(), min_size=1, max_size=3), seed=st.integers(0, 10**6), indexed=st.booleans())
def test_a_batch_equals_the_exact_query_at_every_point(make_provider, shapes, seed, indexed):
    rng = random.Random(seed)
    client = redis_index.client()
    client.flushdb()
    redis_index.set_live_generation(1)
    caches.results.use_generation(-1)  # nothing remembered from other examples
    caches.shapes.use_generation(-1)
    with transaction.atomic():
        provider = make_provider()
        created = [
            area_create(
                data={"provider": provider, "name": "x", "price": rng.choice(["1.00", "2.00"]), "geometry": to_geos(s)}
            )
            for s in shapes
        ]
        if indexed:
            index_areas([a.id for a in created])
        points = [point for shape in shapes for point in points_for(rng, shape, 15)]
        with CaptureQueriesContext(connection) as queries:
            answers = lookup_many(points)
        assert len(queries) <= 1
        assert [a.body for a in answers] == [lookup_exact(lat=lat, lng=lng).body for lat, lng in points]
        transaction.set_rollback(True)


@pytest.fixture
def town(make_area, make_provider, index_all):
    """Nested, overlapping and holed areas, a MultiPolygon, one tiny area and one huge one; asymmetric coordinates."""
    cheap, dear = make_provider(), make_provider()
    made = [
        make_area(square(-73.78, 40.64, 0.05), provider=cheap, price="45.00"),
        make_area(square(-73.85, 40.70, 0.30), provider=dear, price="60.00"),
        make_area(
            polygon(
                [(-74.1, 40.5), (-73.6, 40.5), (-73.6, 40.9), (-74.1, 40.9)],
                [(-73.9, 40.6), (-73.7, 40.6), (-73.7, 40.8), (-73.9, 40.8)],
            ),
            provider=cheap,
            price="50.00",
        ),
        make_area(multipolygon(square(151.2, -33.9, 0.2), square(-0.45, 51.47, 0.1)), provider=dear, price="20.00"),
        make_area(square(-73.7781, 40.6413, 0.0001), provider=cheap, price="5.00"),
        make_area(square(0.0, 0.0, 60.0), provider=dear, price="99.00"),
    ]
    index_all()
    return made


def grid(count: int) -> list[tuple[float, float]]:
    rng = random.Random(7)
    points = [(40.6413, -73.7781), (-73.7781, 40.6413), (0.0, 0.0), (-33.9, 151.2), (51.47, -0.45), (40.64, -73.73)]
    points += [(40.5, -74.1), (40.6, -73.8), (40.9, -73.6)]  # on outlines: corners and edges
    while len(points) < count:
        points.append((rng.uniform(40.4, 41.0), rng.uniform(-74.2, -73.5)))
    return points[:count]


def test_a_cold_batch_of_100_costs_two_redis_reads_and_one_query(town, index_round_trips, monkeypatch):
    lookup_many([(0.0, 0.0)])  # this thread's connection to Redis is open, and the live generation known
    forget_everything_seen(monkeypatch)
    points = grid(100)
    index_round_trips.reset()
    with CaptureQueriesContext(connection) as queries:
        answers = lookup_many(points)
    assert len(queries) == 1  # the outlines nobody has fetched yet, for every point at once
    # Two reads (the points; then results and outlines not seen yet), and the outlines PostgreSQL gave shared with
    # the other processes.
    assert index_round_trips.first_commands == ["MULTI", "MULTI", "EVALSHA"], index_round_trips.sent
    assert [a.body for a in answers] == [lookup_exact(lat=lat, lng=lng).body for lat, lng in points]
    assert {a.source for a in answers} == {"index"}
    assert sum(a.exact_checks for a in answers) > 0


def test_a_warm_batch_costs_one_redis_read_and_no_query(town, index_round_trips):
    on_outlines = ((40.64, -73.73), (40.5, -74.1), (40.6, -73.8), (40.9, -73.6))  # only PostGIS decides those
    points = [p for p in grid(100) if p not in on_outlines]
    lookup_many(points)  # outlines and results seen once
    index_round_trips.reset()
    with CaptureQueriesContext(connection) as queries:
        answers = lookup_many(points)
    assert len(queries) == 0 and index_round_trips.count == 1, index_round_trips.sent
    assert [a.body for a in answers] == [lookup_exact(lat=lat, lng=lng).body for lat, lng in points]


def test_points_on_an_outline_are_decided_by_postgis_in_the_same_query(town, index_redis):
    on_outline = [(40.5, -74.1), (40.6, -73.8), (40.9, -73.6), (40.69, -73.55)]  # corner, hole edge, corner, edge
    lookup_many(on_outline)
    with CaptureQueriesContext(connection) as queries:
        answers = lookup_many(on_outline)
    assert len(queries) <= 1
    assert [a.body for a in answers] == [lookup_exact(lat=lat, lng=lng).body for lat, lng in on_outline]
    assert town[2].id in ids(answers[0]) and town[2].id in ids(answers[1])


def test_pending_areas_and_a_crowded_point_are_answered_in_the_same_single_query(make_provider, town, index_redis):
    provider = make_provider()
    crowd = ServiceArea.objects.bulk_create(
        ServiceArea(provider=provider, name=f"c{i}", price="1.00", geometry=geometry(square(10.0, 50.0, 0.1)))
        for i in range(MAX_PENDING_CHECKS + 1)
    )
    edited = town[0]
    ServiceArea.objects.filter(id=edited.id).update(price="1.50")
    with transaction.atomic():
        areas_changed([a.id for a in crowd] + [edited.id], enqueue_builds=False)
    points = [(50.0, 10.0), (40.6413, -73.7781), (40.70, -73.85), (0.0, 0.0)]
    with CaptureQueriesContext(connection) as queries:
        answers = lookup_many(points)
    assert len(queries) == 1
    assert answers[0].source == "postgis" and answers[0].count == MAX_PENDING_CHECKS + 2  # and the huge area
    assert [a.body for a in answers] == [lookup_exact(lat=lat, lng=lng).body for lat, lng in points]
    assert b'"price":"1.50"' in answers[1].body


def test_without_redis_a_batch_is_one_exact_query(town, settings):
    settings.HEXINDEX_REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"  # refused
    try:
        points = grid(30)
        with CaptureQueriesContext(connection) as queries:
            answers = lookup_many(points)
        assert len(queries) == 1 and {a.source for a in answers} == {"postgis"}
        assert [a.body for a in answers] == [lookup_exact(lat=lat, lng=lng).body for lat, lng in points]
    finally:
        breaker.succeeded()


def test_the_exact_batch_answers_each_point_in_order(town):
    points = grid(20)
    assert [a.body for a in lookup_exact_many(points)] == [lookup_exact(lat=lat, lng=lng).body for lat, lng in points]
    assert lookup_many([]) == []
