"""Keeping the index whole: rebuilding its Redis side from PostgreSQL, and the sweep that reconciles the two.

Redis is derived data. A rebuild writes a new generation from one snapshot of the cell table, then switches
lookups to it atomically; meanwhile lookups use the old generation (or PostGIS), builds keep making areas live
in the old one and note them, and those areas are copied into the new generation before the switch. The sweep
runs every minute: it rebuilds a missing index, re-queues areas stuck unindexed or pending, and drops or
refreshes live entries whose area is gone or was changed behind the services' back (raw SQL, a Redis failover
that lost recent writes).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import h3.api.basic_int as h3
import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from redis.exceptions import RedisError

from hexindex import build, celltable, codec, invalidation, queue, redis_index
from hexindex.models import INDEXED_SQL, AreaIndex
from hexindex.payload import PAYLOAD_COLUMNS, PUBLIC_SQL, AreaPayload

log = logging.getLogger(__name__)

# How long the sweep leaves queued index work alone before sending it again (settings.HEXINDEX_REENQUEUE_AFTER).
REENQUEUE_AFTER = timedelta(seconds=settings.HEXINDEX_REENQUEUE_AFTER)
FAILED_RETRY_AFTER = timedelta(seconds=settings.HEXINDEX_FAILED_RETRY_AFTER)
RETRY_MAX_WAIT = timedelta(seconds=settings.HEXINDEX_RETRY_MAX_WAIT)
REBUILD_LOCK_SECONDS = 600
MAX_FINISH_ROUNDS = 20

_INDEXED_ROWS_SQL = f"""
SELECT a.geometry_version, a.payload_version, {PAYLOAD_COLUMNS}
FROM areas_servicearea a JOIN providers_provider p ON p.id = a.provider_id
WHERE {INDEXED_SQL} AND {PUBLIC_SQL}
ORDER BY a.id
"""
_UNINDEXED_IDS_SQL = f"SELECT a.id FROM areas_servicearea a WHERE NOT {INDEXED_SQL} ORDER BY a.id"


@dataclass
class RebuildReport:
    generation: int | None
    records: int = 0
    fields: int = 0
    live: int = 0
    pending: int = 0
    seconds: float = 0.0
    replaced: int | None = None


@redis_index.bulk
def rebuild_redis(*, progress: Callable[[str], None] | None = None) -> RebuildReport:
    """Rebuild the Redis side from PostgreSQL into a new generation and switch lookups to it (see module
    docstring). Returns a report with generation None when another rebuild holds the lock."""
    started = time.perf_counter()
    say = progress or (lambda message: None)
    tokens = redis_index.pending_tokens_all()  # before reading the database, like any build
    lock = redis_index.begin_rebuild(REBUILD_LOCK_SECONDS)
    if lock is None:
        return RebuildReport(generation=None)
    generation = lock.generation
    report = RebuildReport(generation=generation)
    try:
        nested = connection.in_atomic_block
        with transaction.atomic(), connection.cursor() as cursor:
            if not nested:  # one snapshot for the areas and their cells (a caller's transaction already is one)
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cursor.execute(_INDEXED_ROWS_SQL)
            rows = cursor.fetchall()
            cursor.execute(_UNINDEXED_IDS_SQL)
            waiting = [row[0] for row in cursor.fetchall()]
            say(f"reading the cell table ({len(rows)} indexed areas)")
            table = celltable.read_all()
        say(f"writing {len(table.cell)} records")
        report.records, report.fields = _write_generation(generation, rows, table, lock)
        del table
        report.live = len(rows)
        # Areas not indexed must be pending, whoever changed them (after a restart Redis has no registrations).
        unregistered = [area_id for area_id in waiting if area_id not in tokens]
        for start in range(0, len(unregistered), 5000):
            chunk = unregistered[start : start + 5000]
            redis_index.mark_pending(invalidation.registrations(invalidation.current_boxes(chunk, lock=False)))
        report.pending = len(waiting)
        say("switching lookups to the new generation")
        report.replaced = _finish(lock)
    except BaseException:
        _best_effort(redis_index.abandon_rebuild, lock)
        raise
    # Areas whose result the snapshot holds, and which did not change since their token was read, are live now.
    indexed = {row[2] for row in rows}
    redis_index.unpend({area_id: token for area_id, token in tokens.items() if area_id in indexed})
    if report.replaced is not None and report.replaced != generation:
        redis_index.drop_generation(report.replaced)
    report.seconds = time.perf_counter() - started
    return report


def _write_generation(
    generation: int, rows: list[tuple], table: celltable.AllCells, lock: redis_index.RebuildLock
) -> tuple[int, int]:
    """Records, placements and results of the indexed areas in their buckets, and their shards' records, from the
    snapshot. Returns (records, fields)."""
    area_ids = np.array([row[2] for row in rows], dtype=np.int64)
    versions_of = np.array([codec.area_version(row[0], row[1]) for row in rows], dtype=np.uint32)
    # Only rows of areas indexed in the snapshot: others are pending, and their rows may be of an older geometry.
    position = np.minimum(np.searchsorted(area_ids, table.area), max(len(area_ids) - 1, 0))
    keep = (area_ids[position] == table.area) if len(area_ids) else np.zeros(len(table.area), bool)
    cell, area = table.cell[keep], table.area[keep]
    boundary, inside, crossing = table.boundary[keep], table.inside[keep], table.crossing[keep]
    version = versions_of[position[keep]]

    fields = 0
    placed: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for kind, dtype, selected in (
        (codec.KIND_INTERIOR, codec.INTERIOR, ~boundary),
        (codec.KIND_BOUNDARY, codec.BOUNDARY, boundary),
    ):
        records = np.zeros(int(selected.sum()), dtype)
        records["area"], records["version"] = area[selected], version[selected]
        if kind == codec.KIND_BOUNDARY:
            records["inside"], records["crossing"] = inside[selected], crossing[selected]
        written, placements = _write_fields(generation, cell[selected], records, kind)
        fields += written
        placed.append(placements)
        if not redis_index.extend_rebuild(lock, REBUILD_LOCK_SECONDS):
            raise RuntimeError(f"the rebuild of generation {generation} lost its lock")

    payloads, versions = {}, {}
    for geometry_version, payload_version, *columns in rows:
        payload = AreaPayload(*columns)
        payloads[columns[0]] = codec.encode_result(
            codec.area_version(geometry_version, payload_version), payload.price_cents, payload.json()
        )
        versions[columns[0]] = codec.encode_versions(geometry_version, payload_version)
    record_buckets = _write_placements(generation, placed, payloads)
    redis_index.write_areas(generation, record_buckets, versions)
    return int(keep.sum()), fields


_PLACEMENT = np.dtype([("anchor", "S15"), ("cell", ">u8"), ("kind", "S1")])  # 24 bytes: apply_bucket.lua reads it


def _write_placements(
    generation: int, placed: list[tuple[np.ndarray, np.ndarray, np.ndarray]], payloads: dict[int, bytes]
) -> dict[int, bytes]:
    """Per bucket, each area's placements (where its records are) and its cached result. Returns area -> the
    buckets holding its records (packed)."""
    buckets = np.concatenate([part[0] for part in placed]) if placed else np.zeros(0, np.int64)
    areas = np.concatenate([part[1] for part in placed]) if placed else np.zeros(0, np.int64)
    units = np.concatenate([part[2] for part in placed]) if placed else np.zeros(0, _PLACEMENT)
    order = np.lexsort((areas, buckets))
    buckets, areas, units = buckets[order], areas[order], units[order]
    raw = units.tobytes()
    starts = (
        np.flatnonzero(np.r_[True, (buckets[1:] != buckets[:-1]) | (areas[1:] != areas[:-1])]) if len(order) else []
    )
    ends = np.r_[starts[1:], len(order)] if len(order) else []
    by_bucket: dict[int, dict[int, bytes]] = {}
    record_buckets: dict[int, list[int]] = {}
    for first, last in zip(list(starts), list(ends), strict=True):
        bucket, area_id = int(buckets[first]), int(areas[first])
        by_bucket.setdefault(bucket, {})[area_id] = raw[first * 24 : last * 24]
        record_buckets.setdefault(area_id, []).append(bucket)
        if sum(len(part) for part in by_bucket.values()) >= 20_000:
            redis_index.write_placements(generation, by_bucket, payloads)
            by_bucket = {}
    redis_index.write_placements(generation, by_bucket, payloads)
    return {area_id: redis_index.pack_buckets(numbers) for area_id, numbers in record_buckets.items()}


def _write_fields(
    generation: int, cells: np.ndarray, records: np.ndarray, kind: bytes
) -> tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Group records by (anchor, cell), areas ascending within a field, and write them anchor by anchor. Returns the
    number of fields and the placements written (bucket, area, placement unit per record)."""
    if not len(cells):
        return 0, (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, _PLACEMENT))
    # Cells coarser than the anchor resolution are copied into every anchor below them.
    resolution = (cells >> np.uint64(52)) & np.uint64(0xF)
    coarse = resolution < codec.ANCHOR_RES
    anchors = codec.parents(cells, codec.ANCHOR_RES)
    if coarse.any():
        extra_rows, extra_anchors = [], []
        for row in np.flatnonzero(coarse).tolist():
            below = h3.cell_to_children(int(cells[row]), codec.ANCHOR_RES)
            extra_rows += [row] * len(below)
            extra_anchors += below
        fine = np.flatnonzero(~coarse)
        rows_all = np.r_[fine, np.array(extra_rows, dtype=np.int64)]
        anchors = np.r_[anchors[fine], np.array(extra_anchors, dtype=np.uint64)]
        cells, records = cells[rows_all], records[rows_all]
    order = np.lexsort((records["area"], cells, anchors))
    cells, records, anchors = cells[order], records[order], anchors[order]

    unique_anchors, anchor_index = np.unique(anchors, return_inverse=True)
    names = [codec.anchor_name(int(anchor)) for anchor in unique_anchors.tolist()]
    bucket_of_anchor = np.array([redis_index.bucket_of(name) for name in names], dtype=np.int64)
    units = np.zeros(len(cells), _PLACEMENT)
    units["anchor"] = np.array([name.encode() for name in names], dtype="S15")[anchor_index]
    units["cell"], units["kind"] = cells, kind
    placements = (bucket_of_anchor[anchor_index], records["area"].astype(np.int64), units)

    new_field = np.r_[True, (cells[1:] != cells[:-1]) | (anchors[1:] != anchors[:-1])]
    starts = np.flatnonzero(new_field)
    ends = np.r_[starts[1:], len(cells)]
    raw = records.tobytes()
    size = records.dtype.itemsize
    field_names = cells[starts].astype(">u8").tobytes()
    field_anchors = anchors[starts]
    batch: dict[str, dict[bytes, bytes]] = {}
    batched = 0
    current_anchor, current_name = None, ""
    for index, (first, last, anchor) in enumerate(
        zip(starts.tolist(), ends.tolist(), field_anchors.tolist(), strict=True)
    ):
        if anchor != current_anchor:
            current_anchor, current_name = anchor, codec.anchor_name(anchor)
            batch.setdefault(current_name, {})
        batch[current_name][field_names[index * 8 : index * 8 + 8] + kind] = raw[first * size : last * size]
        batched += 1
        if batched >= 50_000:
            redis_index.write_records(generation, batch)
            batch, batched, current_anchor = {}, 0, None
    redis_index.write_records(generation, batch)
    return len(starts), placements


