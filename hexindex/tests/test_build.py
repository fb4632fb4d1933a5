"""Index builds as the worker runs them: queued after commit, versioned, idempotent, crash-safe; writes refused
while the index cannot be reached. Tasks run in-process here (eager); test_worker.py runs a real worker;
test_maintenance.py covers the sweep and the Redis rebuild."""

import pytest
from django.db import transaction
from redis.exceptions import ConnectionError as RedisConnectionError

from areas.models import ServiceArea
from areas.services import area_create, area_update
from hexindex import cells, jobs, redis_index
from hexindex.build import complete, index_areas, prepare
from hexindex.invalidation import INDEX_UNAVAILABLE
from hexindex.models import AreaIndex
from hexindex.tasks import index_area
from testing.geo import feature, square
from testing.index import (
    EAST,
    WEST,
    cell_rows,
    claim_building,
    dirty_areas,
    geometry,
    is_indexed,
    records_of,
    redis_snapshot,
)
from testing.net import closed_port


def test_build_is_queued_only_after_commit(client_for, make_provider, django_capture_on_commit_callbacks):
    provider = make_provider()
    api = client_for(provider.owner)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api.post(
            "/api/v1/service-areas/", feature(WEST, provider=provider.id, name="W", price="1"), format="json"
        )
        area = ServiceArea.objects.get(pk=response.json()["id"])
        assert response.json()["properties"]["index"]["status"] == "pending"
        assert not is_indexed(area) and not cell_rows(area.id)
    assert len(callbacks) == 1

    for callback in callbacks:
        callback()  # the commit happens: the (eager) task runs
    assert is_indexed(area)
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
    assert AreaIndex.objects.get(area=area).indexed_version == 1 and not is_indexed(area)
    assert cell_rows(area.id) == rows_v1
    assert redis_snapshot(index_redis) == redis_v1

    assert index_area(area.id, 2).startswith("indexed")
    assert is_indexed(area)
    assert cell_rows(area.id) != rows_v1


def test_running_twice_leaves_the_same_result(make_area, index_redis):
    area = make_area(WEST)
    assert index_area(area.id, 1).startswith("indexed")
    rows, records = cell_rows(area.id), redis_snapshot(index_redis)
    assert index_area(area.id, 1).startswith("skipped")
    index_areas([area.id], force=True)
    assert cell_rows(area.id) == rows
    assert redis_snapshot(index_redis) == records


def test_a_crash_mid_build_leaves_lookups_correct(make_area, settings, api, index_redis):
    area = make_area(WEST)
    index_area(area.id, 1)
    area_update(area=area, data={"geometry": geometry(EAST)})

    # Redis goes away after the build read its tokens: the cell table is rewritten, then making it live fails.
    batch = prepare([area.id], versions={area.id: 2})
    computed = [jobs.cover_job(job) for job in batch.jobs]
    real_redis = settings.HEXINDEX_REDIS_URL
    settings.HEXINDEX_REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    with pytest.raises(RedisConnectionError):
        complete(batch, computed)
    settings.HEXINDEX_REDIS_URL = real_redis  # back, still holding the old geometry's records

    assert is_indexed(area)  # the cell table has the new geometry; Redis does not, and the area stays pending

    def found(lat, lng):
        return [r["id"] for r in api.get("/api/v1/lookup/", {"lat": lat, "lng": lng}).json()["results"]]

    assert found(50.0, 12.0) == [area.id]  # the new geometry, checked directly
    assert found(50.0, 10.0) == []  # the old one, still in Redis, is not trusted

    assert index_areas([area.id]).live == [area.id]  # the retry (or the sweep) makes it live
    assert (found(50.0, 12.0), found(50.0, 10.0)) == ([area.id], [])
    assert redis_index.pending_tokens([area.id]) == {area.id: ""}


def test_delete_removes_the_area_from_the_index(client_for, make_area, index_redis, django_capture_on_commit_callbacks):
    area = make_area(WEST)
    index_area(area.id, 1)
    assert records_of(index_redis, area.id)
    with django_capture_on_commit_callbacks(execute=True):
        assert client_for(area.provider.owner).delete(f"/api/v1/service-areas/{area.id}/").status_code == 204
    assert not cell_rows(area.id)
    assert records_of(index_redis, area.id) == set()
    assert redis_index.pending_tokens([area.id]) == {area.id: ""}
    assert not index_redis.hexists("hx:1:pay", area.id)
    assert not AreaIndex.objects.filter(area_id=area.id).exists()


def test_provider_rename_and_price_change_show_in_the_lookup_at_once(make_area, make_user, client_for, api, index_all):
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
    assert results()[1]["provider"]["name"] != "Renamed Shuttles"  # the rename waits for staff review
    staff = client_for(make_user(staff=True))
    assert staff.post(f"/api/v1/providers/{area.provider_id}/accept-changes/").status_code == 200

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
    assert ready["boundary_cells"] == len([row for row in cell_rows(area.id) if row[1]])
    assert ready["indexed_at"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/v1/service-areas/", "create"),
        ("patch", "/api/v1/service-areas/{area}/", {"type": "Feature", "properties": {"price": "99"}}),
        ("patch", "/api/v1/service-areas/{area}/", {"type": "Feature", "geometry": EAST}),
        ("delete", "/api/v1/service-areas/{area}/", None),
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
    assert response.json() == {"detail": INDEX_UNAVAILABLE, "code": "index_unavailable", "service": "redis"}
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
    assert redis_index.pending_tokens([area.id]) == {area.id: ""}


def test_builds_during_a_rebuild_are_noted_for_the_new_generation(make_area, index_redis):
    claim_building(index_redis, 7)
    area = make_area(WEST)
    index_area(area.id, 1)
    assert {key.split(":")[2] for key in records_of(index_redis, area.id)} == {"1"}
    assert dirty_areas(index_redis, 7) == {area.id}


def test_records_are_sorted_by_area_in_every_field(make_area, index_redis):
    areas = [make_area(square(10.0 + 0.05 * i, 50.0, 0.2)) for i in range(6)]
    for area in reversed(areas):  # made live in descending order
        index_area(area.id, 1)
    import numpy as np

    from hexindex import codec

    for key in index_redis.scan_iter("hx:1:c:*"):
        for field, blob in index_redis.hgetall(key).items():
            dtype = codec.BOUNDARY if field.endswith(b"b") else codec.INTERIOR
            ids = np.frombuffer(blob, dtype)["area"].tolist()
            assert ids == sorted(set(ids))


def test_an_edit_that_rolls_back_leaves_the_area_found_where_it_still_is(make_area, index_all):
    area = make_area(WEST)
    index_all()
    with transaction.atomic():
        area_update(area=ServiceArea.objects.get(pk=area.pk), data={"geometry": geometry(EAST)})
        transaction.set_rollback(True)
    # Registered as pending around both its old and its new place: checked in PostGIS, where it is still WEST.
    from hexindex.selectors import lookup

    at_west, at_east = lookup(lat=50.0, lng=10.0), lookup(lat=50.0, lng=12.0)
    assert (at_west.count, at_west.pending, at_east.count) == (1, 1, 0)


def test_a_moved_area_leaves_no_record_behind(make_area, index_all, index_redis):
    area = make_area(WEST)
    index_all()
    before = records_of(index_redis, area.id)
    area_update(area=area, data={"geometry": geometry(EAST)})
    index_all()
    after = records_of(index_redis, area.id)
    assert before and after and not (before & after)
    assert redis_index.live_versions(1)[area.id][0] == 2
