"""The lookup: which service areas cover a point. Same answer as an exact PostGIS `ST_Covers` query over all
areas (`areas.selectors.areas_covering`), in the same order, much faster.

    point -> its cell chain -> ONE Redis round trip: live interior candidates (covered, no check needed), live
             boundary candidates, their pre-serialised results, and pending areas whose box holds the point
          -> only if there are boundary candidates or pending areas: ONE PostgreSQL query confirming the
             boundary candidates exactly (against the area clipped to the cell) and checking pending areas
             directly
          -> the results, sorted by their (price, id) prefix and spliced into the response

When Redis is unreachable, holds no index, or has too many pending areas to scan, the answer comes from the
exact query instead (and a missing index is rebuilt).
"""

from __future__ import annotations

import logging

import orjson
from django.db import connection
from redis.exceptions import RedisError

from areas.selectors import areas_covering
from hexindex import store
from hexindex.cells import EXACT_CHECK_MARGIN, point_cells
from hexindex.services import payload_blob, request_redis_rebuild

log = logging.getLogger(__name__)

# $1 lat, $2 lng, $3 the point's cells, $4/$5 boundary candidates and the resolution of their cells, $6 pending
# areas. A boundary candidate is confirmed against the area clipped to the point's cell at the area's resolution
# (one primary-key probe), or against the whole area when the point is within EXACT_CHECK_MARGIN of the clip's
# outline (or the area has few vertices and was not clipped). Pending areas are fetched by primary key behind a
# fence (OFFSET 0), and not at all when there are none: the generic plan would otherwise also scan the GiST index
# for the point, ~2 ms at 200k areas, on every lookup.
CONFIRM_SQL = f"""
WITH point AS (SELECT ST_SetSRID(ST_MakePoint($2, $1), 4326) AS geom)
SELECT c.area_id, NULL::numeric, NULL::varchar, NULL::bigint, NULL::varchar, NULL::varchar
FROM unnest($4::bigint[], $5::int[]) AS c(area_id, res), point
WHERE EXISTS (
    SELECT 1 FROM hexindex_areacell ac
    WHERE ac.cell = ($3::bigint[])[c.res + 1] AND ac.area_id = c.area_id AND ac.boundary
      AND CASE WHEN ac.clip IS NULL OR ST_DWithin(ST_Boundary(ac.clip), point.geom, {EXACT_CHECK_MARGIN!r})
               THEN ST_Covers((SELECT whole.geometry FROM areas_servicearea whole WHERE whole.id = ac.area_id),
                              point.geom)
               ELSE ST_Covers(ac.clip, point.geom) END)
UNION ALL
SELECT a.id, a.price, a.name, p.id, p.name, p.currency
FROM (SELECT * FROM areas_servicearea WHERE id = ANY($6::bigint[]) OFFSET 0) a
JOIN providers_provider p ON p.id = a.provider_id, point
WHERE cardinality($6::bigint[]) > 0 AND ST_Covers(a.geometry, point.geom)
"""
CONFIRM_STATEMENT = "hexindex_confirm"
CONFIRM_TYPES = "(float8, float8, bigint[], bigint[], int[], bigint[])"


def _render(bodies: list[bytes]) -> bytes:
    return b'{"count":%d,"results":[%s]}' % (len(bodies), b",".join(bodies))


def lookup_exact(*, lat: float, lng: float) -> bytes:
    """The exact PostGIS answer, as the lookup's JSON body."""
    return _render([orjson.dumps(result) for result in areas_covering(lat=lat, lng=lng)])


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


def lookup(*, lat: float, lng: float) -> bytes:
    """The lookup's JSON body: `{"count": n, "results": [...]}`, cheapest first, then by id."""
    cells = point_cells(lat, lng)
    try:
        found = store.candidates(lat, lng, cells)
    except RedisError:
        log.warning("Redis unavailable: lookup served by PostGIS", exc_info=True)
        return lookup_exact(lat=lat, lng=lng)
    if found is None:
        request_redis_rebuild()
        return lookup_exact(lat=lat, lng=lng)
    if found.too_many_pending:
        return lookup_exact(lat=lat, lng=lng)

    matched = list(found.interior)
    blobs = []
    if found.boundary or found.pending:
        with connection.cursor() as cursor:
            _execute_prepared(cursor, [lat, lng, cells, found.boundary, found.boundary_resolutions, found.pending])
            for area_id, price, *payload in cursor.fetchall():
                if price is None:
                    matched.append(area_id)  # a confirmed boundary candidate: its result is in Redis
                else:
                    blobs.append(payload_blob(area_id, price, *payload))  # a pending area, straight from PostGIS

    blobs += [found.payloads[area_id] for area_id in matched]
    blobs.sort()
    return _render([blob[store.SORT_KEY_LENGTH :] for blob in blobs])
