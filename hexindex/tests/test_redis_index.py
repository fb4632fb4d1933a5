"""The Redis side's primitives against a real Redis: atomic edits of sorted records, compare-and-set on change
tokens and states, pending registrations, generation switches."""

import numpy as np

from hexindex import codec, redis_index
from hexindex.redis_index import APPLIED, STATE_MOVED, TOKEN_MOVED, AreaUpdate


def update(area_id, *, token="", expected=b"", state=b"s", edits=(), clear=True):
    return AreaUpdate(area_id, token, expected, state, b"1:1", b"result", list(edits), clear, False)


def field_ids(client, anchor, field):
    blob = client.hget(redis_index.records_key(1, anchor), field) or b""
    return np.frombuffer(blob, codec.INTERIOR)["area"].tolist()


def test_records_stay_sorted_and_unique_whatever_the_order_of_edits(index_redis):
    field = codec.field(123, codec.KIND_INTERIOR)
    for area_id in (50, 7, 300, 7, 120):  # 7 twice: replaced, not duplicated
        assert redis_index.apply(1, [update(area_id, edits=[("a", field, codec.interior_record(area_id, 2))])])
        index_redis.hdel("hx:1:a", area_id)  # as if new each time
    assert field_ids(index_redis, "a", field) == [7, 50, 120, 300]
    redis_index.apply(1, [update(50, edits=[("a", field, b"")])])
    assert field_ids(index_redis, "a", field) == [7, 120, 300]


def test_an_emptied_field_is_deleted(index_redis):
    field = codec.field(9, codec.KIND_INTERIOR)
    redis_index.apply(1, [update(1, edits=[("a", field, codec.interior_record(1, 2))])])
    redis_index.apply(1, [update(1, expected=b"s", edits=[("a", field, b"")])])
    assert not index_redis.hexists(redis_index.records_key(1, "a"), field)


def test_a_changed_token_or_state_refuses_the_update(index_redis):
    redis_index.mark_pending({5: redis_index.EVERYWHERE})
    token = redis_index.pending_tokens([5])[5]
    assert redis_index.apply(1, [update(5, token="old:1")]) == [TOKEN_MOVED]
    assert redis_index.apply(1, [update(5, token=token, expected=b"other")]) == [STATE_MOVED]
    assert redis_index.apply(1, [update(5, token=token)]) == [APPLIED]
    assert redis_index.pending_tokens([5]) == {5: ""}  # made live: no longer pending
    assert not index_redis.sismember(redis_index.PENDING_EVERYWHERE_KEY, 5)


def test_pending_registrations_are_found_at_their_cells_and_cleared_by_token(index_redis):
    cell = codec.cell_name(0x08A2A1072B59FFFF)
    token = redis_index.mark_pending({8: cell, 9: redis_index.EVERYWHERE})
    point = redis_index.read_point("a", [cell], max_pending=10)
    assert sorted(point.pending) == [8, 9]
    assert redis_index.unpend({8: "stale:1", 9: token}) == {9}
    assert redis_index.read_point("a", [cell], max_pending=10).pending == [8]
    assert redis_index.read_point("a", [cell], max_pending=0).pending is None  # more than worth listing


def test_a_rebuild_does_not_switch_while_areas_changed_meanwhile_are_not_copied(index_redis):
    generation = redis_index.begin_rebuild(60)
    assert redis_index.begin_rebuild(60) is None  # one at a time
    redis_index.apply(1, [AreaUpdate(3, "*", b"", b"s", b"1:1", b"r", [], False, True)])  # noted for the rebuild
    assert redis_index.finish_rebuild(generation) == (0, None)
    assert redis_index.take_dirty(generation) == [3]
    assert redis_index.finish_rebuild(generation) == (1, 1)
    assert redis_index.live_generation() == generation


def test_the_lookup_read_follows_a_generation_switch(index_redis):
    field = codec.field(77, codec.KIND_INTERIOR)
    redis_index.apply(1, [update(1, edits=[("a", field, codec.interior_record(1, 2))])])
    cells = [codec.cell_name(77)]
    assert redis_index.read_point("a", cells, 10).interior == [codec.interior_record(1, 2)]
    index_redis.hset(redis_index.records_key(2, "a"), field, codec.interior_record(2, 2))
    index_redis.set(redis_index.GEN_KEY, 2)
    point = redis_index.read_point("a", cells, 10)
    assert (point.generation, point.interior) == (2, [codec.interior_record(2, 2)])
    index_redis.delete(redis_index.GEN_KEY)
    assert redis_index.read_point("a", cells, 10) is None
