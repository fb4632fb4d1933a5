"""The index on the Redis layouts it scales on, each a real set of redis-server processes (core.redis_servers):

- `cluster`: a Redis Cluster of 3 primaries with a replica each, as ElastiCache in cluster mode (and Serverless,
  which speaks only cluster mode) runs it; lookups read the primaries.
- `cluster-replica-reads`: the same, lookups reading the replicas.
- `replica-reads`: one primary with a replica behind HEXINDEX_REDIS_READER_URL (ElastiCache's reader endpoint).

Every answer must equal PostGIS's, on every layout; a write must be seen by the next lookup, wherever it reads;
no transaction or script may span hash slots (the cluster answers CROSSSLOT); a slot that moves while lookups run
is followed (MOVED).
"""

import random
import threading
import time

import h3.api.basic_int as h3
import orjson
import pytest
from redis.cluster import key_slot
from shapely.geometry import Point, Polygon, box

from areas.selectors import areas_covering
from areas.services import area_create, area_update
from core import redis_servers
from core.redis import breaker, round_trips
from hexindex import caches, codec, invalidation, redis_index
from hexindex.batch import lookup_many
from hexindex.cells import MAX_RES
from hexindex.exact import lookup_exact
from hexindex.maintenance import rebuild_redis
from hexindex.selectors import lookup
from testing.geo import multipolygon, polygon, square
from testing.index import geometry

pytestmark = pytest.mark.django_db

LAYOUTS = ["cluster", "cluster-replica-reads", "replica-reads"]
# Error replies that would mean a call was sent where it cannot run (other ERRs: redis-py's CLIENT SETINFO on
# connecting, which Redis 7.0 does not know).
CLUSTER_ERRORS = ("CROSSSLOT", "MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN", "EXECABORT", "WRONGTYPE", "NOSCRIPT")


@pytest.fixture(scope="session")
def redis_cluster():
    with redis_servers.cluster(primaries=3, replicas=1) as group:
        yield group


@pytest.fixture(scope="session")
def redis_with_replica():
    with redis_servers.with_replicas(1) as group:
        yield group


@pytest.fixture(params=LAYOUTS)
def layout(request, settings, monkeypatch):
    """The index (and the rate limits riding on its reads) on this layout, empty, generation 1."""
    name = request.param
    if name.startswith("cluster"):
        group = request.getfixturevalue("redis_cluster")
        settings.HEXINDEX_REDIS_URL = group.servers[0].url(0)
        settings.HEXINDEX_REDIS_CLUSTER = True
        settings.HEXINDEX_REDIS_READER_URL = ""
        settings.HEXINDEX_REDIS_REPLICA_READS = name == "cluster-replica-reads"
    else:
        group = request.getfixturevalue("redis_with_replica")
        settings.HEXINDEX_REDIS_URL = group.servers[0].url(0)
        settings.HEXINDEX_REDIS_CLUSTER = False
        settings.HEXINDEX_REDIS_READER_URL = group.servers[1].url(0)
        settings.HEXINDEX_REDIS_REPLICA_READS = True
    settings.HEXINDEX_REDIS_REPLICAS = 1
    settings.HEXINDEX_REDIS_WAIT_MS = 3000  # a shared, noisy machine: replicas may need a moment
    # A process that has seen no other layout: nothing cached from the test Redis the other tests use.
    monkeypatch.setattr(caches, "results", caches.Results())
    monkeypatch.setattr(caches, "shapes", caches.Shapes())
    client = redis_index.client()
    client.flushall()
    redis_index.set_live_generation(1)
    breaker.succeeded()
    primaries, replicas = redis_servers.primaries_and_replicas(group)
    yield Layout(name, group, primaries, replicas)
    client.flushall()


