"""The sweep and the Redis rebuild: Redis is derived data, rebuilt from PostgreSQL, reconciled every minute."""

from datetime import timedelta

from django.utils import timezone

from areas.models import ServiceArea
from hexindex import cover, jobs, redis_index
from hexindex.build import index_areas
from hexindex.maintenance import rebuild_redis, sweep
from hexindex.models import AreaIndex
from hexindex.selectors import lookup
from hexindex.tasks import index_area
from testing.geo import square
from testing.index import EAST, WEST, age_registration, claim_building, is_indexed, records_of, redis_snapshot

FAR = square(-20.0, 40.0, 0.2)


def found(lat, lng) -> list[int]:
    import orjson

    return [item["id"] for item in orjson.loads(lookup(lat=lat, lng=lng).body)["results"]]


def test_a_failed_build_is_shown_and_retried_by_the_sweep(make_area, monkeypatch, client_for):
    area = make_area(WEST)

    def refuse(geometry):
        raise cover.CoverError("too many cells")

    monkeypatch.setattr(jobs, "cover", refuse)
    assert index_area(area.id, 1).startswith("failed")
    owner = client_for(area.provider.owner)
    state = owner.get(f"/api/v1/service-areas/{area.id}/").json()["properties"]["index"]
    assert state["status"] == "failed"
    assert "too many cells" in state["error"]
    # Still found: areas not live in the index are checked directly.
    assert found(50, 10) == [area.id]

    monkeypatch.undo()
    assert sweep()["reenqueued"] == 0  # failed just now: not yet (and it is still pending)
    redis_index.unpend(redis_index.pending_tokens([area.id]))  # as if its registration were lost, too
    assert sweep()["reenqueued"] == 0  # registered again, but not re-queued before the retry delay
    AreaIndex.objects.filter(area_id=area.id).update(enqueued_at=timezone.now() - timedelta(minutes=11))
    redis_index.unpend(redis_index.pending_tokens([area.id]))
    assert sweep()["reenqueued"] == 1  # runs the build (eager)
    state = owner.get(f"/api/v1/service-areas/{area.id}/").json()["properties"]["index"]
    assert state["status"] == "ready"
    assert state["error"] is None
    assert state["boundary_cells"] > 0


def test_sweep_enqueues_areas_whose_build_was_lost(make_area):
    area = make_area(WEST)  # on_commit never ran here: as if the broker had been down
    redis_index.unpend(redis_index.pending_tokens([area.id]))  # and the pending registration lost
    assert sweep()["reenqueued"] == 0  # just scheduled: give the worker time
    assert redis_index.pending_tokens([area.id])[area.id]  # but registered again at once
    AreaIndex.objects.filter(area_id=area.id).update(enqueued_at=timezone.now() - timedelta(minutes=3))
    redis_index.unpend(redis_index.pending_tokens([area.id]))
    assert sweep()["reenqueued"] == 1
    assert is_indexed(area)
    assert found(50.0, 10.0) == [area.id]


def test_sweep_refreshes_areas_stuck_pending(make_area, index_all):
    area = make_area(WEST)
    index_all()
    redis_index.mark_pending({area.id: redis_index.EVERYWHERE})  # e.g. a write whose transaction rolled back
    index_redis = redis_index.client()
    age_registration(index_redis, area.id)  # registered long ago
    assert sweep()["refreshed"] == 1
    assert redis_index.pending_tokens([area.id]) == {area.id: ""}
    assert found(50.0, 10.0) == [area.id]


def test_sweep_rebuilds_an_empty_redis(make_area, index_redis):
    area = make_area(WEST)
    index_area(area.id, 1)
    index_redis.flushdb()
    assert redis_index.live_generation() is None

    assert sweep()["rebuild_requested"] is True  # the (eager) rebuild runs
    result = lookup(lat=50.0, lng=10.0)
    assert (result.source, result.count) == ("index", 1)
    assert records_of(index_redis, area.id)


def test_a_lookup_without_an_index_is_exact_and_asks_for_a_rebuild(make_area, index_redis):
    area = make_area(WEST)
    index_area(area.id, 1)
    index_redis.flushdb()
    result = lookup(lat=50.0, lng=10.0)
    assert (result.source, result.count) == ("postgis", 1)
    assert redis_index.live_generation() is not None  # requested, and run by the (eager) worker
    assert lookup(lat=50.0, lng=10.0).source == "index"


