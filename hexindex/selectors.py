"""The lookup: which service areas cover a point. Same answer as an exact PostGIS `ST_Covers` query over all
areas, in the same order, much faster.

    point -> its cell chain (13 cells) -> ONE Redis read: the hash of the point's anchor cell, one field per chain
             cell and kind, plus the areas pending at the point
          -> interior records: covered. Boundary records: their masks, read at the point's own digits two levels
             down, settle most of them (inside or outside); the rest need an *exact check*
          -> results and outlines this process has not seen yet: ONE more Redis read (results of live areas,
             serialised with their price; outlines shared by the other web processes)
          -> exact checks against the area's outline near the cell (its clip, or the whole area when small); a
             point within EXACT_CHECK_MARGIN of that outline, outlines nobody fetched yet, and areas pending at
             the point go to ONE PostgreSQL query (which also returns the outlines, shared through Redis)
          -> results ordered by (price, id) and spliced into the response

When Redis is unreachable, holds no index, or too many areas are pending at the point, the answer comes from the
exact query instead (and a missing index is rebuilt).

The caches hold immutable facts (what an area looked like at a version, which only grows) so they are never
stale; they are dropped with the index generation (a rebuild may follow a database reset).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import h3.api.basic_int as h3
import numpy as np
import shapely
from django.conf import settings
from django.db import connection
from redis.exceptions import RedisError

from core.redis import breaker
from hexindex import codec, invalidation, maintenance, redis_index
from hexindex.cells import EXACT_CHECK_MARGIN, MAX_RES, mask_bits
from hexindex.payload import PAYLOAD_COLUMNS, PUBLIC_SQL, AreaPayload, render

log = logging.getLogger(__name__)

# Above this many pending areas at a point (a bulk import nearby), one exact query is as cheap as checking them.
MAX_PENDING_CHECKS = 256

# $1 lat, $2 lng; $3, $4, $5: exact checks (area, the point's cell at the area's boundary resolution, whether to
# return the shape); $6 pending areas. Rows: 'c' (a check: covered?, clipped?, and the shape when asked: the area
# clipped to the cell, or the whole area when it has no clip) or 'p' (a pending area covering the point, with its
# result).
# A check uses the whole area when the point is within EXACT_CHECK_MARGIN of the clip's outline. Pending areas are
# fetched by primary key behind a fence (OFFSET 0), and not at all when there are none: the generic plan would
# otherwise also scan the GiST index for the point.
CONFIRM_SQL = f"""
WITH point AS (SELECT ST_SetSRID(ST_MakePoint($2, $1), 4326) AS geom)
SELECT 'c', c.area_id, c.cell,
       CASE WHEN ac.clip IS NULL OR ST_DWithin(ST_Boundary(ac.clip), point.geom, {EXACT_CHECK_MARGIN!r})
            THEN ST_Covers(w.geometry, point.geom) ELSE ST_Covers(ac.clip, point.geom) END,
       ac.clip IS NOT NULL,
       CASE WHEN c.shape THEN ST_AsBinary(COALESCE(ac.clip, w.geometry)) END,
       NULL::numeric, NULL::varchar, NULL::bigint, NULL::varchar, NULL::varchar
FROM unnest($3::bigint[], $4::bigint[], $5::bool[]) AS c(area_id, cell, shape)
JOIN hexindex_areacell ac ON ac.cell = c.cell AND ac.area_id = c.area_id AND ac.boundary
JOIN areas_servicearea w ON w.id = c.area_id, point
UNION ALL
SELECT 'p', a.id, NULL, NULL, NULL, NULL, a.price, a.name, p.id, p.name, p.currency
FROM (SELECT * FROM areas_servicearea WHERE id = ANY($6::bigint[]) OFFSET 0) a
JOIN providers_provider p ON p.id = a.provider_id, point
WHERE cardinality($6::bigint[]) > 0 AND {PUBLIC_SQL} AND ST_Covers(a.geometry, point.geom)
"""
CONFIRM_STATEMENT = "hexindex_confirm"
CONFIRM_TYPES = "(float8, float8, bigint[], bigint[], bool[], bigint[])"

EXACT_SQL = f"""
SELECT {PAYLOAD_COLUMNS}
FROM areas_servicearea a JOIN providers_provider p ON p.id = a.provider_id
WHERE ST_Covers(a.geometry, ST_SetSRID(ST_MakePoint(%s, %s), 4326)) AND ({PUBLIC_SQL} OR p.owner_id = %s)
ORDER BY a.price, a.id
"""

_ONE = np.uint64(1)
T = TypeVar("T")


@dataclass(slots=True)
class LookupResult:
    """A lookup's response body and how it was answered."""

    body: bytes
    count: int
    source: str  # "index", or "postgis" when answered by the exact query
    candidates: int = 0  # records found for the point (interior and boundary, pending excluded)
    boundary_candidates: int = 0
    exact_checks: int = 0  # boundary candidates the masks could not settle
    checks_in_process: int = 0  # of those, settled here from a shape seen before
    pending: int = 0  # areas pending at the point, checked in PostgreSQL
    postgres_queries: int = 0
    redis_seconds: float = 0.0
    postgres_seconds: float = 0.0


