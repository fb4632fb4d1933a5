"""Marking changes: what keeps every lookup exact while areas change.

Every write that changes what a lookup returns (an area's geometry, name, price or provider; a provider's name
or currency; a delete) registers the areas as *pending* in Redis before its transaction commits, and again
right after. If Redis cannot be reached, the write is refused (IndexUnavailable) and nothing changes. A lookup
ignores the records of areas pending at its point and checks those areas directly in PostGIS, with their
current data, until a build makes them live again (hexindex.build).

An area is registered at cells covering the bounding boxes of its geometry *before and after* the write
(hexindex.pending), so that whichever of the two the database holds (the write may still roll back) is
found by a lookup through the point's own cell chain: pending areas are found spatially, however many there are.

Only areas public lookups can see are registered: those of approved providers, before or after the write. An
unapproved provider's areas are never live in Redis, so whatever its owner does costs public lookups nothing (and
such writes need no Redis at all). To keep "public before / after" true while approval changes concurrently, the
providers' rows are share-locked before the areas are read: an approval or revocation (which locks its provider
for update) either finishes before the write reads them or waits for it to commit. Lock order everywhere: the
provider, then its areas.

Staff revoking a provider must succeed even when Redis cannot be reached or is full: the registration then waits
in PostgreSQL (hexindex_pendingmark, written in the revoking transaction) and is replayed into Redis by the first
web process that finds Redis again before it trusts it, and by the worker every few seconds.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable

from django.db import connection, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from core.errors import DependencyUnavailable, TooManyRequests
from core.redis import SlotMoving, breaker
from hexindex import build, codec, pending, queue, redis_index
from hexindex.models import AreaIndex, PendingMark
from hexindex.payload import PUBLIC_SQL

log = logging.getLogger(__name__)

INDEX_UNAVAILABLE = "The lookup index cannot be reached, so nothing was changed. Please try again shortly."
REPLICAS_BEHIND = (
    "The lookup index's replicas are behind, so nothing was changed (lookups could have missed it). Please try again "
    "shortly."
)

Box = tuple[float, float, float, float]
# Above this many public areas changed at once (a bulk import, staff approving a large provider), register them
# everywhere: lookups answer from PostGIS alone until they are live again, which is what checking that many areas
# would cost anyway. No single owner's write reaches it: provider renames wait for staff review, and areas change
# one per request.
MAX_PRECISE_REGISTRATIONS = 2000

# The providers of the areas, share-locked (see the module docstring), and only then the areas themselves.
_LOCK_PROVIDERS_SQL = """
SELECT id FROM providers_provider
WHERE id IN (SELECT provider_id FROM areas_servicearea WHERE id = ANY(%s)) ORDER BY id FOR SHARE
"""
# One row per polygon part of each public area: a multi-part area far apart (or split at the antimeridian) gets
# small boxes.
_BOXES_SQL = f"""
SELECT a.id, ST_XMin(part.geom), ST_YMin(part.geom), ST_XMax(part.geom), ST_YMax(part.geom)
FROM areas_servicearea a JOIN providers_provider p ON p.id = a.provider_id, ST_Dump(a.geometry) part
WHERE a.id = ANY(%s) AND {PUBLIC_SQL}
"""


INDEX_BUSY = (
    "Your earlier changes are still being indexed ({reason}); nothing was changed. Please try again in a few seconds."
)
INDEX_BUSY_RETRY_SECONDS = 5


class IndexUnavailable(DependencyUnavailable):
    """The index's Redis cannot be reached, so a write that it must know about was refused."""

    code = "index_unavailable"

    def __init__(self, message: str = INDEX_UNAVAILABLE):
        super().__init__(message, service="redis")


class IndexBusy(TooManyRequests):
    """An owner's write would take it past its limits on changes waiting to be indexed (HEXINDEX_PENDING_*): refused
    until the worker catches up, so no owner can grow Redis or crowd lookups off the index."""

    code = "index_busy"

    def __init__(self, reason: str):
        super().__init__(INDEX_BUSY.format(reason=reason), retry_after=INDEX_BUSY_RETRY_SECONDS)


def current_boxes(area_ids: Iterable[int], *, lock: bool = True) -> dict[int, list[Box]]:
    """Where public lookups can see the areas now: the part boxes of those whose provider is approved (the others
    are absent). Their providers are share-locked until the transaction ends; with `lock`, the area rows are locked
    for update too, so no other writer changes them between this read and the caller's write."""
    area_ids = sorted(set(area_ids))
    if not area_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_PROVIDERS_SQL, [area_ids])
        if lock:
            cursor.execute("SELECT id FROM areas_servicearea WHERE id = ANY(%s) ORDER BY id FOR UPDATE", [area_ids])
        cursor.execute(_BOXES_SQL, [area_ids])
        boxes: dict[int, list[Box]] = defaultdict(list)
        for area_id, *box in cursor.fetchall():
            boxes[area_id].append(tuple(box))
    return dict(boxes)


def registrations(*box_maps: dict[int, list[Box]]) -> dict[int, bytes | None]:
    """area_id -> packed cells to register it at (or redis_index.EVERYWHERE), from one or more box maps."""
    merged: dict[int, list[Box]] = defaultdict(list)
    for boxes in box_maps:
        for area_id, parts in boxes.items():
            merged[area_id].extend(parts)
    if len(merged) > MAX_PRECISE_REGISTRATIONS:
        return dict.fromkeys(merged, redis_index.EVERYWHERE)
    result: dict[int, bytes | None] = {}
    for area_id, parts in merged.items():
        found = pending.pending_cells(parts)
        result[area_id] = redis_index.EVERYWHERE if found is None else codec.pack_cells(found)
    return result


