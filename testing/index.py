"""What the index holds, read the way a test checks it: Redis records per area, cell rows, whether an area's index
is up to date, which areas a point's cells name in the live generation; and a lookup's answer as area ids."""

import h3.api.basic_int as h3
import numpy as np
import orjson

from testing.geo import square

WEST = square(10.0, 50.0, 0.2)
EAST = square(12.0, 50.0, 0.2)


def geometry(value: dict):
    """GEOS geometry from GeoJSON, through the API's own field (validation and normalisation included)."""
    from areas.serializers import AreaGeometryField

    return AreaGeometryField().to_internal_value(value)


def ids(result) -> list[int]:
    """The area ids of a lookup's answer (hexindex LookupResult), in its order."""
    return [item["id"] for item in orjson.loads(result.body)["results"]]


def redis_snapshot(client) -> dict:
    """Every record field of every generation: {key: {field: records}}."""
    return {key: client.hgetall(key) for key in client.scan_iter("hx:*:c:*")}


def records_of(client, area_id: int) -> set[str]:
    """'<key> <field hex>' of every field holding a record of the area."""
    from hexindex import codec

    found = set()
    for key, fields in redis_snapshot(client).items():
        for field, blob in fields.items():
            dtype = codec.BOUNDARY if field.endswith(codec.KIND_BOUNDARY) else codec.INTERIOR
            if area_id in np.frombuffer(blob, dtype)["area"].tolist():
                found.add(f"{key.decode()} {field.hex()}")
    return found


def cell_rows(area_id) -> set:
    from hexindex.models import AreaCell

    return set(AreaCell.objects.filter(area_id=area_id).values_list("cell", "boundary"))


def is_indexed(area) -> bool:
    from hexindex.models import AreaIndex

    area.refresh_from_db()
    return AreaIndex.objects.filter(area=area, indexed_version=area.geometry_version).exists()


def live_at(lat: float, lng: float) -> set[int]:
    """Areas with a record at the point's cells in the live generation (whatever their masks say)."""
    from hexindex import codec, redis_index
    from hexindex.cells import MAX_RES

    chain = codec.chain(h3.latlng_to_cell(lat, lng, MAX_RES))
    point = redis_index.read_point(codec.anchor_name(chain[codec.ANCHOR_RES]), codec.chain_fields(chain), 10**6)
    if point is None:
        return set()
    found = set()
    for blobs, dtype in ((point.interior, codec.INTERIOR), (point.boundary, codec.BOUNDARY)):
        for blob in blobs:
            if blob:
                found.update(np.frombuffer(blob, dtype)["area"].tolist())
    return found - set(point.pending or [])


def drop_index(client) -> None:
    """Redis as after a restart: no generation anywhere (lookups answer from PostGIS until a rebuild)."""
    from hexindex import redis_index

    keys = [redis_index.bucket_prefix(bucket) + "gen" for bucket in range(redis_index.buckets())]
    client.delete(redis_index.gen_key(), *keys)


def pending_state(client) -> dict:
    """Everything Redis holds about pending areas: tokens (area shards and buckets), and every per-cell set."""
    from hexindex import redis_index

    prefix = redis_index._prefix()
    return {
        "tokens": redis_index.pending_tokens_all(),
        "buckets": {key: client.hgetall(key) for key in client.scan_iter(f"{prefix}:*:pending")},
        "cells": {key: client.smembers(key) for key in client.scan_iter(f"{prefix}:*:p:*")},
    }


def registered_cells(client, area_id: int) -> list[bytes]:
    """The cells (8 bytes each) an area is registered at as pending, in every bucket."""
    from hexindex import redis_index

    found = []
    for key in client.scan_iter(f"{redis_index._prefix()}:*:pcells"):
        listed = client.hget(key, area_id) or b""
        found += [listed[i : i + 8] for i in range(0, len(listed), 8)]
    return found


def dirty_areas(client, generation: int) -> set[int]:
    from hexindex import redis_index

    found: set[int] = set()
    for key in client.scan_iter(f"{redis_index._prefix()}:*:dirty:{generation}"):
        found |= {int(i) for i in client.smembers(key)}
    return found


def claim_building(client, generation: int) -> None:
    """As if another rebuild of `generation` held the lock."""
    from hexindex import redis_index

    client.set(redis_index.building_key(), f"{generation}:someone")


def age_registration(client, area_id: int, token: str = "99:1") -> None:
    """As if the area had been registered as pending long ago (its token's time is 1 s after 1970)."""
    from hexindex import redis_index

    client.hset(redis_index.shard_prefix(redis_index.shard_of(area_id)) + "tok", area_id, token)
    for key in client.scan_iter(f"{redis_index._prefix()}:*:pending"):
        if client.hexists(key, area_id):
            client.hset(key, area_id, token)
