"""The lookup: which service areas cover a point. Same answer as an exact PostGIS `ST_Covers` query over all
areas, in the same order, much faster.

    point -> its cell chain (13 cells) -> ONE Redis read: the hash of the point's anchor cell, one field per chain
             cell and kind, plus the areas pending at the point
          -> interior records: covered. Boundary records: their masks, read at the point's own digits two levels
             down, settle most of them (inside or outside); the rest are *exact checks*
          -> only if there are exact checks or pending areas: ONE PostgreSQL query confirming the checks against
             the area clipped to the cell, and checking pending areas directly
          -> results from this process's cache of serialised results (keyed by area and payload version; misses
             are read from Redis), sorted by their (price, id) prefix and spliced into the response

When Redis is unreachable, holds no index, or too many areas are pending at the point, the answer comes from the
exact query instead (and a missing index is rebuilt).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import h3.api.basic_int as h3
import numpy as np
from django.conf import settings
from django.db import connection
from redis.exceptions import RedisError

from hexindex import codec, redis_index
from hexindex.cells import EXACT_CHECK_MARGIN, MAX_RES, mask_bits
from hexindex.payload import PAYLOAD_COLUMNS, AreaPayload, render, render_sortable

log = logging.getLogger(__name__)

# Above this many pending areas at a point (a bulk import nearby), one exact query is as cheap as checking them.
MAX_PENDING_CHECKS = 256

# $1 lat, $2 lng, $3/$4 exact checks (area, the point's cell at the area's boundary resolution), $5 pending areas.
# A check is confirmed against the area clipped to the cell (one primary-key probe), or against the whole area
# when the point is within EXACT_CHECK_MARGIN of the clip's outline (or the area has few vertices and was not
# clipped). Pending areas are fetched by primary key behind a fence (OFFSET 0), and not at all when there are none:
# the generic plan would otherwise also scan the GiST index for the point on every lookup.
CONFIRM_SQL = f"""
WITH point AS (SELECT ST_SetSRID(ST_MakePoint($2, $1), 4326) AS geom)
SELECT c.area_id, NULL::numeric, NULL::varchar, NULL::bigint, NULL::varchar, NULL::varchar
FROM unnest($3::bigint[], $4::bigint[]) AS c(area_id, cell), point
WHERE EXISTS (
    SELECT 1 FROM hexindex_areacell ac
    WHERE ac.cell = c.cell AND ac.area_id = c.area_id AND ac.boundary
      AND CASE WHEN ac.clip IS NULL OR ST_DWithin(ST_Boundary(ac.clip), point.geom, {EXACT_CHECK_MARGIN!r})
               THEN ST_Covers((SELECT whole.geometry FROM areas_servicearea whole WHERE whole.id = ac.area_id),
                              point.geom)
               ELSE ST_Covers(ac.clip, point.geom) END)
UNION ALL
SELECT {PAYLOAD_COLUMNS}
FROM (SELECT * FROM areas_servicearea WHERE id = ANY($5::bigint[]) OFFSET 0) a
JOIN providers_provider p ON p.id = a.provider_id, point
WHERE cardinality($5::bigint[]) > 0 AND ST_Covers(a.geometry, point.geom)
"""
CONFIRM_STATEMENT = "hexindex_confirm"
CONFIRM_TYPES = "(float8, float8, bigint[], bigint[], bigint[])"

EXACT_SQL = f"""
SELECT {PAYLOAD_COLUMNS}
FROM areas_servicearea a JOIN providers_provider p ON p.id = a.provider_id
WHERE ST_Covers(a.geometry, ST_SetSRID(ST_MakePoint(%s, %s), 4326))
ORDER BY a.price, a.id
"""

_ONE = np.uint64(1)


@dataclass(slots=True)
class LookupResult:
    """A lookup's response body and how it was answered."""

    body: bytes
    count: int
    source: str  # "index", or "postgis" when answered by the exact query
    candidates: int = 0  # records found for the point (interior and boundary, pending excluded)
    boundary_candidates: int = 0
    exact_checks: int = 0  # boundary candidates the masks could not settle: confirmed in PostgreSQL
    pending: int = 0  # areas pending at the point, checked in PostgreSQL
    postgres_queries: int = 0
    redis_seconds: float = 0.0
    postgres_seconds: float = 0.0


