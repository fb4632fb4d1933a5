"""Many points at once (`lookup_many`: batches, and a trip's two ends): the single lookup's steps
(hexindex.selectors) for all the points together. One Redis read for every point's anchor hash, one more for the
results and outlines this process lacks for any of them, and every exact check left unsure, every pending area and
every point answered exactly as a whole in ONE PostgreSQL query (one row per point and check)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import h3.api.basic_int as h3
import numpy as np
from django.db import DatabaseError, connection, connections

from core import db
from hexindex import caches, codec, redis_index, selectors
from hexindex.cells import EXACT_CHECK_MARGIN, MAX_RES
from hexindex.payload import PAYLOAD_COLUMNS, PUBLIC_SQL, AreaPayload, LookupResult, render

# The batch's one PostgreSQL query. Rows per point n: 'c' exact checks (as CONFIRM_SQL, with whether the database
# holds the versions the record was built from), 'p' pending areas covering the point, 'e' every area covering the
# point (points answered by the exact query as a whole).
BATCH_CONFIRM_SQL = f"""
SELECT 'c', c.n, c.area_id, c.cell,
       CASE WHEN ac.clip IS NULL OR ST_DWithin(ST_Boundary(ac.clip), pt.geom, {EXACT_CHECK_MARGIN!r})
            THEN ST_Covers(w.geometry, pt.geom) ELSE ST_Covers(ac.clip, pt.geom) END,
       ac.clip IS NOT NULL,
       CASE WHEN c.shape THEN ST_AsBinary(COALESCE(ac.clip, w.geometry)) END,
       w.geometry_version + w.payload_version = c.version AND s.indexed_version = w.geometry_version,
       NULL::bigint, NULL::numeric, NULL::varchar, NULL::bigint, NULL::varchar, NULL::varchar
FROM unnest(%s::int[], %s::float8[], %s::float8[], %s::bigint[], %s::bigint[], %s::bool[], %s::bigint[])
     AS c(n, lat, lng, area_id, cell, shape, version)
