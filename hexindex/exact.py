"""The exact answer: one SQL query over all areas, as a careful engineer would write it without the index. The index
falls back to it (Redis down, empty or mid-rebuild), the partner API answers owners' include_mine lookups with it,
and the benchmark serves it as the baseline the index is measured against (bench/views.py): one query, three
users.

The covering areas are found first (the GiST index on the geometry), then joined to their providers: PostGIS
estimates one row for ST_Covers, and the plain join would otherwise scan providers once per covering area
(`make bench` checks the plan with EXPLAIN). Prepared once per database session.
"""

from __future__ import annotations

import time

from django.db import connection

from core.db import execute_prepared
from hexindex.payload import PAYLOAD_COLUMNS, PUBLIC_SQL, AreaPayload, LookupResult, render

EXACT_SQL = f"""
WITH a AS MATERIALIZED (
    SELECT id, price, name, provider_id FROM areas_servicearea
    WHERE ST_Covers(geometry, ST_SetSRID(ST_MakePoint($2, $1), 4326))
)
SELECT {PAYLOAD_COLUMNS}
FROM a JOIN providers_provider p ON p.id = a.provider_id
WHERE {PUBLIC_SQL} OR p.owner_id = $3
ORDER BY a.price, a.id
"""
EXACT_STATEMENT = "hexindex_exact"
EXACT_TYPES = "(float8, float8, bigint)"


def exact_rows(*, lat: float, lng: float, owner_id: int | None = None) -> list[AreaPayload]:
    """Every area covering the point whose provider is approved (or, with `owner_id`, that user's), cheapest
    first, then by id."""
    with connection.cursor() as cursor:
        execute_prepared(cursor, EXACT_STATEMENT, EXACT_TYPES, EXACT_SQL, [lat, lng, owner_id])
        return [AreaPayload(*row) for row in cursor.fetchall()]


def lookup_exact(*, lat: float, lng: float, owner_id: int | None = None) -> LookupResult:
    """The exact answer as a lookup's body. With `owner_id`, that user's areas whose provider is not approved yet
    are included too (an owner testing them)."""
    started = time.perf_counter()
    results = [row.json() for row in exact_rows(lat=lat, lng=lng, owner_id=owner_id)]
    return LookupResult(
        render(results), len(results), "postgis", postgres_queries=1, postgres_seconds=time.perf_counter() - started
    )