class _PayloadCache:
    """Serialised results by (area id, payload version). A result never changes for a given payload version, so
    entries are never stale; they are only dropped when the generation changes (a rebuild may follow a reset
    database) or to stay within `capacity`."""

    def __init__(self):
        self.generation: int | None = None
        self.entries: dict[int, bytes] = {}

    def use_generation(self, generation: int) -> None:
        if generation != self.generation:
            self.entries = {}
            self.generation = generation

    def put(self, key: int, blob: bytes) -> None:
        capacity = settings.HEXINDEX_PAYLOAD_CACHE_ENTRIES
        if len(self.entries) >= capacity:
            # Forget the oldest half: cheap, and close enough to least-recently-used here.
            for old in list(self.entries)[: capacity // 2]:
                del self.entries[old]
        self.entries[key] = blob


_cache = _PayloadCache()


class _Inconsistent(Exception):
    """Redis changed between the lookup's two reads (a rebuild switched, or an area was made live again)."""


def lookup(*, lat: float, lng: float) -> LookupResult:
    """Every service area covering the point, cheapest first, then by id, as the lookup's JSON body."""
    for _ in range(2):
        try:
            result = _lookup_indexed(lat, lng)
        except _Inconsistent:
            continue
        except RedisError:
            log.warning("Redis unavailable: lookup served by PostGIS", exc_info=True)
            break
        if result is None:  # no index in Redis (it restarted empty): being rebuilt
            from hexindex.maintenance import request_redis_rebuild

            request_redis_rebuild()
            break
        return result
    return lookup_exact(lat=lat, lng=lng)


def lookup_exact(*, lat: float, lng: float) -> LookupResult:
    """The exact PostGIS answer: one query over the GiST index of all areas."""
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(EXACT_SQL, [lng, lat])
        results = [AreaPayload(*row).json() for row in cursor.fetchall()]
    return LookupResult(
        render(results), len(results), "postgis", postgres_queries=1, postgres_seconds=time.perf_counter() - started
    )


def _lookup_indexed(lat: float, lng: float) -> LookupResult | None:
    cell = h3.latlng_to_cell(lat, lng, MAX_RES)
    chain = codec.chain(cell)
    started = time.perf_counter()
    anchor = codec.anchor_name(chain[codec.ANCHOR_RES])
    point = redis_index.read_point(anchor, codec.chain_fields(chain), MAX_PENDING_CHECKS)
    redis_seconds = time.perf_counter() - started
    if point is None:
        return None
    if point.pending is None:  # many areas pending here (a bulk import): one exact query is as cheap
        return lookup_exact(lat=lat, lng=lng)
    _cache.use_generation(point.generation)

    interior = _records(point.interior, codec.INTERIOR)
    boundary, boundary_res = _boundary_records(point.boundary)
    if point.pending:
        pending = np.array(point.pending, dtype=np.int64)
        interior = interior[~np.isin(interior["area"], pending)]
        keep = ~np.isin(boundary["area"], pending)
        boundary, boundary_res = boundary[keep], boundary_res[keep]
    result = LookupResult(b"", 0, "index", len(interior) + len(boundary), len(boundary), pending=len(point.pending))
    result.redis_seconds = redis_seconds

    inside, check = _settle(boundary, boundary_res, cell)
    checks = boundary[check]
    found = [interior, boundary[inside]]
    blobs: list[bytes] = []
    result.exact_checks = len(checks)
    if len(checks) or point.pending:
        chain_array = np.array(chain, dtype=np.uint64).view(np.int64)
        check_cells = chain_array[boundary_res[check]]
        started = time.perf_counter()
        confirmed, rows = _confirm(lat, lng, checks["area"].astype(np.int64), check_cells, point.pending)
        result.postgres_seconds = time.perf_counter() - started
        result.postgres_queries = 1
        if confirmed:
            found.append(checks[np.isin(checks["area"], np.array(confirmed, dtype=np.int64))])
        blobs = [AreaPayload(*row).sortable() for row in rows]

    areas = np.concatenate([part["area"].astype(np.int64) for part in found])
    versions = np.concatenate([part["payload"].astype(np.int64) for part in found])
    blobs += _payloads(areas, versions, point.generation)
    result.body = render_sortable(blobs)
    result.count = len(blobs)
    return result


def _records(blobs: list[bytes | None], dtype: np.dtype) -> np.ndarray:
    present = [blob for blob in blobs if blob]
    if not present:
        return np.zeros(0, dtype)
    return np.frombuffer(b"".join(present), dtype)


def _boundary_records(blobs: list[bytes | None]) -> tuple[np.ndarray, np.ndarray]:
    """Boundary records of the chain, with the resolution each was found at."""
    resolutions, counts = [], []
    for res, blob in enumerate(blobs):
        if blob:
            resolutions.append(res)
            counts.append(len(blob) // codec.BOUNDARY.itemsize)
    return _records(blobs, codec.BOUNDARY), np.repeat(np.array(resolutions, dtype=np.int64), counts)


def _settle(records: np.ndarray, resolutions: np.ndarray, cell: int) -> tuple[np.ndarray, np.ndarray]:
    """(inside, needs an exact check) per boundary record, from its masks at the point's digits (cells.settle)."""
    if not len(records):
        empty = np.zeros(0, bool)
        return empty, empty
    first, second = mask_bits(cell)
    first_bit = np.array(first, dtype=np.uint64)[resolutions]
    second_bit = np.array(second, dtype=np.uint64)[resolutions]
    inside, crossing = records["inside"], records["crossing"]
    inside1 = (inside >> first_bit) & _ONE
    crossing1 = (crossing >> first_bit) & _ONE
    inside2 = (inside >> second_bit) & _ONE
    crossing2 = (crossing >> second_bit) & _ONE
    settled_inside = (inside1 | (crossing1 & inside2)).astype(bool)
    check = (crossing1 & (inside2 ^ _ONE) & crossing2 & (inside1 ^ _ONE)).astype(bool)
    return settled_inside, check


def _payloads(areas: np.ndarray, versions: np.ndarray, generation: int) -> list[bytes]:
    """Serialised results of live areas, from this process's cache or else from Redis."""
    keys = ((areas.astype(np.uint64) << np.uint64(32)) | versions.astype(np.uint64)).tolist()
    get = _cache.entries.get
    blobs = [get(key) for key in keys]
    missing = [i for i, blob in enumerate(blobs) if blob is None]
    if missing:
        reply = redis_index.read_payloads([int(areas[i]) for i in missing])
        if reply is None or reply[0] != generation:
            raise _Inconsistent()
        for i, raw in zip(missing, reply[1], strict=True):
            if raw is None:
                raise _Inconsistent()  # forgotten since the first read
            version, blob = codec.decode_payload(raw)
            if version != versions[i]:
                raise _Inconsistent()  # made live again since the first read
            _cache.put(keys[i], blob)
            blobs[i] = blob
    return blobs


def _confirm(lat, lng, areas: np.ndarray, cells: np.ndarray, pending: list[int]) -> tuple[list[int], list[tuple]]:
    """(confirmed exact checks, payload rows of pending areas covering the point): one prepared statement."""
    with connection.cursor() as cursor:
        _execute_prepared(cursor, [lat, lng, areas.tolist(), cells.tolist(), pending])
        confirmed, rows = [], []
        for row in cursor.fetchall():
            if row[1] is None:
                confirmed.append(row[0])
            else:
                rows.append(row)
    return confirmed, rows


def _execute_prepared(cursor, params: list) -> None:
    """Run the confirmation query as a prepared statement: planning it costs more than running it. The
    statement is prepared once per database session (it survives transactions, not reconnections)."""
    raw = connection.connection
    session = (id(raw), raw.get_backend_pid())
    if getattr(connection, "_hexindex_prepared_in", None) != session:
        # A generic plan: its shape (one index probe per candidate) never depends on the values.
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE {CONFIRM_STATEMENT} {CONFIRM_TYPES} AS {CONFIRM_SQL}")
        connection._hexindex_prepared_in = session
    cursor.execute(f"EXECUTE {CONFIRM_STATEMENT} (%s, %s, %s, %s, %s)", params)
