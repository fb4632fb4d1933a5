"""The index's one door: what the rest of the project may call. Everything else in hexindex is internal.

- Writers (areas and providers services) call `current_boxes` before changing areas and `areas_changed` /
  `areas_deleting` inside their transaction; `IndexUnavailable` means the write must be refused.
- Readers call `lookup` (and `lookup_exact` for the reference answer).
- `index_status` describes an area's index for the API; `health` the index as a whole.
"""

from __future__ import annotations

import time

from redis.exceptions import RedisError

from core.redis import breaker
from hexindex import redis_index
from hexindex.batch import lookup_exact_many, lookup_many
from hexindex.bulk import build_index, summarise
from hexindex.exact import lookup_exact
from hexindex.invalidation import (
    INDEX_UNAVAILABLE,
    IndexBusy,
    IndexUnavailable,
    areas_changed,
    areas_deleting,
    current_boxes,
)
from hexindex.models import INDEXED_SQL, IndexStatus, indexed
from hexindex.payload import AreaPayload, LookupResult
from hexindex.redis_index import Piggyback, bucket_tag_for, bucket_tags
from hexindex.selectors import lookup

__all__ = [
    "INDEX_UNAVAILABLE",
    "AreaPayload",
    "IndexBusy",
    "IndexStatus",
    "IndexUnavailable",
    "LookupResult",
    "Piggyback",
    "areas_changed",
    "areas_deleting",
    "bucket_tag_for",
    "bucket_tags",
    "build_index",
    "build_stats",
    "circuit_state",
    "current_boxes",
    "health",
    "index_status",
    "indexed",
    "lookup",
    "lookup_exact",
    "lookup_exact_many",
    "lookup_many",
    "pending_stats",
    "summarise",
    "unindexed_count",
]


def index_status(area) -> dict:
    """An area's index as the API shows it: status, and figures of the live index only."""
    state = getattr(area, "index_state", None)
    if state is not None and state.indexed_version == area.geometry_version:
        status = IndexStatus.READY
    elif state is not None and state.failed_version == area.geometry_version:
        status = IndexStatus.FAILED
    else:
        status = IndexStatus.PENDING
    live = state if status == IndexStatus.READY else None
    return {
        "status": status.value,
        "resolution": live.resolution if live else None,
        "interior_cells": live.interior_cells if live else None,
        "boundary_cells": live.boundary_cells if live else None,
        "indexed_at": live.indexed_at if live else None,
        "error": state.error if status == IndexStatus.FAILED else None,
    }


def unindexed_count(cursor) -> int:
    """Areas whose current geometry is not indexed yet (lookups find them anyway)."""
    cursor.execute(f"SELECT count(*) FROM areas_servicearea a WHERE NOT {INDEXED_SQL}")
    return cursor.fetchone()[0]


def circuit_state() -> str:
    """This process's Redis circuit breaker: closed, open (lookups go straight to PostGIS) or half-open."""
    return breaker.state


def pending_stats() -> tuple[int, float] | None:
    """(areas pending in the index, age in seconds of the oldest registration), or None when Redis does not answer."""
    try:
        since = redis_index.pending_since()
    except RedisError:
        return None
    return len(since), (time.time() - min(since.values())) if since else 0.0


def build_stats(cursor) -> dict:
    """Unindexed and failed areas, and the builds of the last hour (count, mean and max cover seconds)."""
    cursor.execute(
        f"""
        SELECT (SELECT count(*) FROM areas_servicearea a WHERE NOT {INDEXED_SQL}),
               (SELECT count(*) FROM areas_servicearea a JOIN hexindex_areaindex s ON s.area_id = a.id
                WHERE s.failed_version = a.geometry_version),
               count(*), coalesce(avg(build_seconds), 0), coalesce(max(build_seconds), 0)
        FROM hexindex_areaindex WHERE indexed_at > now() - interval '1 hour'
        """
    )
    unindexed, failed, builds, mean_seconds, max_seconds = cursor.fetchone()
    return {
        "unindexed": unindexed,
        "failed": failed,
        "builds": builds,
        "mean_seconds": float(mean_seconds),
        "max_seconds": float(max_seconds),
    }


def health() -> tuple[str, str]:
    """('ok' or the error, and the state of the Redis index: live, rebuilding, missing or unavailable)."""
    try:
        live, building = redis_index.generations()
    except RedisError as exc:
        return f"error: {exc.__class__.__name__}: {exc}", "unavailable"
    if live is not None:
        return "ok", "live"
    return "ok", "rebuilding" if building is not None else "missing"