def mark(registered: dict[int, bytes | None], *, or_defer: bool = False, owner_id: int | None = None) -> str:
    """Register the areas as pending, or refuse the caller's write (IndexUnavailable; IndexBusy when `owner_id`'s
    limits are reached). With `or_defer` (staff revoking a provider), a Redis that cannot take the registration does
    not refuse the write: the registration is written to PostgreSQL in the caller's transaction and replayed into
    Redis later (replay_deferred)."""
    if not registered:
        return ""  # nothing public changed: Redis is not involved
    try:
        if not breaker.allows():
            raise IndexUnavailable()  # Redis failed moments ago: refuse now rather than after a timeout
        return redis_index.mark_pending(registered, owner_id=owner_id)
    except redis_index.OwnerBusy as exc:
        raise IndexBusy(str(exc)) from exc
    except (RedisError, IndexUnavailable) as exc:
        if isinstance(exc, RedisError) and not isinstance(exc, redis_index.ReplicasBehind | SlotMoving):
            breaker.failed()  # this process's lookups replay deferred registrations when it is back
        if or_defer:
            log.warning("Redis cannot take a registration: kept in PostgreSQL until it can", exc_info=True)
            PendingMark.objects.bulk_create(
                [PendingMark(area_id=area_id, cells=cells) for area_id, cells in registered.items()]
            )
            return ""
        log.warning("cannot register areas as pending in Redis; refusing the write", exc_info=True)
        raise IndexUnavailable(
            REPLICAS_BEHIND if isinstance(exc, redis_index.ReplicasBehind) else INDEX_UNAVAILABLE
        ) from exc


def replay_deferred(limit: int = 5000) -> int:
    """Registrations PostgreSQL holds because Redis could not take them (mark with or_defer): into Redis, then out
    of PostgreSQL. Returns how many were replayed. Raises RedisError while Redis still cannot take them."""
    with transaction.atomic():
        deferred = list(PendingMark.objects.select_for_update(skip_locked=True).order_by("id")[:limit])
        if not deferred:
            return 0
        registered: dict[int, bytes | None] = {}
        for row in deferred:
            registered[row.area_id] = (
                redis_index.EVERYWHERE
                if row.cells is None or registered.get(row.area_id, b"") is redis_index.EVERYWHERE
                else registered.get(row.area_id, b"") + bytes(row.cells)
            )
        redis_index.mark_pending(registered)
        PendingMark.objects.filter(id__in=[row.id for row in deferred]).delete()
    return len(deferred)


def deferred_waiting() -> bool:
    """Whether registrations wait in PostgreSQL (one indexed probe)."""
    return PendingMark.objects.exists()


def areas_changed(
    area_ids: list[int],
    *,
    before: dict[int, list[Box]] | None = None,
    versions: dict[int, int] | None = None,
    enqueue_builds: bool = True,
    or_defer: bool = False,
    owner_id: int | None = None,
) -> None:
    """The areas were created or changed in the current transaction (`before`: where public lookups saw them before
    the change, from current_boxes). Take the public ones out of the live index now, and once the transaction
    commits, register them again and queue their rebuild: `versions` (geometry versions) queue one versioned build
    per area; without it, one refresh for all of them (payload changes, imports). `or_defer`: see mark. `owner_id`:
    the write is that owner's, held to its limits (IndexBusy)."""
    if not area_ids:
        return
    registered = registrations(before or {}, current_boxes(area_ids, lock=False))
    mark(registered, or_defer=or_defer, owner_id=owner_id)
    now = timezone.now()
    AreaIndex.objects.bulk_create(
        [AreaIndex(area_id=area_id, indexed_version=0, enqueued_at=now) for area_id in area_ids],
        update_conflicts=True,
        unique_fields=["area"],
        update_fields=["enqueued_at"],
    )

    def after_commit() -> None:
        try:
            if registered:
                redis_index.mark_pending(registered)  # the same areas again: the owner's limits were checked
            if or_defer:
                replay_deferred()
        except RedisError:
            log.warning("could not re-register committed areas as pending; the sweep will catch up", exc_info=True)
        if not enqueue_builds:
            return
        if versions is not None:
            for area_id, version in versions.items():
                enqueue(area_id=area_id, version=version)
        else:
            enqueue_refresh(list(area_ids))

    transaction.on_commit(after_commit)


def areas_deleting(area_ids: list[int]) -> None:
    """The areas are about to be deleted in the current transaction. Until it commits lookups check the public ones
    in PostGIS; after, they are forgotten by the index (their cell rows go with them)."""
    if not area_ids:
        return
    registered = registrations(current_boxes(area_ids))
    mark(registered)
    if not registered:
        return  # none was live: nothing to forget in Redis

    def after_commit() -> None:
        try:
            build.forget(area_ids)
        except RedisError:
            # They stay pending (checked in PostGIS, where they are gone) until the sweep forgets them.
            log.warning("could not forget deleted areas in Redis; the sweep will", exc_info=True)

    transaction.on_commit(after_commit)


def enqueue(*, area_id: int, version: int) -> bool:
    return queue.send(queue.INDEX_AREA, area_id, version)


def enqueue_refresh(area_ids: list[int]) -> bool:
    return queue.send(queue.REFRESH_AREAS, area_ids)
