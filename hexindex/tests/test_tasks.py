"""Index builds as the worker runs them: queued after commit, versioned, idempotent, crash-safe; the sweep and
the Redis rebuild. Tasks run in-process here (eager); test_worker.py runs a real worker."""

import socket
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from redis.exceptions import ConnectionError as RedisConnectionError

from areas.models import ServiceArea
from areas.serializers import AreaGeometryField
from areas.services import area_create, area_update
from conftest import feature, square
from hexindex import cells, store
from hexindex.models import AreaCell, AreaIndex
from hexindex.services import INDEX_UNAVAILABLE, complete, index_areas, prepare, rebuild_redis, sweep
from hexindex.tasks import index_area

WEST = square(10.0, 50.0, 0.2)
EAST = square(12.0, 50.0, 0.2)


def geometry(value):
    return AreaGeometryField().to_internal_value(value)


def redis_snapshot(client) -> dict:
    return {key: client.smembers(key) for key in client.scan_iter("hx:*:[ib]:*")}


def members_of(client, area_id) -> set:
    found = set()
    for key, values in redis_snapshot(client).items():
        if any(store.split_member(int(v))[0] == area_id for v in values):
            found.add(key.decode())
    return found


def cell_rows(area_id) -> set:
    return set(AreaCell.objects.filter(area_id=area_id).values_list("cell", "boundary"))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_build_is_queued_only_after_commit(client_for, make_provider, django_capture_on_commit_callbacks):
    provider = make_provider()
    api = client_for(provider.owner)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api.post(
            "/api/v1/service-areas/", feature(WEST, provider=provider.id, name="W", price="1"), format="json"
        )
        area = ServiceArea.objects.get(pk=response.json()["id"])
        assert response.json()["properties"]["index"]["status"] == "pending"
        assert area.indexed_version is None and not cell_rows(area.id)
    assert len(callbacks) == 1

    for callback in callbacks:
        callback()  # the commit happens: the (eager) task runs
    area.refresh_from_db()
    assert area.is_indexed
    assert cell_rows(area.id)


def test_a_rolled_back_write_queues_nothing(make_provider, django_capture_on_commit_callbacks):
    provider = make_provider()
    with django_capture_on_commit_callbacks(execute=True) as callbacks, transaction.atomic():
        area_create(data={"provider": provider, "name": "x", "price": "1", "geometry": geometry(WEST)})
        transaction.set_rollback(True)
    assert callbacks == []
    assert not ServiceArea.objects.exists()


def test_stale_version_is_a_no_op(make_area, index_redis):
    area = make_area(WEST)
    index_area(area.id, 1)
    rows_v1, redis_v1 = cell_rows(area.id), redis_snapshot(index_redis)
    area_update(area=area, data={"geometry": geometry(EAST)})
    assert area.geometry_version == 2

    assert index_area(area.id, 1).startswith("skipped")
    area.refresh_from_db()
    assert (area.indexed_version, area.geometry_version) == (1, 2)
    assert cell_rows(area.id) == rows_v1
    assert redis_snapshot(index_redis) == redis_v1

    assert index_area(area.id, 2).startswith("indexed")
    area.refresh_from_db()
    assert area.is_indexed
    assert cell_rows(area.id) != rows_v1


def test_running_twice_leaves_the_same_result(make_area, index_redis):
    area = make_area(WEST)
    assert index_area(area.id, 1).startswith("indexed")
    rows, members = cell_rows(area.id), redis_snapshot(index_redis)
    assert index_area(area.id, 1).startswith("skipped")
    index_areas([area.id], force=True)
    assert cell_rows(area.id) == rows
    assert redis_snapshot(index_redis) == members


def test_a_crash_mid_build_leaves_lookups_correct(make_area, settings, api, index_redis):
    area = make_area(WEST)
    index_area(area.id, 1)
    area_update(area=area, data={"geometry": geometry(EAST)})

    # Redis goes away after the cell table was rewritten: the build fails and will be retried.
    real_redis = settings.HEXINDEX_REDIS_URL
    settings.HEXINDEX_REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    with pytest.raises(RedisConnectionError):
        index_areas([area.id], versions={area.id: 2})
    settings.HEXINDEX_REDIS_URL = real_redis  # back, still holding the old geometry's cells

    area.refresh_from_db()
    assert not area.is_indexed

    def found(lat, lng):
        return [r["id"] for r in api.get("/api/v1/lookup/", {"lat": lat, "lng": lng}).json()["results"]]

    assert found(50.0, 12.0) == [area.id]  # the new geometry, checked directly
    assert found(50.0, 10.0) == []  # the old one, still in Redis, is not trusted

    assert index_areas([area.id], versions={area.id: 2}).indexed == [area.id]
    assert (found(50.0, 12.0), found(50.0, 10.0)) == ([area.id], [])