class _Results:
    """Serialised results with their price, by area id, for one version of each area: numpy arrays indexed by area
    id, so a lookup finds and orders ~200 results in a few array operations."""

    def __init__(self):
        self.generation: int | None = None
        self._allocate(0)

    def _allocate(self, size: int) -> None:
        self.version = np.zeros(size, np.uint32)  # 0: nothing cached (versions start at 2)
        self.price = np.zeros(size, np.int64)
        self.body = np.empty(size, object)

    def use_generation(self, generation: int) -> None:
        if generation != self.generation:
            self._allocate(0)
            self.generation = generation

    def missing(self, areas: np.ndarray, versions: np.ndarray) -> np.ndarray:
        inside = areas < len(self.version)
        found = np.zeros(len(areas), bool)
        found[inside] = self.version[areas[inside]] == versions[inside]
        return ~found

    def store(self, area: int, version: int, price_cents: int, body: bytes) -> None:
        if area >= len(self.version):
            grown = max(area + 1, 2 * len(self.version), 1024)
            old = self.version, self.price, self.body
            self._allocate(grown)
            self.version[: len(old[0])], self.price[: len(old[1])], self.body[: len(old[2])] = old
        self.version[area], self.price[area], self.body[area] = version, price_cents, body


class _Shapes:
    """Outline segments (x0, y0, x1, y1) of areas near cells: what an exact check needs. Keyed by (area, cell)
    for clips and (area, WHOLE) for areas checked whole, within a budget of segments; the oldest go first."""

    WHOLE = -1

    def __init__(self):
        self.generation: int | None = None
        self.entries: OrderedDict[tuple[int, int], tuple[int, np.ndarray]] = OrderedDict()
        self.segments = 0

    def use_generation(self, generation: int) -> None:
        if generation != self.generation:
            self.entries.clear()
            self.segments = 0
            self.generation = generation

    def get(self, area: int, cell: int, version: int) -> np.ndarray | None:
        entry = self.entries.get((area, cell)) or self.entries.get((area, self.WHOLE))
        return entry[1] if entry is not None and entry[0] == version else None

    def store(self, area: int, cell: int, version: int, segments: np.ndarray) -> None:
        previous = self.entries.pop((area, cell), None)
        if previous is not None:
            self.segments -= len(previous[1])
        self.entries[(area, cell)] = (version, segments)
        self.segments += len(segments)
        budget = settings.HEXINDEX_SHAPE_CACHE_SEGMENTS
        while self.segments > budget and self.entries:
            _, (_, dropped) = self.entries.popitem(last=False)
            self.segments -= len(dropped)