def test_sweep_drops_areas_deleted_behind_the_services_back(make_area, index_all):
    area = make_area(WEST)
    index_all()
    assert found(50.0, 10.0) == [area.id]
    ServiceArea.objects.filter(pk=area.pk).delete()  # e.g. raw SQL or a bulk delete: Redis is not told
    assert sweep()["forgotten"] == 1
    assert found(50.0, 10.0) == []
    assert records_of(redis_index.client(), area.id) == set()


def test_sweep_refreshes_areas_changed_behind_the_services_back(make_area, index_all):
    area = make_area(WEST, price="10.00")
    index_all()
    assert b'"price":"10.00"' in lookup(lat=50, lng=10).body
    ServiceArea.objects.filter(pk=area.pk).update(price="12.00")  # raw write: the trigger bumps payload_version
    assert sweep()["refreshed"] == 1  # registers it pending and refreshes it (eager)
    assert b'"price":"12.00"' in lookup(lat=50, lng=10).body
    assert redis_index.pending_tokens([area.id]) == {area.id: ""}


def test_sweep_reindexes_areas_moved_behind_the_services_back(make_area, index_all):
    area = make_area(WEST)
    index_all()
    moved = "ST_Translate(geometry, 2, 0)"
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE areas_servicearea SET geometry = {moved} WHERE id = %s", [area.id])
    assert sweep()["reenqueued"] == 1
    assert (found(50.0, 10.0), found(50.0, 12.0)) == ([], [area.id])
    assert is_indexed(area)


def test_sweep_restores_areas_lost_from_redis(make_area, index_all, index_redis):
    area = make_area(WEST)
    index_all()
    versions = redis_index.shard_prefix(redis_index.shard_of(area.id)) + "1:v"
    index_redis.hdel(versions, area.id)  # e.g. a failover that lost recent writes
    assert sweep()["refreshed"] == 1
    assert index_redis.hexists(versions, area.id)


def test_rebuild_switches_to_a_new_generation_and_drops_the_old(make_area, index_redis):
    areas = [make_area(WEST), make_area(EAST)]
    index_areas([a.id for a in areas])
    before = {key.split(b":", 3)[3]: fields for key, fields in redis_snapshot(index_redis).items()}

    report = rebuild_redis()

    assert report.generation == redis_index.live_generation() != 1
    after = redis_snapshot(index_redis)
    assert all(key.split(b":")[2] == str(report.generation).encode() for key in after)
    assert {key.split(b":", 3)[3]: fields for key, fields in after.items()} == before
    assert not list(index_redis.scan_iter("hx:*:1:*"))
    assert report.records == sum(
        len(blob) // 8 if field.endswith(b"i") else len(blob) // 24
        for fields in before.values()
        for field, blob in fields.items()
    )


def test_a_second_rebuild_waits_for_the_first(index_redis, db):
    claim_building(index_redis, 9)
    assert rebuild_redis().generation is None


def test_rebuild_restores_live_areas_and_pending_registrations(make_area, index_redis, index_all):
    live = make_area(WEST, price="1.00")
    index_all()
    waiting = make_area(FAR, price="2.00")
    index_redis.flushdb()

    report = rebuild_redis()

    assert (report.live, report.pending) == (1, 1)
    at_live, at_waiting = lookup(lat=50.0, lng=10.0), lookup(lat=40.0, lng=-20.0)
    assert (at_live.source, at_live.candidates, at_live.pending) == ("index", 1, 0)
    assert (at_waiting.source, at_waiting.pending, at_waiting.count) == ("index", 1, 1)
    assert found(40.0, -20.0) == [waiting.id]
    assert redis_index.pending_tokens([live.id, waiting.id])[waiting.id]


def test_areas_made_live_during_a_rebuild_reach_the_new_generation(make_area, index_redis, index_all, monkeypatch):
    """A build that lands while the rebuild writes its snapshot is copied in before the switch."""
    first = make_area(WEST)
    index_all()
    second = make_area(EAST)
    from hexindex import maintenance

    real_write = maintenance._write_generation

    def write_then_build(*args):
        result = real_write(*args)
        index_areas([second.id])  # made live in the live generation, noted for the one being built
        return result

    monkeypatch.setattr(maintenance, "_write_generation", write_then_build)
    report = rebuild_redis()
    assert found(50.0, 12.0) == [second.id]
    result = lookup(lat=50.0, lng=12.0)
    assert (result.candidates, result.pending) == (1, 0)
    assert any(key.split(":")[2] == str(report.generation) for key in records_of(index_redis, second.id))
    assert found(50.0, 10.0) == [first.id]


