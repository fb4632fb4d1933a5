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

Modules: the caches (hexindex.caches), in-process exact checks (hexindex.outlines), the exact query
(hexindex.exact), many points at once (hexindex.batch).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import h3.api.basic_int as h3
import numpy as np
import shapely
from django.db import DatabaseError, connection, connections
from redis.exceptions import RedisError

from core import db
from core.db import execute_prepared
from core.redis import SlotMoving, breaker
from hexindex import caches, codec, exact, invalidation, maintenance, outlines, redis_index
from hexindex.cells import EXACT_CHECK_MARGIN, MAX_RES, mask_bits
from hexindex.payload import PUBLIC_SQL, AreaPayload, LookupResult, render

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
       w.geometry_version + w.payload_version = c.version AND s.indexed_version = w.geometry_version,
       NULL::numeric, NULL::varchar, NULL::bigint, NULL::varchar, NULL::varchar
FROM unnest($3::bigint[], $4::bigint[], $5::bool[], $7::bigint[]) AS c(area_id, cell, shape, version)
JOIN hexindex_areacell ac ON ac.cell = c.cell AND ac.area_id = c.area_id AND ac.boundary
JOIN areas_servicearea w ON w.id = c.area_id
JOIN hexindex_areaindex s ON s.area_id = c.area_id, point
UNION ALL
SELECT 'p', a.id, NULL, NULL, NULL, NULL, NULL, a.price, a.name, p.id, p.name, p.currency
FROM (SELECT * FROM areas_servicearea WHERE id = ANY($6::bigint[]) OFFSET 0) a
JOIN providers_provider p ON p.id = a.provider_id, point
WHERE cardinality($6::bigint[]) > 0 AND {PUBLIC_SQL} AND ST_Covers(a.geometry, point.geom)
"""
CONFIRM_STATEMENT = "hexindex_confirm"
CONFIRM_TYPES = "(float8, float8, bigint[], bigint[], bool[], bigint[], bigint[])"

_ONE = np.uint64(1)
T = TypeVar("T")


class Inconsistent(Exception):
    """Redis changed between the lookup's two reads (a rebuild switched, or an area was made live again)."""


def lookup(*, lat: float, lng: float, also: redis_index.Piggyback | None = None) -> LookupResult:
    """Every service area covering the point, cheapest first, then by id, as the lookup's JSON body. `also`:
    commands sent to the index's Redis with the lookup's first read (see redis_index.Piggyback)."""
    return indexed_or_exact(lambda: _lookup_indexed(lat, lng, also), lambda: exact.lookup_exact(lat=lat, lng=lng))


def indexed_or_exact(indexed: Callable[[], T | None], exact: Callable[[], T]) -> T:
    """The index's answer, or the exact query's when Redis is unreachable or holds no index."""
    for _ in range(2):
        if not breaker.allows():
            break  # Redis failed moments ago: straight to PostGIS, no waiting for another timeout
        try:
            if breaker.failures:
                # Redis is back for this process: registrations made while it was away go in before it is trusted.
                _replay_deferred()
            result = indexed()
        except (Inconsistent, redis_index.GenerationMoved, SlotMoving):
            continue  # Redis answered, but something moved under the read: read again, then answer exactly
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
        return exact.lookup_exact(lat=lat, lng=lng)
    caches.results.use_generation(point.generation)
    caches.shapes.use_generation(point.generation)

    result, found, checks, check_cells = candidates(point, cell, chain, redis_seconds)
    shapes = known_shapes(checks, check_cells)
    # One more Redis read, only for what this process has not seen yet: results, and shared outlines.
    areas = np.concatenate([part["area"].astype(np.int64) for part in (*found, checks)])
    versions = np.concatenate([part["version"] for part in (*found, checks)])
    fetch_missing([FetchJob(point.bucket, point.generation, areas, versions, checks, check_cells, shapes)])
    pending_rows: list[AreaPayload] = []
    if len(checks) or point.pending:
        covered, pending_rows = _check(point.bucket, result, lat, lng, checks, check_cells, shapes, point.pending)
        found.append(checks[covered])

    areas = np.concatenate([part["area"].astype(np.int64) for part in found])
    result.body, result.count = render_body(areas, pending_rows)
    return result


