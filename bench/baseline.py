"""The baseline the index is measured against must be the strongest one query a careful engineer would write
(hexindex.exact: the covering areas first, then their providers). Its plan is checked at a busy city point with
EXPLAIN before anything is measured: a sequential scan of the areas or the providers on the hot path fails the
benchmark (PostGIS estimates one row for ST_Covers, and a plain join then scans the providers once per covering
area: the mistake that made an earlier baseline 5x slower than it needed to be)."""

from __future__ import annotations

import orjson
from django.core.management.base import CommandError
from django.db import connection

from hexindex.exact import EXACT_SQL

HOT_TABLES = {"areas_servicearea", "providers_provider"}


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def checked_plan(*, lat: float, lng: float) -> str:
    """The exact query's plan at the point, as EXPLAIN ANALYZE prints it; CommandError on a sequential scan of a
    table on the hot path."""
    sql = EXACT_SQL.replace("$1", "%s").replace("$2", "%s").replace("$3", "%s")
    params = [lat, lng, None]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        raw = cursor.fetchone()[0]
        plan = (orjson.loads(raw) if isinstance(raw, str | bytes) else raw)[0]["Plan"]
        cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}", params)
        text = "\n".join(row[0] for row in cursor.fetchall())
    scans = [
        node for node in _nodes(plan) if node["Node Type"] == "Seq Scan" and node.get("Relation Name") in HOT_TABLES
    ]
    if scans:
        tables = ", ".join(sorted({node["Relation Name"] for node in scans}))
        raise CommandError(f"the baseline query scans {tables} sequentially at ({lat}, {lng}):\n{text}")
    return text
