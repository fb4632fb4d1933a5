"""The Redis side's primitives against a real Redis: atomic edits of sorted records in a bucket, compare-and-set on
change tokens, pending registrations in every bucket a lookup could meet them in, bucket-by-bucket generation
switches."""

import h3.api.basic_int as h3
import numpy as np

from hexindex import codec, redis_index
from hexindex.redis_index import APPLIED, TOKEN_MOVED, AreaUpdate
from testing.index import dirty_areas, drop_index

CELL = h3.latlng_to_cell(50.0, 10.0, 9)
ANCHOR = codec.anchor_name(codec.parent(CELL, codec.ANCHOR_RES))
BUCKET = redis_index.bucket_of(ANCHOR)


def update(area_id, *, token="", records=(), clear=True, versions=b"1:1"):
    grouped = redis_index.records_by_bucket([(ANCHOR, name, record) for name, record in records])
    return AreaUpdate(area_id, token, grouped, b"result", versions if records else b"", clear)


def field_ids(client, field, generation=1):
    blob = client.hget(redis_index.records_key(BUCKET, generation, ANCHOR), field) or b""
    return np.frombuffer(blob, codec.INTERIOR)["area"].tolist()


def test_records_stay_sorted_and_unique_whatever_the_order_of_edits(index_redis):
    field = codec.field(CELL, codec.KIND_INTERIOR)
    for area_id in (50, 7, 300, 7, 120):  # 7 twice: replaced, not duplicated
        assert redis_index.apply(1, [update(area_id, records=[(field, codec.interior_record(area_id, 2))])]) == [
            APPLIED
        ]
    assert field_ids(index_redis, field) == [7, 50, 120, 300]
    redis_index.apply(1, [update(50)])  # no records: forgotten
    assert field_ids(index_redis, field) == [7, 120, 300]


def test_an_area_moved_away_leaves_nothing_behind_and_an_emptied_field_is_deleted(index_redis):
    here, there = codec.field(CELL, codec.KIND_INTERIOR), codec.field(h3.cell_to_parent(CELL, 8), codec.KIND_INTERIOR)
    redis_index.apply(1, [update(1, records=[(here, codec.interior_record(1, 2))])])
    redis_index.apply(1, [update(1, records=[(there, codec.interior_record(1, 3))])])
    assert not index_redis.hexists(redis_index.records_key(BUCKET, 1, ANCHOR), here)
    assert field_ids(index_redis, there) == [1]


def test_a_token_changed_since_the_build_read_it_refuses_the_update(index_redis):
    redis_index.mark_pending({5: redis_index.EVERYWHERE})
    token = redis_index.pending_tokens([5])[5]
    field = codec.field(CELL, codec.KIND_INTERIOR)
    assert redis_index.apply(1, [update(5, token="old:1", records=[(field, b"x" * 8)])]) == [TOKEN_MOVED]
    assert field_ids(index_redis, field) == []  # nothing written
    assert redis_index.apply(1, [update(5, token=token, records=[(field, codec.interior_record(5, 2))])]) == [APPLIED]
    assert redis_index.pending_tokens([5]) == {5: ""}  # made live: no longer pending anywhere
    point = redis_index.read_point(ANCHOR, codec.chain_fields(codec.chain(h3.cell_to_center_child(CELL, 12))), 10)
    assert point.pending == []


def test_pending_registrations_are_found_at_their_cells_in_their_buckets_and_cleared_by_token(index_redis):
    cells = codec.chain_fields(codec.chain(h3.cell_to_center_child(CELL, 12)))
    token = redis_index.mark_pending({8: codec.cell_name(CELL), 9: redis_index.EVERYWHERE})
    assert sorted(redis_index.read_point(ANCHOR, cells, max_pending=10).pending) == [8, 9]
    # A registration at a coarse cell reaches the lookups of every anchor below it, whatever their bucket.
    coarse = h3.cell_to_parent(CELL, 1)
    redis_index.mark_pending({11: codec.cell_name(coarse)})
    for anchor in h3.cell_to_children(coarse, codec.ANCHOR_RES)[:20]:
        chain = codec.chain(h3.cell_to_center_child(anchor, 12))
        assert 11 in redis_index.read_point(codec.anchor_name(anchor), codec.chain_fields(chain), 10).pending
    assert redis_index.unpend({8: "stale:1", 9: token}) == {9}
    assert sorted(redis_index.read_point(ANCHOR, cells, max_pending=10).pending) == [8, 11]
    assert redis_index.read_point(ANCHOR, cells, max_pending=0).pending is None  # more than worth listing