class Layout:
    def __init__(self, name, group, primaries, replicas):
        self.name, self.group, self.primaries, self.replicas = name, group, primaries, replicas

    def calls(self, servers, *commands) -> list[int]:
        return [redis_servers.command_calls(server, *commands) for server in servers]

    def errors(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for server in self.group.servers:
            for name, count in redis_servers.error_counts(server).items():
                found[name] = found.get(name, 0) + count
        return found


def ids(result) -> list[int]:
    return [item["id"] for item in orjson.loads(result.body)["results"]]


def covering(lat: float, lng: float) -> list[int]:
    return [row["id"] for row in areas_covering(lat=lat, lng=lng)]


def _ring(shape: Polygon) -> list:
    return list(shape.exterior.coords)[:-1]


# Areas in every hemisphere, of every size, so their cells fall in many buckets (and so on every primary):
# asymmetric squares (a lat/lng swap finds nothing), a hole, a MultiPolygon, one across the antimeridian, a tiny one
# and one a continent wide.
AREAS = {
    "berlin": square(13.4, 52.5, 0.3),
    "sao-paulo-with-hole": polygon(
        _ring(box(-46.9, -23.9, -46.3, -23.3)), _ring(Point(-46.6, -23.6).buffer(0.1, quad_segs=4))
    ),
    "sydney-two-parts": multipolygon(square(151.2, -33.9, 0.2), square(151.7, -33.4, 0.1)),
    "fiji-across-the-antimeridian": multipolygon(
        polygon([(179.5, -17.5), (180.0, -17.5), (180.0, -16.5), (179.5, -16.5)]),
        polygon([(-180.0, -17.5), (-179.6, -17.5), (-179.6, -16.5), (-180.0, -16.5)]),
    ),
    "a-kiosk-in-accra": square(-0.187, 5.603, 0.0004),
    "north-america": polygon([(-125.0, 25.0), (-66.0, 25.0), (-66.0, 49.0), (-125.0, 49.0)]),
    "gulf-of-guinea-at-zero": square(0.0, 0.0, 0.05),
}


@pytest.fixture
def world(make_provider, index_all):
    provider = make_provider()
    created = {
        name: area_create(
            data={"provider": provider, "name": name, "price": f"{10 + i}.00", "geometry": geometry(shape)}
        )
        for i, (name, shape) in enumerate(AREAS.items())
    }
    index_all()
    return created


def points_around(rng: random.Random, count_per_area: int) -> list[tuple[float, float]]:
    points = [(0.0, 0.0), (52.5, 13.4), (13.4, 52.5), (-17.0, 180.0), (-17.0, -180.0), (-23.6, -46.6)]
    for shape in AREAS.values():
        parts = [shape] if shape["type"] == "Polygon" else [polygon(*rings) for rings in shape["coordinates"]]
        for part in parts:
            minx, miny, maxx, maxy = Polygon(part["coordinates"][0]).bounds
            dx, dy = (maxx - minx) * 0.2 + 1e-4, (maxy - miny) * 0.2 + 1e-4
            points += [
                (rng.uniform(miny - dy, maxy + dy), rng.uniform(max(-180, minx - dx), min(180, maxx + dx)))
                for _ in range(count_per_area)
            ]
            points += [(y, x) for x, y in part["coordinates"][0][:4]]  # on vertices: on the boundary is inside
    return points


def test_every_answer_equals_postgis_and_no_call_spans_hash_slots(layout, world):
    errors_before = layout.errors()
    points = points_around(random.Random(7), 25)
    for lat, lng in points:
        result = lookup(lat=lat, lng=lng)
        assert ids(result) == covering(lat, lng), (layout.name, lat, lng)
        assert result.body == lookup_exact(lat=lat, lng=lng).body
        assert result.source == "index"
    batch = lookup_many(points)
    assert [ids(result) for result in batch] == [covering(lat, lng) for lat, lng in points]
    errors = {name: count - errors_before.get(name, 0) for name, count in layout.errors().items()}
    assert {name: errors.get(name, 0) for name in CLUSTER_ERRORS} == dict.fromkeys(CLUSTER_ERRORS, 0)
    assert breaker.failures == 0


def test_lookups_read_where_the_layout_says(layout, world):
    read_commands = ("exec", "hmget", "evalsha")
    primaries_before = layout.calls(layout.primaries, *read_commands)
    replicas_before = layout.calls(layout.replicas, *read_commands)
    rng = random.Random(3)
    for lat, lng in points_around(rng, 20):
        lookup(lat=lat, lng=lng)
    on_primaries = [
        a - b for a, b in zip(layout.calls(layout.primaries, *read_commands), primaries_before, strict=True)
    ]
    on_replicas = [a - b for a, b in zip(layout.calls(layout.replicas, *read_commands), replicas_before, strict=True)]
    if layout.name == "cluster":
        assert sum(on_replicas) == 0
        assert sum(1 for calls in on_primaries if calls) == 3, on_primaries  # the buckets spread over all three
    else:
        assert sum(on_replicas) >= 0.9 * (sum(on_replicas) + sum(on_primaries)), (on_primaries, on_replicas)


def test_the_next_lookup_sees_a_committed_write_wherever_it_reads(layout, world):
    berlin = world["berlin"]
    lookup(lat=52.5, lng=13.4)  # cached in this process
    for n in range(20):
        price = f"{20 + n}.50"
        area_update(area=berlin, data={"price": price})
        body = orjson.loads(lookup(lat=52.5, lng=13.4).body)["results"]
        assert [(row["id"], row["price"]) for row in body] == [(berlin.id, price)], n
    moved = square(13.9, 52.5, 0.3)  # east by 0.5 degrees: a point in the west strip is no longer covered
    area_update(area=berlin, data={"geometry": geometry(moved)})
    assert ids(lookup(lat=52.5, lng=13.2)) == []
    assert ids(lookup(lat=52.5, lng=14.1)) == [berlin.id]


def test_a_write_the_replicas_do_not_acknowledge_is_refused_and_changes_nothing(layout, world, settings):
    if not layout.replicas or layout.name == "cluster":
        pytest.skip("lookups read the primaries: nothing to wait for")
    berlin = world["berlin"]
    berlin.refresh_from_db()
    price_before = berlin.price
    settings.HEXINDEX_REDIS_WAIT_MS = 300
    pause = [threading.Thread(target=replica.pause, args=(2.0,)) for replica in layout.replicas]
    for thread in pause:
        thread.start()
    time.sleep(0.2)  # the replicas are asleep: nothing replicates
    started = time.monotonic()
    with pytest.raises(invalidation.IndexUnavailable) as refused:
        area_update(area=berlin, data={"price": "99.00"})
    assert time.monotonic() - started < 1.5  # HEXINDEX_REDIS_WAIT_MS once per node, not the whole pause
    assert "replicas are behind" in str(refused.value)
    for thread in pause:
        thread.join()
    for primary in layout.primaries:
        primary.wait_replicated(1)
    berlin.refresh_from_db()
    assert berlin.price == price_before
    assert breaker.failures == 0  # Redis answered: lookups keep using it
    result = lookup(lat=52.5, lng=13.4)
    assert ids(result) == [berlin.id] and result.body == lookup_exact(lat=52.5, lng=13.4).body
    area_update(area=berlin, data={"price": "98.00"})  # the replicas are back: writes go through again
    assert orjson.loads(lookup(lat=52.5, lng=13.4).body)["results"][0]["price"] == "98.00"


def test_a_slot_moved_to_another_primary_while_lookups_run_is_followed(layout, world):
    if not layout.name.startswith("cluster"):
        pytest.skip("one server: no slots")
    lookup(lat=52.5, lng=13.4)
    chain = codec.chain(h3.latlng_to_cell(52.5, 13.4, MAX_RES))
    bucket = redis_index.bucket_of(codec.anchor_name(chain[codec.ANCHOR_RES]))
    source, target = redis_servers.move_slot(layout.group, key_slot(redis_index.bucket_tag(bucket).encode()))
    assert source.port != target.port
    trips = round_trips()
    for _ in range(3):
        result = lookup(lat=52.5, lng=13.4)
        assert ids(result) == [world["berlin"].id]
        assert result.source == "index"
    assert round_trips() - trips <= 4  # one MOVED, then the new slot map
    assert breaker.failures == 0


@pytest.mark.django_db(transaction=True)  # the lookups run in a thread of their own, with its own connection
def test_a_rebuild_on_the_cluster_answers_exactly_meanwhile_and_after(layout, world):
    if layout.name != "cluster":
        pytest.skip("one cluster layout is enough")
    points = points_around(random.Random(11), 5)
    done = threading.Event()
    wrong: list = []

    def look_meanwhile():
        from django.db import connection

        try:
            while not done.is_set():
                for lat, lng in points:
                    if ids(lookup(lat=lat, lng=lng)) != covering(lat, lng):
                        wrong.append((lat, lng))
        finally:
            connection.close()

    report = None
    looker = threading.Thread(target=look_meanwhile)
    looker.start()
    try:
        report = rebuild_redis()
    finally:
        done.set()
        looker.join()
    assert report is not None and report.live == len(AREAS)
    assert wrong == []
    for lat, lng in points:
        assert ids(lookup(lat=lat, lng=lng)) == covering(lat, lng)
