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