def _finish(lock: redis_index.RebuildLock) -> int | None:
    """Copy areas made live meanwhile into the new generation, then switch every bucket's lookups, then the
    writers. Returns the replaced generation."""
    previous = redis_index.live_generation()
    for _ in range(MAX_FINISH_ROUNDS):
        while dirty := redis_index.take_dirty(lock.generation):
            _copy_into(lock.generation, dirty)
        if not redis_index.extend_rebuild(lock, REBUILD_LOCK_SECONDS):
            raise RuntimeError(f"the rebuild of generation {lock.generation} lost its lock")
        if redis_index.switch_buckets(lock):
            return previous
    raise RuntimeError(f"areas kept changing while generation {lock.generation} was switched to; try again")


def _copy_into(generation: int, area_ids: list[int]) -> None:
    """Bring areas in a generation being built up to date with the database (their current index, or nothing)."""
    with connection.cursor() as cursor:
        cursor.execute(build.LIVE_ROWS_SQL, [area_ids])
        # Areas of providers not approved are copied as nothing: they are not public.
        rows = {row[3]: (row[1], row[2], AreaPayload(*row[3:])) for row in cursor.fetchall() if row[0]}
    covers = celltable.covers(list(rows))
    updates = []
    for area_id in area_ids:
        if area_id in rows and area_id in covers:
            geometry_version, payload_version, payload = rows[area_id]
            updates.append(
                build.live_update(
                    area_id, covers[area_id], payload, geometry_version, payload_version, token="*", clear_pending=False
                )
            )
        else:
            updates.append(build.forget_update(area_id, clear_pending=False))
    redis_index.apply(generation, updates)


