"""The lookup: which service areas cover a point. Same answer as an exact PostGIS `ST_Covers` query over all
areas (`areas.selectors.areas_covering`), in the same order, much faster.

    point -> its cell chain -> ONE Redis round trip (interior and boundary candidates, cached payloads)
          -> ONE PostgreSQL query (keep candidates whose index is live; confirm boundary candidates exactly,
             against the area clipped to the cell; add areas whose index is not live yet, checked directly)
          -> JSON assembled from pre-serialised payloads

When Redis is unreachable or holds no index, the same answer comes from the exact query, and a rebuild of the
Redis side is requested.
"""

from __future__ import annotations

import logging

import orjson
from django.db import connection
from redis.exceptions import RedisError

from areas.selectors import area_payload, areas_covering
from hexindex import store
from hexindex.cells import EXACT_CHECK_MARGIN, point_cells
from hexindex.services import UNINDEXED_SQL

log = logging.getLogger(__name__)

# Candidates are trusted only when their member's version is the area's live index version. Boundary
# candidates are confirmed against the area clipped to their cell (the point's cell at the area's resolution: one
# primary-key probe), or against the whole area when the point is within EXACT_CHECK_MARGIN of the clip's
# outline (or the area was not clipped: few vertices).
CONFIRM_SQL = f"""
WITH point AS (SELECT ST_SetSRID(ST_MakePoint($2, $1), 4326) AS geom),
candidate AS (SELECT * FROM unnest($4::bigint[], $5::int[], $6::int[]) AS c(area_id, version, res))
SELECT a.id, a.price, a.payload_version, NULL, NULL, NULL, NULL
FROM candidate c JOIN areas_servicearea a ON a.id = c.area_id, point
WHERE a.indexed_version = a.geometry_version
  AND a.indexed_version % {store.VERSION_MASK + 1} = c.version
  AND (c.res < 0 OR EXISTS (
      SELECT 1 FROM hexindex_areacell ac
      WHERE ac.cell = ($3::bigint[])[c.res + 1] AND ac.area_id = c.area_id AND ac.boundary
        AND CASE WHEN ac.clip IS NULL OR ST_DWithin(ST_Boundary(ac.clip), point.geom, {EXACT_CHECK_MARGIN!r})
                 THEN ST_Covers((SELECT whole.geometry FROM areas_servicearea whole WHERE whole.id = ac.area_id),
                                point.geom)
                 ELSE ST_Covers(ac.clip, point.geom) END))
UNION ALL
-- Areas not live in the index yet (just created or changed): checked directly, with what their payload needs.
SELECT a.id, a.price, a.payload_version, a.name, p.id, p.name, p.currency
FROM areas_servicearea a JOIN providers_provider p ON p.id = a.provider_id, point
WHERE {UNINDEXED_SQL} AND ST_Covers(a.geometry, point.geom)
ORDER BY 2, 1
"""

CONFIRM_STATEMENT = "hexindex_confirm"
CONFIRM_TYPES = "(float8, float8, bigint[], bigint[], int[], int[])"

PAYLOAD_SQL = """
SELECT a.id, a.name, a.price, a.payload_version, p.id, p.name, p.currency
FROM areas_servicearea a JOIN providers_provider p ON p.id = a.provider_id
WHERE a.id = ANY(%s)
"""


def _render(payloads: list[bytes]) -> bytes:
    return b'{"count":%d,"results":[%s]}' % (len(payloads), b",".join(payloads))


def lookup_exact(*, lat: float, lng: float) -> bytes:
    """The exact PostGIS answer, as the lookup's JSON body."""
    return _render([orjson.dumps(result) for result in areas_covering(lat=lat, lng=lng)])


def _fresh_payloads(area_ids: list[int]) -> dict[int, tuple[int, bytes]]:
    with connection.cursor() as cursor:
        cursor.execute(PAYLOAD_SQL, [area_ids])
        rows = cursor.fetchall()
    return {
        area_id: (
            version,
            orjson.dumps(
                area_payload(
                    area_id=area_id,
                    name=name,
                    price=price,
                    currency=currency,
                    provider_id=provider_id,
                    provider_name=provider_name,
                )
            ),
        )
        for area_id, name, price, version, provider_id, provider_name, currency in rows
    }


def _execute_prepared(cursor, params: list) -> None:
    """Run the confirmation query as a prepared statement: planning it costs more than running it. The
    statement is prepared once per database session (it survives transactions, not reconnections)."""
    raw = connection.connection
    session = (id(raw), raw.get_backend_pid())
    if getattr(connection, "_hexindex_prepared_in", None) != session:
        # A generic plan: its shape (index probes per candidate) never depends on the values.
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE {CONFIRM_STATEMENT} {CONFIRM_TYPES} AS {CONFIRM_SQL}")
        connection._hexindex_prepared_in = session
    cursor.execute(f"EXECUTE {CONFIRM_STATEMENT} (%s, %s, %s, %s, %s, %s)", params)


def lookup(*, lat: float, lng: float) -> bytes:
    """The lookup's JSON body: `{"count": n, "results": [...]}`, cheapest first, then by id."""
    cells = point_cells(lat, lng)
    try:
        found = store.candidates(cells)
    except RedisError:
        log.warning("Redis unavailable: lookup served by PostGIS", exc_info=True)
        return lookup_exact(lat=lat, lng=lng)
    if found is None:
        try:
            if store.request_rebuild():
                from hexindex.tasks import rebuild_redis_index

                rebuild_redis_index.delay()
        except Exception:
            log.warning("could not request a Redis index rebuild", exc_info=True)
        return lookup_exact(lat=lat, lng=lng)

    # Per candidate: area, version, and for boundary candidates the resolution of the cell to confirm against
    # (-1 for interior candidates, which need no confirmation).
    ids, versions, resolutions = [], [], []
    for is_boundary, members in ((False, found.interior), (True, found.boundary)):
        for value in members:
            area_id, version, res = store.split_member(value)
            ids.append(area_id)
            versions.append(version)
            resolutions.append(res if is_boundary else -1)
    with connection.cursor() as cursor:
        _execute_prepared(cursor, [lat, lng, cells, ids, versions, resolutions])
        matches = cursor.fetchall()

    bodies: dict[int, bytes] = {}
    stale = []
    for area_id, price, payload_version, name, provider_id, provider_name, currency in matches:
        if name is not None:
            bodies[area_id] = orjson.dumps(
                area_payload(
                    area_id=area_id,
                    name=name,
                    price=price,
                    currency=currency,
                    provider_id=provider_id,
                    provider_name=provider_name,
                )
            )
            continue
        blob = found.payloads.get(area_id)
        if blob is not None:
            cached_version, body = store.split_payload(blob)
            if cached_version == payload_version:
                bodies[area_id] = body
                continue
        stale.append(area_id)
    if stale:
        fresh = _fresh_payloads(stale)
        bodies.update({area_id: body for area_id, (_, body) in fresh.items()})
        try:
            store.store_payloads(fresh)
        except RedisError:
            log.warning("could not cache lookup payloads", exc_info=True)
    return _render([bodies[row[0]] for row in matches if row[0] in bodies])