def candidates(point: redis_index.PointRecords, cell: int, chain: list[int], redis_seconds: float):
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


def known_shapes(checks: np.ndarray, cells: list[int]) -> list[np.ndarray | None]:
    """The outline each exact check needs, where this process has it."""
    return [
        caches.shapes.get(area, cell, version)
        for area, cell, version in zip(checks["area"].tolist(), cells, checks["version"].tolist(), strict=True)
    ]


@dataclass(slots=True)
class FetchJob:
    """What one bucket's points found: their candidate records (areas, versions) and exact checks (with their
    chain cells and the outlines this process already has, None where it has not)."""

    bucket: int
    generation: int
    areas: np.ndarray
    versions: np.ndarray
    checks: np.ndarray
    cells: list[int]
    shapes: list[np.ndarray | None]


def fetch_missing(jobs: list[FetchJob]) -> None:
    """Results and outlines missing from this process, from their buckets in one round trip per Redis node (none
    when nothing is missing). Fills the outlines found into each job's `shapes`."""
    wanted: dict[int, tuple[int, list[int], list[bytes]]] = {}
    plans = []
    for job in jobs:
        missing = caches.results.missing(job.areas, job.versions)
        shapes_wanted = [i for i, shape in enumerate(job.shapes) if shape is None]
        if not missing.any() and not shapes_wanted:
            continue
        ids = sorted(set(job.areas[missing].tolist()))
        check_areas = job.checks["area"].tolist()
        fields = [
            name
            for i in shapes_wanted
            for name in (
                codec.shape_field(check_areas[i], job.cells[i]),
                codec.shape_field(check_areas[i], caches.Shapes.WHOLE),
            )
        ]
        generation, known_ids, known_fields = wanted.get(job.bucket, (job.generation, [], []))
        if generation != job.generation:
            raise Inconsistent()
        wanted[job.bucket] = (generation, sorted(set(known_ids) | set(ids)), known_fields + fields)
        plans.append((job, ids, shapes_wanted, fields))
    if not wanted:
        return
    replies = redis_index.read_results_and_shapes(wanted)
    for job, ids, shapes_wanted, fields in plans:
        results, shared = replies[job.bucket]
        result_of = dict(zip(wanted[job.bucket][1], results, strict=True))
        shape_of = dict(zip(wanted[job.bucket][2], shared, strict=True))
        expected = dict(zip(job.areas.tolist(), job.versions.tolist(), strict=False))
        for area in ids:
            raw = result_of[area]
            if raw is None:
                raise Inconsistent()  # forgotten since the first read
            version, price_cents, body = codec.decode_result(raw)
            if version != expected[area]:
                raise Inconsistent()  # made live again since the first read
            caches.results.store(area, version, price_cents, body)
        check_areas, check_versions = job.checks["area"].tolist(), job.checks["version"].tolist()
        for n, i in enumerate(shapes_wanted):
            for name, cell in ((fields[2 * n], job.cells[i]), (fields[2 * n + 1], caches.Shapes.WHOLE)):
                raw = shape_of[name]
                if raw is not None:
                    version, segments = codec.decode_shape(raw)
                    if version == check_versions[i]:
                        caches.shapes.store(check_areas[i], cell, version, segments)
                        job.shapes[i] = segments
                        break


def _check(bucket: int, result: LookupResult, lat, lng, checks: np.ndarray, cells: list[int], shapes, pending):
    """Exact checks (covered, per check) and the rows of pending areas covering the point."""
    areas = checks["area"].astype(np.int64).tolist()
    versions = checks["version"].tolist()
    covered, unsure = check_in_process(result, lat, lng, shapes)
    pending_rows: list[AreaPayload] = []
    if unsure or pending:
        started = time.perf_counter()
        index_of = {(areas[i], cells[i]): i for i, _ in unsure}
        rows = confirm(lat, lng, [(areas[i], cells[i], fetch, versions[i]) for i, fetch in unsure], pending, result)
        result.postgres_seconds = time.perf_counter() - started
        shared = {}
        for kind, area, cell, is_covered, clipped, shape, fresh, *payload in rows:
            if kind == "c":
                i = index_of[(area, cell)]
                covered[i] = is_covered
                if shape is not None and fresh:  # an outline newer than the record is used once, not kept
                    keep_shape(area, cell if clipped else caches.Shapes.WHOLE, versions[i], shape, shared)
            else:
                pending_rows.append(AreaPayload(area, *payload))
        share_shapes({bucket: shared})
    return covered, pending_rows