def test_delete_removes_the_area_from_the_index(client_for, make_area, index_redis, django_capture_on_commit_callbacks):
    area = make_area(WEST)
    index_area(area.id, 1)
    assert members_of(index_redis, area.id)
    with django_capture_on_commit_callbacks(execute=True):
        assert client_for(area.provider.owner).delete(f"/api/v1/service-areas/{area.id}/").status_code == 204
    assert not cell_rows(area.id)
    assert members_of(index_redis, area.id) == set()
    assert not AreaIndex.objects.filter(area_id=area.id).exists()


def test_a_failed_build_is_shown_and_retried_by_the_sweep(make_area, monkeypatch, client_for, api):
    area = make_area(WEST)

    def refuse(geometry):
        raise cells.CoverError("too many cells")

    monkeypatch.setattr(cells, "cover", refuse)
    assert index_area(area.id, 1).startswith("failed")
    owner = client_for(area.provider.owner)
    state = owner.get(f"/api/v1/service-areas/{area.id}/").json()["properties"]["index"]
    assert state["status"] == "failed"
    assert "too many cells" in state["error"]
    # Still found: areas not live in the index are checked directly.
    assert api.get("/api/v1/lookup/", {"lat": 50, "lng": 10}).json()["count"] == 1

    monkeypatch.undo()
    assert sweep()["reenqueued"] == 0  # failed just now: not yet
    AreaIndex.objects.filter(area_id=area.id).update(enqueued_at=timezone.now() - timedelta(minutes=11))
    assert sweep()["reenqueued"] == 1  # runs the build (eager)
    state = owner.get(f"/api/v1/service-areas/{area.id}/").json()["properties"]["index"]
    assert state["status"] == "ready"
    assert state["error"] is None
    assert state["boundary_cells"] > 0


def test_sweep_enqueues_areas_whose_build_was_lost(make_area):
    area = make_area(WEST)  # on_commit never ran here: as if the broker had been down
    assert sweep()["reenqueued"] == 0  # just scheduled: give the worker time
    AreaIndex.objects.filter(area_id=area.id).update(enqueued_at=timezone.now() - timedelta(minutes=3))
    assert sweep()["reenqueued"] == 1
    area.refresh_from_db()
    assert area.is_indexed


def test_sweep_rebuilds_an_empty_redis(make_area, index_redis):
    area = make_area(WEST)
    index_area(area.id, 1)
    index_redis.flushdb()
    assert store.candidates(50.0, 10.0, cells.point_cells(50.0, 10.0)) is None

    assert sweep()["rebuild_requested"] is True
    found = store.candidates(50.0, 10.0, cells.point_cells(50.0, 10.0))
    assert set(found.interior + found.boundary) == {area.id}


def test_rebuild_switches_to_a_new_generation_and_drops_the_old(make_area, index_redis):
    areas = [make_area(WEST), make_area(EAST)]
    index_areas([a.id for a in areas])
    before = {key.split(b":", 2)[2]: members for key, members in redis_snapshot(index_redis).items()}

    report = rebuild_redis()

    assert report.generation == int(index_redis.get(store.GEN_KEY)) != 1
    after = redis_snapshot(index_redis)
    assert all(key.startswith(f"hx:{report.generation}:".encode()) for key in after)
    assert {key.split(b":", 2)[2]: members for key, members in after.items()} == before
    assert report.members == sum(len(m) for m in before.values())


def test_builds_during_a_rebuild_reach_both_generations(make_area, index_redis):
    index_redis.set(store.BUILDING_KEY, 7)
    area = make_area(WEST)
    index_area(area.id, 1)
    generations = {key.split(":")[1] for key in members_of(index_redis, area.id)}
    assert generations == {"1", "7"}


def test_a_second_rebuild_waits_for_the_first(index_redis, db):
    index_redis.set(store.BUILDING_KEY, 9)
    assert rebuild_redis().generation is None


def test_provider_rename_and_price_change_show_in_the_lookup_at_once(make_area, client_for, api, index_all):
    area = make_area(WEST, price="20.00")
    other = make_area(WEST, price="30.00")
    index_all()

    def results():
        return api.get("/api/v1/lookup/", {"lat": 50, "lng": 10}).json()["results"]

    assert [r["id"] for r in results()] == [area.id, other.id]  # also caches the payloads
    owner = client_for(area.provider.owner)
    owner.patch(
        f"/api/v1/providers/{area.provider_id}/", {"name": "Renamed Shuttles", "currency": "EUR"}, format="json"
    )
    owner.patch(f"/api/v1/service-areas/{area.id}/", {"type": "Feature", "properties": {"price": "40"}}, format="json")

    first, second = results()
    assert (first["id"], second["id"]) == (other.id, area.id)
    assert second["provider"]["name"] == "Renamed Shuttles"
    assert (second["price"], second["currency"]) == ("40.00", "EUR")


