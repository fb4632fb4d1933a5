"""Exact checks on a read replica (settings.DATABASE_REPLICAS): used only where the replica holds the versions the
index's records were built from, asked of the primary otherwise, and never cached from a lagging replica.

The lagging replica here is real PostgreSQL: a copy of the test database taken before an edit (CREATE DATABASE ...
TEMPLATE), i.e. a standby that has not replayed the edit yet. The scale-out stack (ops/scale) runs the same
against a streaming standby held back with recovery_min_apply_delay."""

import contextlib
import types

import orjson
import psycopg2
import pytest
from django.db import connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test.utils import CaptureQueriesContext

from areas.services import area_update
from core import db
from hexindex import caches
from hexindex.batch import lookup_many
from hexindex.exact import lookup_exact
from hexindex.selectors import lookup
from testing.geo import polygon, square
from testing.index import geometry
from testing.net import closed_port

pytestmark = pytest.mark.django_db(transaction=True)

REPLICA = "lagging_replica"


def ids(result) -> list[int]:
    return [item["id"] for item in orjson.loads(result.body)["results"]]


def _admin_connection():
    params = connection.get_connection_params()
    params["dbname"] = "postgres"
    admin = psycopg2.connect(**params)
    admin.autocommit = True
    return admin


def add_replica(settings_dict: dict, settings) -> None:
    """A database alias the test adds while it runs, read by lookups as their replica. Django's test case only lets
    the databases it was set up with connect; this one is exempted, being the test's own."""
    connections.settings[REPLICA] = settings_dict
    replica = connections[REPLICA]
    patched = BaseDatabaseWrapper.ensure_connection
    real = next(
        (
            cell.cell_contents
            for cell in patched.__closure__ or ()
            if getattr(cell.cell_contents, "__name__", "") == "ensure_connection"
        ),
        patched,
    )
    replica.ensure_connection = types.MethodType(real, replica)
    settings.DATABASE_REPLICAS = [REPLICA]


@pytest.fixture
def replica_snapshot(settings):
    """Takes a snapshot of the test database now; from then on lookups read it as their replica."""
    name = f"{connection.settings_dict['NAME']}_replica"
    created = []

    def take() -> None:
        connections.close_all()  # a database can be copied only while nobody is connected to it
        admin = _admin_connection()
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
            cursor.execute(f'CREATE DATABASE "{name}" TEMPLATE "{connection.settings_dict["NAME"]}"')
        admin.close()
        add_replica({**connections.settings["default"], "NAME": name, "TEST": {}}, settings)
        created.append(name)

    yield take
    if REPLICA in connections.settings:
        connections[REPLICA].close()
        del connections[REPLICA]
        connections.settings.pop(REPLICA)
    db.replicas.failed_at.clear()
    if created:
        admin = _admin_connection()
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextlib.contextmanager
def confirms(alias: str):
    """The exact-check queries sent to one database meanwhile."""
    with CaptureQueriesContext(connections[alias]) as captured:
        found: list[str] = []
        yield found
    found += [q["sql"] for q in captured.captured_queries if "hexindex_confirm" in q["sql"] and "EXECUTE" in q["sql"]]


@pytest.fixture
def fresh_process(monkeypatch):
    """Forget what this process cached (results, outlines), as a newly started web process would."""

    def forget() -> None:
        monkeypatch.setattr(caches, "results", caches.Results())
        monkeypatch.setattr(caches, "shapes", caches.Shapes())

    return forget


def test_checks_go_to_an_up_to_date_replica_with_nothing_asked_of_the_primary(
    make_area, index_all, replica_snapshot, fresh_process
):
    area = make_area(square(10.0, 50.0, 0.5))
    index_all()
    replica_snapshot()
    fresh_process()
    with confirms(REPLICA) as on_replica, confirms("default") as on_primary:
        result = lookup(lat=50.3, lng=10.49999)  # near the east edge: an exact check, in PostgreSQL
    assert (ids(result), result.exact_checks, result.postgres_queries) == ([area.id], 1, 1)
    assert (len(on_replica), len(on_primary)) == (1, 0)