def request_redis_rebuild() -> bool:
    """Queue a rebuild of the Redis side, unless one was requested within the last minute. True if queued; a
    Redis or broker failure is logged, not raised (the next lookup or sweep asks again)."""
    try:
        if not redis_index.request_rebuild():
            return False
    except Exception:
        log.warning("could not request a Redis index rebuild", exc_info=True)
        return False
    return queue.send(queue.REBUILD_REDIS)


# --- the sweep -------------------------------------------------------------------------------------------------

_SWEEP_SQL = f"""
SELECT a.id, a.geometry_version, a.payload_version, s.indexed_version, s.enqueued_at, s.failed_version,
       COALESCE(s.attempts, 0), {PUBLIC_SQL}
FROM areas_servicearea a JOIN providers_provider p ON p.id = a.provider_id
LEFT JOIN hexindex_areaindex s ON s.area_id = a.id
"""


def retry_wait(attempts: int, *, failed: bool) -> timedelta:
    """How long the sweep leaves an area's queued index work alone before sending it again: REENQUEUE_AFTER
    (FAILED_RETRY_AFTER after a failed build), doubled for every further attempt that came to nothing (a failed
    build, or work the sweep sent that never came back), at most RETRY_MAX_WAIT. Work that is lost or kills its
    worker every time is thus not sent again every minute forever."""
    base = FAILED_RETRY_AFTER if failed else REENQUEUE_AFTER
    return min(base * 2 ** min(max(attempts - 1, 0), 20), RETRY_MAX_WAIT)