@pytest.mark.parametrize("indexed_first", [True, False])
def test_read_your_writes_before_the_worker_runs(client_for, make_provider, api, index_all, indexed_first):
    provider = make_provider()
    owner = client_for(provider.owner)

    def found(lat, lng):
        return [r["id"] for r in api.get("/api/v1/lookup/", {"lat": lat, "lng": lng}).json()["results"]]

    area_id = owner.post(
        "/api/v1/service-areas/", feature(WEST, provider=provider.id, name="W", price="5"), format="json"
    ).json()["id"]
    assert found(50.0, 10.0) == [area_id]
    if indexed_first:
        index_all()

    owner.patch(f"/api/v1/service-areas/{area_id}/", {"type": "Feature", "geometry": EAST}, format="json")
    assert found(50.0, 12.0) == [area_id]
    assert found(50.0, 10.0) == []

    owner.delete(f"/api/v1/service-areas/{area_id}/")
    assert found(50.0, 12.0) == []


def test_feature_shows_index_state(make_area, client_for, index_all):
    area = make_area(WEST)
    owner = client_for(area.provider.owner)
    pending = owner.get(f"/api/v1/service-areas/{area.id}/").json()["properties"]["index"]
    assert pending == {
        "status": "pending",
        "resolution": None,
        "interior_cells": None,
        "boundary_cells": None,
        "indexed_at": None,
        "error": None,
    }
    index_all()
    ready = owner.get(f"/api/v1/service-areas/{area.id}/").json()["properties"]["index"]
    assert ready["status"] == "ready"
    assert 0 <= ready["resolution"] <= cells.MAX_RES
    assert ready["interior_cells"] + ready["boundary_cells"] == len(cell_rows(area.id))
    assert ready["indexed_at"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/v1/service-areas/", "create"),
        ("patch", "/api/v1/service-areas/{area}/", {"type": "Feature", "properties": {"price": "99"}}),
        ("patch", "/api/v1/service-areas/{area}/", {"type": "Feature", "geometry": EAST}),
        ("delete", "/api/v1/service-areas/{area}/", None),
        ("patch", "/api/v1/providers/{provider}/", {"name": "Renamed"}),
        ("delete", "/api/v1/providers/{provider}/", None),
    ],
)
def test_writes_are_refused_while_the_index_is_unreachable(client_for, make_area, settings, method, path, body):
    area = make_area(WEST)
    before = (
        list(ServiceArea.objects.values_list("id", "name", "price", "geometry_version")),
        list(area.provider.__class__.objects.values_list("id", "name")),
    )
    owner = client_for(area.provider.owner)
    if body == "create":
        body = feature(EAST, provider=area.provider_id, name="new", price="1")
    settings.HEXINDEX_REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"

    response = getattr(owner, method)(path.format(area=area.id, provider=area.provider_id), body, format="json")

    assert response.status_code == 503
    assert response.json()["detail"] == INDEX_UNAVAILABLE
    after = (
        list(ServiceArea.objects.values_list("id", "name", "price", "geometry_version")),
        list(area.provider.__class__.objects.values_list("id", "name")),
    )
    assert after == before


def test_a_build_that_read_old_data_cannot_hide_a_later_change(make_area, api, index_all):
    area = make_area(WEST, price="10.00")
    index_all()
    area_update(area=area, data={"price": "20.00"})  # pending: lookups read it from PostGIS
    batch = prepare([area.id])  # a refresh that read its token now...
    area_update(area=area, data={"price": "30.00"})  # ...then another change lands before it finishes
    report = complete(batch, [])
    assert report.live == []  # its token is stale: the area stays pending
    assert api.get("/api/v1/lookup/", {"lat": 50, "lng": 10}).json()["results"][0]["price"] == "30.00"
    index_all()
    assert api.get("/api/v1/lookup/", {"lat": 50, "lng": 10}).json()["results"][0]["price"] == "30.00"
    assert store.pending_tokens([area.id]) == {area.id: ""}


def test_sweep_refreshes_areas_changed_behind_the_services_back(make_area, api, index_all):
    area = make_area(WEST, price="10.00")
    index_all()
    assert api.get("/api/v1/lookup/", {"lat": 50, "lng": 10}).json()["results"][0]["price"] == "10.00"
    ServiceArea.objects.filter(pk=area.pk).update(price="12.00")  # raw write: the trigger bumps payload_version
    assert sweep()["refreshed"] == 1  # marks it pending and refreshes it (eager)
    assert api.get("/api/v1/lookup/", {"lat": 50, "lng": 10}).json()["results"][0]["price"] == "12.00"
    assert store.pending_tokens([area.id]) == {area.id: ""}


def test_rebuild_restores_live_entries_and_pending_marks(make_area, index_redis, api, index_all):
    live = make_area(WEST, price="1.00")
    index_all()
    waiting = make_area(EAST, price="2.00")
    index_redis.flushdb()

    report = rebuild_redis()

    assert (report.live, report.pending) == (1, 1)
    found = store.candidates(50.0, 10.0, cells.point_cells(50.0, 10.0))
    assert live.id in found.interior + found.boundary
    assert store.candidates(50.0, 12.0, cells.point_cells(50.0, 12.0)).pending == [waiting.id]
    assert [r["id"] for r in api.get("/api/v1/lookup/", {"lat": 50, "lng": 12}).json()["results"]] == [waiting.id]