def test_a_rebuild_switches_bucket_by_bucket_only_once_areas_changed_meanwhile_are_copied(index_redis):
    lock = redis_index.begin_rebuild(60)
    assert redis_index.begin_rebuild(60) is None  # one at a time
    field = codec.field(CELL, codec.KIND_INTERIOR)
    redis_index.apply(1, [update(3, token="*", records=[(field, codec.interior_record(3, 2))])])  # noted
    assert dirty_areas(index_redis, lock.generation) == {3}
    assert redis_index.switch_buckets(lock) is False
    assert redis_index.take_dirty(lock.generation) == [3]
    assert redis_index.switch_buckets(lock) is True
    assert redis_index.live_generation() == lock.generation
    assert redis_index.generations() == (lock.generation, None)


def test_the_lookup_read_follows_a_generation_switch(index_redis):
    field = codec.field(CELL, codec.KIND_INTERIOR)
    redis_index.apply(1, [update(1, records=[(field, codec.interior_record(1, 2))])])
    cells = codec.chain_fields(codec.chain(h3.cell_to_center_child(CELL, 12)))
    assert codec.interior_record(1, 2) in redis_index.read_point(ANCHOR, cells, 10).interior
    index_redis.hset(redis_index.records_key(BUCKET, 2, ANCHOR), field, codec.interior_record(2, 2))
    index_redis.set(redis_index.bucket_prefix(BUCKET) + "gen", 2)
    point = redis_index.read_point(ANCHOR, cells, 10)
    assert point.generation == 2 and codec.interior_record(2, 2) in point.interior
    drop_index(index_redis)
    assert redis_index.read_point(ANCHOR, cells, 10) is None


def test_every_script_and_transaction_touches_one_hash_slot(index_redis):
    """What a Redis Cluster requires: checked here on the key names each operation uses (test_cluster.py runs them
    on a real cluster)."""
    from redis.cluster import key_slot

    seen = []
    original = redis_index.send_groups

    def recording(groups, **options):
        for tag, commands, _ in groups:
            names = [arg if isinstance(arg, bytes) else str(arg).encode() for command in commands for arg in command]
            seen.append((tag, [name for name in names if name.startswith(b"hx:")]))
        return original(groups, **options)

    redis_index.send_groups = recording
    try:
        redis_index.mark_pending({21: codec.cell_name(CELL)})
        redis_index.read_point(ANCHOR, codec.chain_fields(codec.chain(h3.cell_to_center_child(CELL, 12))), 10)
    finally:
        redis_index.send_groups = original
    assert seen
    for tag, keys in seen:
        assert len({key_slot(key) for key in keys}) <= 1, (tag, keys)


def test_bulk_writes_go_in_chunks_of_bounded_size_with_the_same_outcome(index_redis, monkeypatch):
    """A rebuild unpends every area at once: in bulk, the calls go in several exchanges (Redis never holds one huge
    request while running the scripts before it), and what they do is what one exchange would have done."""
    areas = dict.fromkeys(range(1, 41), redis_index.EVERYWHERE)  # registered in every bucket
    token = redis_index.mark_pending(areas)
    exchanges = []
    original = redis_index.send_groups

    def counting(groups, **options):
        exchanges.append(
            (options.get("purpose"), sum(len(command) for _, commands, _ in groups for command in commands))
        )
        return original(groups, **options)

    monkeypatch.setattr(redis_index, "send_groups", counting)
    monkeypatch.setattr(redis_index, "BULK_ARGUMENTS_PER_EXCHANGE", 500)
    with redis_index.bulk_writes():
        cleared = redis_index.unpend(dict.fromkeys(areas, token))
    assert cleared == set(areas)
    bulk = [size for purpose, size in exchanges if purpose == "bulk"]
    assert len(bulk) > 5 and max(bulk) <= 500 + 2 * len(areas) + 8  # one group may carry a bucket's whole list
    chain = codec.chain_fields(codec.chain(h3.cell_to_center_child(CELL, 12)))
    assert redis_index.read_point(ANCHOR, chain, max_pending=100).pending == []