@redis_index.bulk
def sweep(*, limit: int = 1000) -> dict:
    """The backstop, run every minute (see the module docstring). Returns what it did."""
    done = {"rebuild_requested": False, "forgotten": 0, "hidden": 0, "reenqueued": 0, "refreshed": 0}
    try:
        generation = redis_index.live_generation()
        if generation is None:
            done["rebuild_requested"] = request_redis_rebuild()
            return done
        pending = redis_index.pending_since()
        live = redis_index.live_versions(generation)
    except RedisError:
        log.warning("sweep could not reach Redis", exc_info=True)
        return done

    with connection.cursor() as cursor:
        cursor.execute(_SWEEP_SQL)
        areas = {row[0]: row[1:] for row in cursor.fetchall()}

    # Live or pending entries of areas that no longer exist.
    gone = sorted((set(live) | set(pending)) - set(areas))[:limit]
    _best_effort(build.forget, gone)
    done["forgotten"] = len(gone)

    now = timezone.now()
    pending_cutoff = time.time() - REENQUEUE_AFTER.total_seconds()
    unregistered, due, refresh, hidden, settled = [], [], set(), [], []
    for area_id, row in areas.items():
        geometry_version, payload_version, indexed, enqueued_at, failed_version, attempts, public = row
        waited = enqueued_at is None or enqueued_at < now - retry_wait(attempts, failed=failed_version is not None)
        if area_id in pending:
            # Registered long ago and still pending (e.g. a write whose transaction rolled back, a lost build):
            # refresh it, and again later only if the refresh came to nothing either.
            if pending[area_id] < pending_cutoff and (not attempts or waited):
                refresh.add(area_id)
        elif indexed != geometry_version:
            # Unindexed and not pending: its registration was lost, or it was created behind the services' back.
            # Lookups would miss it: register it now; queue its build unless one was queued recently.
            unregistered.append(area_id)
            if waited or area_id in live:
                due.append((area_id, geometry_version))
        elif not public:
            if area_id in live:
                hidden.append(area_id)  # live although its provider is not approved (approval revoked behind our back)
            elif attempts:
                settled.append(area_id)
        elif live.get(area_id) != (geometry_version, payload_version):
            if not attempts or waited:
                refresh.add(area_id)  # live with other versions, or not live at all
        elif attempts:
            settled.append(area_id)  # up to date: its next trouble starts from the first wait again

    hidden = hidden[:limit]
    _best_effort(build.hide, hidden)
    done["hidden"] = len(hidden)
    due, refreshed = due[:limit], sorted(refresh)[:limit]
    stale = unregistered + [area_id for area_id in refreshed if area_id not in pending]
    if stale:
        invalidation.mark(invalidation.registrations(invalidation.current_boxes(stale, lock=False)))
    # Counted before the work is sent: a build that succeeds at once (eager, in tests) resets its area's count.
    _count_attempts([area_id for area_id, _ in due] + refreshed, now)
    if settled:
        AreaIndex.objects.filter(area_id__in=settled[:limit]).update(attempts=0)
    for area_id, version in due:
        invalidation.enqueue(area_id=area_id, version=version)
    if refreshed:
        invalidation.enqueue_refresh(refreshed)
    done["reenqueued"], done["refreshed"] = len(due), len(refreshed)
    return done


def _count_attempts(area_ids: list[int], now) -> None:
    """The sweep sends index work for these areas now: one more attempt each."""
    if not area_ids:
        return
    AreaIndex.objects.bulk_create(
        [AreaIndex(area_id=area_id, indexed_version=0) for area_id in area_ids], ignore_conflicts=True
    )
    AreaIndex.objects.filter(area_id__in=area_ids).update(enqueued_at=now, attempts=F("attempts") + 1)


def _best_effort(action: Callable, *args) -> None:
    try:
        action(*args)
    except Exception:  # Redis tidiness must never fail the caller
        log.warning("best-effort Redis update failed", exc_info=True)