def confirm(lat, lng, checks: list[tuple[int, int, bool, int]], pending: list[int], result: LookupResult) -> list:
    """Rows of the confirm query for the exact checks (area, cell, fetch its outline, the record's version) and the
    pending areas. Checks go to this process's read replica first, if any: a row it returns is used only when the
    replica holds the versions the index's record was built from; the rest, and pending areas (written moments
    ago), are asked of the primary."""
    rows: list[tuple] = []
    if checks and (alias := db.replicas.alias()):
        try:
            with connections[alias].cursor() as cursor:
                replica_rows = _confirm(cursor, lat, lng, checks, [])
            result.postgres_queries += 1
            rows = [row for row in replica_rows if row[6]]
            answered = {(row[1], row[2]) for row in rows}
            checks = [check for check in checks if (check[0], check[1]) not in answered]
        except DatabaseError as exc:
            db.replicas.failed(alias, exc)
    if checks or pending:
        with connection.cursor() as cursor:
            rows += _confirm(cursor, lat, lng, checks, pending)
        result.postgres_queries += 1
    return rows


def _confirm(cursor, lat, lng, checks: list[tuple[int, int, bool, int]], pending: list[int]) -> list[tuple]:
    """One prepared statement: exact checks, outlines for next time, and pending areas covering the point."""
    areas, cells, fetch, versions = (list(column) for column in zip(*checks, strict=True)) if checks else ([],) * 4
    execute_prepared(
        cursor, CONFIRM_STATEMENT, CONFIRM_TYPES, CONFIRM_SQL, [lat, lng, areas, cells, fetch, pending, versions]
    )
    return cursor.fetchall()


def check_in_process(result: LookupResult, lat, lng, shapes: list) -> tuple[np.ndarray, list[tuple[int, bool]]]:
    """Exact checks settled here from outlines seen before: (covered, per check) and the checks left to PostgreSQL
    as (check, whether to fetch its outline)."""
    covered = np.zeros(len(shapes), bool)
    seen = [i for i, shape in enumerate(shapes) if shape is not None]
    unsure = [(i, True) for i, shape in enumerate(shapes) if shape is None]
    if seen:
        inside, near = outlines.covered_or_unsure(lng, lat, [shapes[i] for i in seen])
        for i, is_inside, is_near in zip(seen, inside.tolist(), near.tolist(), strict=True):
            if is_near:
                unsure.append((i, False))  # too close to the outline to decide here: PostGIS decides
            else:
                covered[i] = is_inside
                result.checks_in_process += 1
    return covered, unsure


def keep_shape(area: int, key_cell: int, version: int, wkb, shared: dict[bytes, bytes]) -> None:
    """An outline PostgreSQL returned: kept in this process, and collected to share with the others."""
    segments = outlines.outline_segments(shapely.from_wkb(bytes(wkb)))
    caches.shapes.store(area, key_cell, version, segments)
    shared[codec.shape_field(area, key_cell)] = codec.encode_shape(version, segments)


def share_shapes(shared: dict[int, dict[bytes, bytes]]) -> None:
    """Outlines fetched from PostgreSQL, by bucket, for the other web processes (best effort)."""
    if any(shared.values()):
        try:
            redis_index.share_shapes(caches.shapes.generation, shared)
        except RedisError:
            log.warning("could not share outlines in Redis", exc_info=True)


def render_body(areas: np.ndarray, pending_rows: list[AreaPayload]):
    """The body: cached results of live areas and pending areas' results, ordered by (price, id)."""
    prices = caches.results.price[areas]
    bodies = caches.results.body[areas]
    if pending_rows:
        areas = np.concatenate([areas, np.array([row.area_id for row in pending_rows], dtype=np.int64)])
        prices = np.concatenate([prices, np.array([row.price_cents for row in pending_rows], dtype=np.int64)])
        extra = np.empty(len(pending_rows), object)
        extra[:] = [row.json() for row in pending_rows]
        bodies = np.concatenate([bodies, extra])
    order = np.lexsort((areas, prices))
    return render(bodies[order].tolist()), len(areas)