def shape_field(area: int, cell: int) -> bytes:
    """The shared outline's name in Redis: area and cell (all ones for an area checked whole)."""
    return area.to_bytes(4, "big") + (cell & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")


def encode_shape(version: int, segments: np.ndarray) -> bytes:
    return version.to_bytes(4, "little") + segments.astype("<f8").tobytes()


def decode_shape(raw: bytes) -> tuple[int, np.ndarray]:
    return int.from_bytes(raw[:4], "little"), np.frombuffer(raw, "<f8", offset=4).reshape(-1, 4)


def outline_segments(shape) -> np.ndarray:
    """Every ring's edges as rows (x0, y0, x1, y1)."""
    rings = shapely.get_rings(shapely.get_parts(shape))
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    same = ring[1:] == ring[:-1]
    return np.ascontiguousarray(np.hstack([coords[:-1][same], coords[1:][same]]))


def covered_or_unsure(lng: float, lat: float, shapes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """For each shape (its outline segments): does it cover the point, and is the point within
    EXACT_CHECK_MARGIN of its outline (then only PostGIS may decide)? Crossing-number point in polygon, vectorised
    over all shapes at once; it agrees with PostGIS for every point farther than the margin from an edge."""
    counts = np.fromiter(map(len, shapes), np.int64, len(shapes))
    segments = np.concatenate(shapes)
    owner = np.repeat(np.arange(len(shapes)), counts)
    x0, y0, x1, y1 = segments[:, 0], segments[:, 1], segments[:, 2], segments[:, 3]
    straddles = (y0 > lat) != (y1 > lat)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = x0 + (lat - y0) * (x1 - x0) / (y1 - y0)
    crossings = np.bincount(owner[straddles & (lng < x_at)], minlength=len(shapes))
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy
    t = np.clip(((lng - x0) * dx + (lat - y0) * dy) / np.where(length2 > 0, length2, 1.0), 0.0, 1.0)
    near = ((x0 + t * dx - lng) ** 2 + (y0 + t * dy - lat) ** 2) <= EXACT_CHECK_MARGIN**2
    unsure = np.bincount(owner[near], minlength=len(shapes)) > 0
    return (crossings % 2 == 1), unsure


_results = _Results()
_shapes = _Shapes()


class _Inconsistent(Exception):
    """Redis changed between the lookup's two reads (a rebuild switched, or an area was made live again)."""


def lookup(*, lat: float, lng: float, also: redis_index.Piggyback | None = None) -> LookupResult:
    """Every service area covering the point, cheapest first, then by id, as the lookup's JSON body. `also`:
    commands sent to the index's Redis with the lookup's first read (see redis_index.Piggyback)."""
    return _indexed_or_exact(lambda: _lookup_indexed(lat, lng, also), lambda: lookup_exact(lat=lat, lng=lng))


def _indexed_or_exact(indexed: Callable[[], T | None], exact: Callable[[], T]) -> T:
    """The index's answer, or the exact query's when Redis is unreachable or holds no index."""
    for _ in range(2):
        if not breaker.allows():
            break  # Redis failed moments ago: straight to PostGIS, no waiting for another timeout
        try:
            if breaker.failures:
                # Redis is back for this process: registrations made while it was away go in before it is trusted.
                _replay_deferred()
            result = indexed()
        except _Inconsistent:
            continue
        except RedisError:
            breaker.failed()
            log.warning("Redis unavailable: lookups served by PostGIS for a while", exc_info=True)
            break
        if breaker.failures:
            breaker.succeeded()
        if result is None:  # no index in Redis (it restarted empty): being rebuilt
            maintenance.request_redis_rebuild()
            break
        return result
    return exact()


def _replay_deferred() -> None:
    if invalidation.deferred_waiting():
        replayed = invalidation.replay_deferred()
        log.warning("Redis is back: replayed %d registrations made while it was away", replayed)


def lookup_exact(*, lat: float, lng: float, owner_id: int | None = None) -> LookupResult:
    """The exact PostGIS answer: one query over the GiST index of all areas. With `owner_id`, that user's areas
    whose provider is not approved yet are included too (an owner testing them)."""
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(EXACT_SQL, [lng, lat, owner_id])
        results = [AreaPayload(*row).json() for row in cursor.fetchall()]
    return LookupResult(
        render(results), len(results), "postgis", postgres_queries=1, postgres_seconds=time.perf_counter() - started
    )


def _lookup_indexed(lat: float, lng: float, also: redis_index.Piggyback | None = None) -> LookupResult | None:
    cell = h3.latlng_to_cell(lat, lng, MAX_RES)
    chain = codec.chain(cell)
    anchor = codec.anchor_name(chain[codec.ANCHOR_RES])
    started = time.perf_counter()
    point = redis_index.read_point(anchor, codec.chain_fields(chain), MAX_PENDING_CHECKS, also)
    redis_seconds = time.perf_counter() - started
    if point is None:
        return None
    if point.pending is None:  # many areas pending here (a bulk import): one exact query is as cheap
        return lookup_exact(lat=lat, lng=lng)
    _results.use_generation(point.generation)
    _shapes.use_generation(point.generation)

    result, found, checks, check_cells = _candidates(point, cell, chain, redis_seconds)
    shapes = _known_shapes(checks, check_cells)
    # One more Redis read, only for what this process has not seen yet: results, and shared outlines.
    candidates = np.concatenate([part["area"].astype(np.int64) for part in (*found, checks)])
    versions = np.concatenate([part["version"] for part in (*found, checks)])
    _fetch(point.generation, candidates, versions, checks, check_cells, shapes)
    pending_rows: list[AreaPayload] = []
    if len(checks) or point.pending:
        covered, pending_rows = _check(result, lat, lng, checks, check_cells, shapes, point.pending)
        found.append(checks[covered])

    areas = np.concatenate([part["area"].astype(np.int64) for part in found])
    result.body, result.count = _render(areas, pending_rows)
    return result


def _candidates(point: redis_index.PointRecords, cell: int, chain: list[int], redis_seconds: float):
    """A point's records as (its LookupResult so far, the records settled as covering, the boundary records that
    need an exact check, the chain cell of each check): pending areas left out, masks read at the point's digits."""
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
    result.exact_checks = len(checks)
    check_cells = np.array(chain, dtype=np.uint64).view(np.int64)[boundary_res[check]].tolist()
    return result, [interior, boundary[inside]], checks, check_cells


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
    first_bit, second_bit = first[resolutions], second[resolutions]
    inside, crossing = records["inside"], records["crossing"]
    inside1 = (inside >> first_bit) & _ONE
    crossing1 = (crossing >> first_bit) & _ONE
    inside2 = (inside >> second_bit) & _ONE
    crossing2 = (crossing >> second_bit) & _ONE
    settled_inside = (inside1 | (crossing1 & inside2)).astype(bool)
    check = (crossing1 & (inside2 ^ _ONE) & crossing2 & (inside1 ^ _ONE)).astype(bool)
    return settled_inside, check


def _known_shapes(checks: np.ndarray, cells: list[int]) -> list[np.ndarray | None]:
    """The outline each exact check needs, where this process has it."""
    return [
        _shapes.get(area, cell, version)
        for area, cell, version in zip(checks["area"].tolist(), cells, checks["version"].tolist(), strict=True)
    ]


def _fetch(generation, areas, versions, checks, cells, shapes) -> None:
    """Results and outlines missing from this process, from Redis in one round trip (when any are missing)."""
    missing = _results.missing(areas, versions)
    wanted = [i for i, shape in enumerate(shapes) if shape is None]
    if not missing.any() and not wanted:
        return
    ids = sorted(set(areas[missing].tolist()))
    check_areas = checks["area"].tolist()
    fields = [
        name
        for i in wanted
        for name in (shape_field(check_areas[i], cells[i]), shape_field(check_areas[i], _Shapes.WHOLE))
    ]
    reply = redis_index.read_results_and_shapes(ids, fields)
    if reply is None or reply[0] != generation:
        raise _Inconsistent()
    _, results, shared = reply
    expected = dict(zip(areas.tolist(), versions.tolist(), strict=False))
    for area, raw in zip(ids, results, strict=True):
        if raw is None:
            raise _Inconsistent()  # forgotten since the first read
        version, price_cents, body = codec.decode_result(raw)
        if version != expected[area]:
            raise _Inconsistent()  # made live again since the first read
        _results.store(area, version, price_cents, body)
    check_versions = checks["version"].tolist()
    for n, i in enumerate(wanted):
        for raw, cell in ((shared[2 * n], cells[i]), (shared[2 * n + 1], _Shapes.WHOLE)):
            if raw is not None:
                version, segments = decode_shape(raw)
                if version == check_versions[i]:
                    _shapes.store(check_areas[i], cell, version, segments)
                    shapes[i] = segments
                    break


def _check(result: LookupResult, lat, lng, checks: np.ndarray, cells: list[int], shapes, pending: list[int]):
    """Exact checks (covered, per check) and the rows of pending areas covering the point."""
    areas = checks["area"].astype(np.int64).tolist()
    versions = checks["version"].tolist()
    covered, unsure = _check_in_process(result, lat, lng, shapes)
    pending_rows: list[AreaPayload] = []
    if unsure or pending:
        started = time.perf_counter()
        rows = _confirm(
            lat, lng, [areas[i] for i, _ in unsure], [cells[i] for i, _ in unsure], [f for _, f in unsure], pending
        )
        result.postgres_seconds = time.perf_counter() - started
        result.postgres_queries = 1
        index_of = {(areas[i], cells[i]): i for i, _ in unsure}
        shared = {}
        for kind, area, cell, is_covered, clipped, shape, *payload in rows:
            if kind == "c":
                i = index_of[(area, cell)]
                covered[i] = is_covered
                if shape is not None:
                    _keep_shape(area, cell if clipped else _Shapes.WHOLE, versions[i], shape, shared)
            else:
                pending_rows.append(AreaPayload(area, *payload))
        _share_shapes(shared)
    return covered, pending_rows


def _check_in_process(result: LookupResult, lat, lng, shapes: list) -> tuple[np.ndarray, list[tuple[int, bool]]]:
    """Exact checks settled here from outlines seen before: (covered, per check) and the checks left to PostgreSQL
    as (check, whether to fetch its outline)."""
    covered = np.zeros(len(shapes), bool)
    seen = [i for i, shape in enumerate(shapes) if shape is not None]
    unsure = [(i, True) for i, shape in enumerate(shapes) if shape is None]
    if seen:
        inside, near = covered_or_unsure(lng, lat, [shapes[i] for i in seen])
        for i, is_inside, is_near in zip(seen, inside.tolist(), near.tolist(), strict=True):
            if is_near:
                unsure.append((i, False))  # too close to the outline to decide here: PostGIS decides
            else:
                covered[i] = is_inside
                result.checks_in_process += 1
    return covered, unsure


def _keep_shape(area: int, key_cell: int, version: int, wkb, shared: dict[bytes, bytes]) -> None:
    """An outline PostgreSQL returned: kept in this process, and collected to share with the others."""
    segments = outline_segments(shapely.from_wkb(bytes(wkb)))
    _shapes.store(area, key_cell, version, segments)
    shared[shape_field(area, key_cell)] = encode_shape(version, segments)


def _share_shapes(shared: dict[bytes, bytes]) -> None:
    if shared:
        try:
            redis_index.share_shapes(_shapes.generation, shared)
        except RedisError:
            log.warning("could not share outlines in Redis", exc_info=True)


def _render(areas: np.ndarray, pending_rows: list[AreaPayload]):
    """The body: cached results of live areas and pending areas' results, ordered by (price, id)."""
    prices = _results.price[areas]
    bodies = _results.body[areas]
    if pending_rows:
        areas = np.concatenate([areas, np.array([row.area_id for row in pending_rows], dtype=np.int64)])
        prices = np.concatenate([prices, np.array([row.price_cents for row in pending_rows], dtype=np.int64)])
        extra = np.empty(len(pending_rows), object)
        extra[:] = [row.json() for row in pending_rows]
        bodies = np.concatenate([bodies, extra])
    order = np.lexsort((areas, prices))
    return render(bodies[order].tolist()), len(areas)


def _confirm(lat, lng, areas: list[int], cells: list[int], shapes: list[bool], pending: list[int]) -> list[tuple]:
    """One prepared statement: exact checks, shapes for next time, and pending areas covering the point."""
    with connection.cursor() as cursor:
        _execute_prepared(cursor, [lat, lng, areas, cells, shapes, pending])
        return cursor.fetchall()


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
    cursor.execute(f"EXECUTE {CONFIRM_STATEMENT} (%s, %s, %s, %s, %s, %s)", params)


# --- many points at once ------------------------------------------------------------------------------------------

# The batch's one PostgreSQL query. Rows per point n: 'c' exact checks (as CONFIRM_SQL), 'p' pending areas covering
# the point, 'e' every area covering the point (points answered by the exact query as a whole).
BATCH_CONFIRM_SQL = f"""
SELECT 'c', c.n, c.area_id, c.cell,
       CASE WHEN ac.clip IS NULL OR ST_DWithin(ST_Boundary(ac.clip), pt.geom, {EXACT_CHECK_MARGIN!r})
            THEN ST_Covers(w.geometry, pt.geom) ELSE ST_Covers(ac.clip, pt.geom) END,
       ac.clip IS NOT NULL,
       CASE WHEN c.shape THEN ST_AsBinary(COALESCE(ac.clip, w.geometry)) END,
       NULL::bigint, NULL::numeric, NULL::varchar, NULL::bigint, NULL::varchar, NULL::varchar
FROM unnest(%s::int[], %s::float8[], %s::float8[], %s::bigint[], %s::bigint[], %s::bool[])
     AS c(n, lat, lng, area_id, cell, shape)
CROSS JOIN LATERAL (SELECT ST_SetSRID(ST_MakePoint(c.lng, c.lat), 4326) AS geom) pt
JOIN hexindex_areacell ac ON ac.cell = c.cell AND ac.area_id = c.area_id AND ac.boundary
JOIN areas_servicearea w ON w.id = c.area_id
UNION ALL
SELECT 'p', q.n, NULL, NULL, NULL, NULL, NULL, {PAYLOAD_COLUMNS}
FROM unnest(%s::int[], %s::float8[], %s::float8[], %s::bigint[]) AS q(n, lat, lng, area_id)
JOIN areas_servicearea a ON a.id = q.area_id
JOIN providers_provider p ON p.id = a.provider_id
WHERE {PUBLIC_SQL} AND ST_Covers(a.geometry, ST_SetSRID(ST_MakePoint(q.lng, q.lat), 4326))
UNION ALL
SELECT 'e', e.n, NULL, NULL, NULL, NULL, NULL, {PAYLOAD_COLUMNS}
FROM unnest(%s::int[], %s::float8[], %s::float8[]) AS e(n, lat, lng)
JOIN areas_servicearea a ON ST_Covers(a.geometry, ST_SetSRID(ST_MakePoint(e.lng, e.lat), 4326))
JOIN providers_provider p ON p.id = a.provider_id
WHERE {PUBLIC_SQL}
"""


@dataclass(slots=True)
class _PointWork:
    """One point of a batch between the Redis read and the answer."""

    lat: float
    lng: float
    result: LookupResult
    found: list[np.ndarray]  # records settled as covering
    checks: np.ndarray | None = None
    check_cells: list[int] | None = None
    shapes: list[np.ndarray | None] | None = None
    pending: list[int] | None = None
    covered: np.ndarray | None = None
    pending_rows: list[AreaPayload] | None = None
    exact: bool = False  # answered by the exact query as a whole
    unsure: list[tuple[int, bool]] | None = None  # checks for PostgreSQL: (check, whether to fetch its outline)


def lookup_many(points: list[tuple[float, float]]) -> list[LookupResult]:
    """`lookup` for each (lat, lng), in order: one Redis read (two when this process has not seen some results or
    outlines yet) and at most one PostgreSQL query for the whole batch."""
    if not points:
        return []
    return _indexed_or_exact(lambda: _lookup_many_indexed(points), lambda: lookup_exact_many(points))


def lookup_exact_many(points: list[tuple[float, float]]) -> list[LookupResult]:
    """The exact PostGIS answer for each point, in one query."""
    work = [_PointWork(lat, lng, LookupResult(b"", 0, "postgis"), [], exact=True) for lat, lng in points]
    _confirm_many(work)
    return [w.result for w in work]


def _lookup_many_indexed(points: list[tuple[float, float]]) -> list[LookupResult] | None:
    cells = [h3.latlng_to_cell(lat, lng, MAX_RES) for lat, lng in points]
    chains = [codec.chain(cell) for cell in cells]
    started = time.perf_counter()
    read = redis_index.read_points(
        [(codec.anchor_name(chain[codec.ANCHOR_RES]), codec.chain_fields(chain)) for chain in chains],
        MAX_PENDING_CHECKS,
    )
    redis_seconds = (time.perf_counter() - started) / len(points)
    if read is None:
        return None
    generation = read[0].generation
    _results.use_generation(generation)
    _shapes.use_generation(generation)

    work: list[_PointWork] = []
    for (lat, lng), cell, chain, point in zip(points, cells, chains, read, strict=True):
        if point.pending is None:  # many areas pending here: the exact query answers this point
            work.append(_PointWork(lat, lng, LookupResult(b"", 0, "postgis"), [], exact=True))
            continue
        result, found, checks, check_cells = _candidates(point, cell, chain, redis_seconds)
        work.append(
            _PointWork(lat, lng, result, found, checks, check_cells, _known_shapes(checks, check_cells), point.pending)
        )

    indexed = [w for w in work if not w.exact]
    if indexed:
        # One more Redis read for the whole batch: results and outlines this process has not seen yet.
        all_checks = np.concatenate([w.checks for w in indexed])
        all_cells = [cell for w in indexed for cell in w.check_cells]
        all_shapes = [shape for w in indexed for shape in w.shapes]
        parts = [part for w in indexed for part in (*w.found, w.checks)]
        _fetch(
            generation,
            np.concatenate([part["area"].astype(np.int64) for part in parts]),
            np.concatenate([part["version"] for part in parts]),
            all_checks,
            all_cells,
            all_shapes,
        )
        start = 0
        for w in indexed:
            w.shapes = all_shapes[start : start + len(w.checks)]
            start += len(w.checks)
            w.covered, w.unsure = _check_in_process(w.result, w.lat, w.lng, w.shapes)
    _confirm_many(work)
    for w in work:
        if not w.exact:
            if w.covered is not None and len(w.checks):
                w.found.append(w.checks[w.covered])
            areas = np.concatenate([part["area"].astype(np.int64) for part in w.found])
            w.result.body, w.result.count = _render(areas, w.pending_rows or [])
    return [w.result for w in work]


def _confirm_many(work: list[_PointWork]) -> None:
    """The batch's one PostgreSQL query (none when nothing needs it): exact checks left unsure, pending areas, and
    the points answered by the exact query as a whole."""
    checks: tuple[list, ...] = ([], [], [], [], [], [])
    pending: tuple[list, ...] = ([], [], [], [])
    exact: tuple[list, ...] = ([], [], [])
    for n, w in enumerate(work):
        if w.exact:
            for column, value in zip(exact, (n, w.lat, w.lng), strict=True):
                column.append(value)
            continue
        areas = w.checks["area"].tolist()
        for i, fetch in w.unsure or []:
            for column, value in zip(checks, (n, w.lat, w.lng, areas[i], w.check_cells[i], fetch), strict=True):
                column.append(value)
        for area in w.pending or []:
            for column, value in zip(pending, (n, w.lat, w.lng, area), strict=True):
                column.append(value)
    if not (checks[0] or pending[0] or exact[0]):
        return
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(BATCH_CONFIRM_SQL, [*checks, *pending, *exact])
        rows = cursor.fetchall()
    seconds = time.perf_counter() - started
    index_of = [
        {(area, w.check_cells[i]): i for i, _ in (w.unsure or []) for area in (int(w.checks["area"][i]),)}
        if not w.exact
        else None
        for w in work
    ]
    answered: dict[int, list[AreaPayload]] = {n: [] for n in exact[0]}
    shared = {}
    for kind, n, area, cell, is_covered, clipped, shape, *payload in rows:
        w = work[n]
        if kind == "c":
            i = index_of[n][(area, cell)]
            w.covered[i] = is_covered
            if shape is not None:
                _keep_shape(area, cell if clipped else _Shapes.WHOLE, int(w.checks["version"][i]), shape, shared)
        elif kind == "p":
            w.pending_rows = [*(w.pending_rows or []), AreaPayload(*payload)]
        else:
            answered[n].append(AreaPayload(*payload))
    for n, payloads in answered.items():
        payloads.sort(key=lambda row: (row.price, row.area_id))
        work[n].result.body = render([row.json() for row in payloads])
        work[n].result.count = len(payloads)
    took_part = {*checks[0], *pending[0], *exact[0]}
    for n in took_part:
        work[n].result.postgres_queries = 1
        work[n].result.postgres_seconds = seconds / len(took_part)
    _share_shapes(shared)