def test_a_replica_behind_an_edit_is_not_believed_the_primary_answers(
    make_area, index_all, replica_snapshot, fresh_process, index_redis
):
    area = make_area(square(10.0, 50.0, 0.5))
    index_all()
    replica_snapshot()  # the replica holds the area as it was: 9.5..10.5 east-west
    area_update(area=area, data={"geometry": geometry(square(10.3, 50.0, 0.5))})  # now 9.8..10.8
    index_all()  # live again in Redis, at its new version
    fresh_process()
    with confirms(REPLICA) as on_replica, confirms("default") as on_primary:
        result = lookup(lat=50.3, lng=10.79999)  # near the new east edge, outside the old area
    assert ids(result) == [area.id]
    # The replica's row was of the old version: asked again of the primary.
    assert (len(on_replica), len(on_primary), result.postgres_queries) == (1, 1, 2)
    # What this process (and, through Redis, the others) keeps is the primary's outline, not the replica's.
    for lng, inside in ((10.79998, True), (10.80001, False), (9.79999, False), (9.80001, True), (10.6, True)):
        result = lookup(lat=50.3, lng=lng)
        assert ids(result) == ([area.id] if inside else []), lng
        assert result.body == lookup_exact(lat=50.3, lng=lng).body


def test_a_replica_row_of_an_older_version_at_the_same_cell_is_not_believed(
    make_area, index_all, replica_snapshot, fresh_process
):
    area = make_area(square(10.0, 50.0, 0.5))
    index_all()
    replica_snapshot()
    # The east edge moves by 5 m: the same boundary cells, in the replica's copy of the index too.
    moved = polygon([(9.5, 49.5), (10.50005, 49.5), (10.50005, 50.5), (9.5, 50.5)])
    area_update(area=area, data={"geometry": geometry(moved)})
    index_all()
    fresh_process()
    with confirms(REPLICA) as on_replica, confirms("default") as on_primary:
        result = lookup(lat=50.3, lng=10.50003)  # inside now, outside in the replica's version
    assert ids(result) == [area.id]
    assert (len(on_replica), len(on_primary), result.postgres_queries) == (1, 1, 2)


def test_a_batch_does_not_believe_a_replica_row_of_an_older_version_either(
    make_area, index_all, replica_snapshot, fresh_process
):
    area = make_area(square(10.0, 50.0, 0.5))
    index_all()
    replica_snapshot()
    moved = polygon([(9.5, 49.5), (10.50005, 49.5), (10.50005, 50.5), (9.5, 50.5)])
    area_update(area=area, data={"geometry": geometry(moved)})
    index_all()
    fresh_process()
    results = lookup_many([(50.31, 10.50004), (50.31, 10.50006), (49.71, 10.50002)])
    assert [ids(result) for result in results] == [[area.id], [], [area.id]]
    assert [result.postgres_queries for result in results] == [2, 2, 2]  # the replica, then the primary


def test_a_batch_reads_the_replica_first_and_the_primary_where_it_lags(
    make_area, make_provider, index_all, replica_snapshot, fresh_process
):
    provider = make_provider()
    still = make_area(square(-60.0, -30.0, 0.5), provider=provider)  # unchanged since the snapshot
    moved = make_area(square(10.0, 50.0, 0.5), provider=provider)
    index_all()
    replica_snapshot()
    area_update(area=moved, data={"geometry": geometry(square(10.3, 50.0, 0.5))})
    index_all()
    fresh_process()
    points = [(-30.3, -59.50001), (50.3, 10.79999), (50.3, 10.80001), (50.3, 9.79999)]
    results = lookup_many(points)
    assert [ids(result) for result in results] == [[still.id], [moved.id], [], []]
    for (lat, lng), result in zip(points, results, strict=True):
        assert result.body == lookup_exact(lat=lat, lng=lng).body


def test_a_replica_that_cannot_be_reached_is_left_alone_and_the_primary_answers(
    make_area, index_all, settings, fresh_process
):
    area = make_area(square(10.0, 50.0, 0.5))
    index_all()
    add_replica(
        {**connections.settings["default"], "PORT": closed_port(), "OPTIONS": {"connect_timeout": 2}, "TEST": {}},
        settings,
    )
    try:
        fresh_process()
        result = lookup(lat=50.3, lng=10.49999)
        assert (ids(result), result.postgres_queries) == ([area.id], 1)
        assert db.replicas.alias() is None  # for DATABASE_REPLICA_RETRY_SECONDS
        settings.DATABASE_REPLICA_RETRY_SECONDS = 0
        assert db.replicas.alias() == REPLICA  # then tried again
    finally:
        connections[REPLICA].close()
        connections.settings.pop(REPLICA, None)
        del connections[REPLICA]
        db.replicas.failed_at.clear()