CROSS JOIN LATERAL (SELECT ST_SetSRID(ST_MakePoint(c.lng, c.lat), 4326) AS geom) pt
JOIN hexindex_areacell ac ON ac.cell = c.cell AND ac.area_id = c.area_id AND ac.boundary
JOIN areas_servicearea w ON w.id = c.area_id
JOIN hexindex_areaindex s ON s.area_id = c.area_id
UNION ALL
SELECT 'p', q.n, NULL, NULL, NULL, NULL, NULL, NULL, {PAYLOAD_COLUMNS}
FROM unnest(%s::int[], %s::float8[], %s::float8[], %s::bigint[]) AS q(n, lat, lng, area_id)
JOIN areas_servicearea a ON a.id = q.area_id
JOIN providers_provider p ON p.id = a.provider_id
WHERE {PUBLIC_SQL} AND ST_Covers(a.geometry, ST_SetSRID(ST_MakePoint(q.lng, q.lat), 4326))
UNION ALL
SELECT 'e', e.n, NULL, NULL, NULL, NULL, NULL, NULL, {PAYLOAD_COLUMNS}
FROM unnest(%s::int[], %s::float8[], %s::float8[]) AS e(n, lat, lng)
JOIN areas_servicearea a ON ST_Covers(a.geometry, ST_SetSRID(ST_MakePoint(e.lng, e.lat), 4326))
JOIN providers_provider p ON p.id = a.provider_id
WHERE {PUBLIC_SQL}
"""


def _query_replica_first(checks: tuple[list, ...], pending: tuple[list, ...], exact: tuple[list, ...]):
    """The batch query's rows, and how many queries it took: exact checks on this process's read replica first (if
    any), kept where the replica holds the versions the index's records were built from; the other checks, pending
    areas and exact points on the primary (they need its latest commit)."""
    rows: list[tuple] = []
    queried = 0
    if checks[0] and (alias := db.replicas.alias()):
        try:
            with connections[alias].cursor() as cursor:
                cursor.execute(BATCH_CONFIRM_SQL, [*checks, *([],) * 4, *([],) * 3])
                rows = [row for row in cursor.fetchall() if row[7]]
            queried += 1
            answered = {(row[1], row[2], row[3]) for row in rows}
            keep = [i for i, key in enumerate(zip(checks[0], checks[3], checks[4], strict=True)) if key not in answered]
            checks = tuple([column[i] for i in keep] for column in checks)
        except DatabaseError as exc:
            db.replicas.failed(alias, exc)
    if checks[0] or pending[0] or exact[0]:
        with connection.cursor() as cursor:
            cursor.execute(BATCH_CONFIRM_SQL, [*checks, *pending, *exact])
            rows += cursor.fetchall()
        queried += 1
    return rows, queried


@dataclass(slots=True)
class _PointWork:
    """One point of a batch between the Redis read and the answer."""

    lat: float
    lng: float
    result: LookupResult
    bucket: int
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
    return selectors.indexed_or_exact(lambda: _lookup_many_indexed(points), lambda: lookup_exact_many(points))


def lookup_exact_many(points: list[tuple[float, float]]) -> list[LookupResult]:
    """The exact PostGIS answer for each point, in one query."""
    work = [_PointWork(lat, lng, LookupResult(b"", 0, "postgis"), -1, [], exact=True) for lat, lng in points]
    _confirm_many(work)
    return [w.result for w in work]


def _lookup_many_indexed(points: list[tuple[float, float]]) -> list[LookupResult] | None:
    cells = [h3.latlng_to_cell(lat, lng, MAX_RES) for lat, lng in points]
    chains = [codec.chain(cell) for cell in cells]
    started = time.perf_counter()
    read = redis_index.read_points(
        [(codec.anchor_name(chain[codec.ANCHOR_RES]), codec.chain_fields(chain)) for chain in chains],
        selectors.MAX_PENDING_CHECKS,
    )
    redis_seconds = (time.perf_counter() - started) / len(points)
    if read is None:
        return None
    generation = read[0].generation
    caches.results.use_generation(generation)
    caches.shapes.use_generation(generation)

    work: list[_PointWork] = []
    for (lat, lng), cell, chain, point in zip(points, cells, chains, read, strict=True):
        if point.pending is None:  # many areas pending here: the exact query answers this point
            work.append(_PointWork(lat, lng, LookupResult(b"", 0, "postgis"), point.bucket, [], exact=True))
            continue
        result, found, checks, check_cells = selectors.candidates(point, cell, chain, redis_seconds)
        work.append(
            _PointWork(
                lat,
                lng,
                result,
                point.bucket,
                found,
                checks,
                check_cells,
                selectors.known_shapes(checks, check_cells),
                point.pending,
            )
        )

    indexed = [w for w in work if not w.exact]
    if indexed:
        # One more Redis read for the whole batch (one round trip per node): results and outlines this process has
        # not seen yet, from each point's bucket.
        generation_of = {point.bucket: point.generation for point in read}
        jobs = []
        for w in indexed:
            parts = (*w.found, w.checks)
            jobs.append(
                selectors.FetchJob(
                    w.bucket,
                    generation_of[w.bucket],
                    np.concatenate([part["area"].astype(np.int64) for part in parts]),
                    np.concatenate([part["version"] for part in parts]),
                    w.checks,
                    w.check_cells,
                    w.shapes,
                )
            )
        selectors.fetch_missing(jobs)
        for w in indexed:
            w.covered, w.unsure = selectors.check_in_process(w.result, w.lat, w.lng, w.shapes)
    _confirm_many(work)
    for w in work:
        if not w.exact:
            if w.covered is not None and len(w.checks):
                w.found.append(w.checks[w.covered])
            areas = np.concatenate([part["area"].astype(np.int64) for part in w.found])
            w.result.body, w.result.count = selectors.render_body(areas, w.pending_rows or [])
    return [w.result for w in work]


def _confirm_many(work: list[_PointWork]) -> None:
    """The batch's one PostgreSQL query (none when nothing needs it): exact checks left unsure, pending areas, and
    the points answered by the exact query as a whole."""
    checks: tuple[list, ...] = ([], [], [], [], [], [], [])
    pending: tuple[list, ...] = ([], [], [], [])
    exact: tuple[list, ...] = ([], [], [])
    for n, w in enumerate(work):
        if w.exact:
            for column, value in zip(exact, (n, w.lat, w.lng), strict=True):
                column.append(value)
            continue
        areas, versions = w.checks["area"].tolist(), w.checks["version"].tolist()
        for i, fetch in w.unsure or []:
            row = (n, w.lat, w.lng, areas[i], w.check_cells[i], fetch, versions[i])
            for column, value in zip(checks, row, strict=True):
                column.append(value)
        for area in w.pending or []:
            for column, value in zip(pending, (n, w.lat, w.lng, area), strict=True):
                column.append(value)
    if not (checks[0] or pending[0] or exact[0]):
        return
    started = time.perf_counter()
    rows, queried = _query_replica_first(checks, pending, exact)
    seconds = time.perf_counter() - started
    index_of = [
        {(area, w.check_cells[i]): i for i, _ in (w.unsure or []) for area in (int(w.checks["area"][i]),)}
        if not w.exact
        else None
        for w in work
    ]
    answered: dict[int, list[AreaPayload]] = {n: [] for n in exact[0]}
    shared: dict[int, dict[bytes, bytes]] = {}
    for kind, n, area, cell, is_covered, clipped, shape, fresh, *payload in rows:
        w = work[n]
        if kind == "c":
            i = index_of[n][(area, cell)]
            w.covered[i] = is_covered
            if shape is not None and fresh:  # an outline newer than the record is used once, not kept
                selectors.keep_shape(
                    area,
                    cell if clipped else caches.Shapes.WHOLE,
                    int(w.checks["version"][i]),
                    shape,
                    shared.setdefault(w.bucket, {}),
                )
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
        work[n].result.postgres_queries = queried
        work[n].result.postgres_seconds = seconds / len(took_part)
    selectors.share_shapes(shared)