def test_retry_wait_doubles_with_every_attempt_that_came_to_nothing_up_to_a_cap():
    from hexindex.maintenance import FAILED_RETRY_AFTER, REENQUEUE_AFTER, RETRY_MAX_WAIT, retry_wait

    assert [retry_wait(attempts, failed=False) for attempts in range(5)] == [
        REENQUEUE_AFTER,
        REENQUEUE_AFTER,
        REENQUEUE_AFTER * 2,
        REENQUEUE_AFTER * 4,
        REENQUEUE_AFTER * 8,
    ]
    assert [retry_wait(attempts, failed=True) for attempts in (1, 2, 3)] == [
        FAILED_RETRY_AFTER,
        FAILED_RETRY_AFTER * 2,
        FAILED_RETRY_AFTER * 4,
    ]
    assert retry_wait(60, failed=True) == RETRY_MAX_WAIT


def _sent_ago(area, minutes):
    """As if the area's index work had last been queued that long ago; its pending registration lost."""
    AreaIndex.objects.filter(area_id=area.id).update(enqueued_at=timezone.now() - timedelta(minutes=minutes))
    redis_index.unpend(redis_index.pending_tokens([area.id]))


def test_sweep_waits_longer_each_time_the_build_it_sent_never_came_back(make_area, monkeypatch):
    from hexindex import invalidation

    lost = []
    monkeypatch.setattr(invalidation, "enqueue", lambda **task: lost.append(task))  # every build it sends is lost
    area = make_area(WEST)
    assert lost == []  # nothing was published: on_commit never ran in this test

    _sent_ago(area, 3)
    assert sweep()["reenqueued"] == 1  # first wait: 2 minutes
    _sent_ago(area, 3)
    assert sweep()["reenqueued"] == 1  # second: still 2 minutes
    _sent_ago(area, 3)
    assert sweep()["reenqueued"] == 0  # third: 4 minutes
    _sent_ago(area, 5)
    assert sweep()["reenqueued"] == 1
    _sent_ago(area, 7)
    assert sweep()["reenqueued"] == 0  # fourth: 8 minutes
    _sent_ago(area, 9)
    assert sweep()["reenqueued"] == 1
    assert len(lost) == 4
    assert AreaIndex.objects.get(area_id=area.id).attempts == 4
    assert found(50.0, 10.0) == [area.id]  # found all along: areas not indexed are checked directly


def test_sweep_does_not_resend_a_lost_refresh_every_minute(make_area, index_all, monkeypatch):
    from hexindex import invalidation

    area = make_area(WEST)
    index_all()
    monkeypatch.setattr(invalidation, "enqueue_refresh", lambda area_ids: None)  # refreshes are lost
    age_registration(redis_index.client(), area.id)  # pending since long ago
    assert sweep()["refreshed"] == 1
    assert sweep()["refreshed"] == 0  # a minute later: not again yet
    AreaIndex.objects.filter(area_id=area.id).update(enqueued_at=timezone.now() - timedelta(minutes=3))
    assert sweep()["refreshed"] == 1
    AreaIndex.objects.filter(area_id=area.id).update(enqueued_at=timezone.now() - timedelta(minutes=3))
    assert sweep()["refreshed"] == 0  # now it waits 4 minutes


def test_an_area_back_in_order_starts_again_from_the_first_wait(make_area, index_all):
    area = make_area(WEST)
    index_all()
    AreaIndex.objects.filter(area_id=area.id).update(attempts=5)  # earlier trouble, since resolved
    sweep()
    assert AreaIndex.objects.get(area_id=area.id).attempts == 0


def test_a_redis_rebuild_that_meets_the_database_down_is_retried():
    from django.db import DatabaseError
    from redis.exceptions import RedisError

    from hexindex.tasks import rebuild_redis_index

    assert {DatabaseError, RedisError} <= set(rebuild_redis_index.autoretry_for)
    assert rebuild_redis_index.max_retries and rebuild_redis_index.acks_late
