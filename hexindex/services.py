"""Writes to the index: building areas' covers, scheduling, forgetting, rebuilding Redis, sweeping.

Building an area's index is three short steps, in this order, so that a crash anywhere leaves lookups correct:

1. In one transaction, holding the area's row (FOR SHARE, so its geometry cannot change meanwhile) and an
   advisory lock (so two builders do not interleave): check the geometry version is still the one computed,
   replace the area's rows in the cell table, record the build in AreaIndex.
2. Add the new members to Redis, in every generation being served or built.
3. Mark the area indexed (indexed_version = version), only if its geometry is still that version.

Until step 3 the area is "pending" and lookups check it directly in PostGIS, so neither a half-written cell
table nor a half-written Redis is ever trusted. Repeating a build gives the same rows and members.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import BooleanField, F, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

from hexindex import cells as cellmath
from hexindex import store
from hexindex.models import AreaIndex

log = logging.getLogger(__name__)

UNINDEXED_SQL = "indexed_version IS DISTINCT FROM geometry_version"
REENQUEUE_AFTER = timedelta(minutes=2)
FAILED_RETRY_AFTER = timedelta(minutes=10)
REBUILD_LOCK_SECONDS = 600


def unindexed():
    """Condition for areas whose current geometry is not live in the index (matches the partial index)."""
    return RawSQL(UNINDEXED_SQL, [], output_field=BooleanField())


@dataclass
class BuildReport:
    indexed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # already indexed, gone, or changed meanwhile
    failed: dict[int, str] = field(default_factory=dict)
    interior_cells: int = 0
    boundary_cells: int = 0
    cover_seconds: list[float] = field(default_factory=list)


def load_jobs(
    area_ids: Iterable[int], *, force: bool = False, versions: dict[int, int] | None = None
) -> tuple[list[tuple[int, int, bytes]], list[int]]:
    """(area_id, geometry version, WKB) for each area that needs a build, and the ids that do not."""
    jobs, skipped = [], []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, geometry_version, indexed_version, ST_AsBinary(geometry) FROM areas_servicearea "
            "WHERE id = ANY(%s)",
            [list(area_ids)],
        )
        for area_id, version, indexed_version, wkb in cursor.fetchall():
            stale = versions is not None and versions.get(area_id) != version
            if stale or (indexed_version == version and not force):
                skipped.append(area_id)
            else:
                jobs.append((area_id, version, bytes(wkb)))
    return jobs, skipped


def index_areas(
    area_ids: Iterable[int],
    *,
    force: bool = False,
    versions: dict[int, int] | None = None,
    mapper: Callable = map,
) -> BuildReport:
    """Build the index of the given areas (see the module docstring). `versions` pins the geometry version to
    build (a task's); `mapper` lets a caller compute covers in a process pool. Transient database and Redis
    errors propagate (the caller retries); a geometry that cannot be covered is reported in `failed`."""
    jobs, skipped = load_jobs(area_ids, force=force, versions=versions)
    report = BuildReport(skipped=skipped)
    return write_builds(list(mapper(cellmath.cover_job, jobs)), report)


def write_builds(built: list[cellmath.CoverJob], report: BuildReport) -> BuildReport:
    """Steps 1 to 3 of the module docstring for computed covers; adds to `report` and returns it."""
    for item in built:
        if item.cover is None:
            report.failed[item.area_id] = item.error
    good = {item.area_id: item for item in built if item.cover is not None}
    if report.failed:
        record_failures({i.area_id: (i.version, i.error) for i in built if i.cover is None})
    if not good:
        return report

    # Step 1: the cell table, under locks, for areas whose geometry is still the version we computed.
    with transaction.atomic(), connection.cursor() as cursor:
        ids = sorted(good)
        cursor.execute("SELECT pg_advisory_xact_lock(id) FROM unnest(%s::bigint[]) AS id ORDER BY id", [ids])
        cursor.execute(
            "SELECT id, geometry_version FROM areas_servicearea WHERE id = ANY(%s) ORDER BY id FOR SHARE", [ids]
        )
        current = dict(cursor.fetchall())
        for area_id in ids:
            if current.get(area_id) != good[area_id].version:
                report.skipped.append(area_id)
                del good[area_id]
        if not good:
            return report
        previous_rows = store.cell_rows(list(good))
        previous_versions = dict(AreaIndex.objects.filter(area_id__in=good).values_list("area_id", "version"))
        store.replace_cell_rows({area_id: item.copy_rows for area_id, item in good.items()})
        _record_builds(good.values())

    # Step 2: Redis.
    store.add_members((i.area_id, i.version, i.cover.interior, i.cover.boundary) for i in good.values())

    # Step 3: live, unless the geometry changed after step 1.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE areas_servicearea AS a SET indexed_version = v.version "
            "FROM unnest(%s::bigint[], %s::int[]) AS v(id, version) "
            "WHERE a.id = v.id AND a.geometry_version = v.version RETURNING a.id",
            [list(good), [item.version for item in good.values()]],
        )
        live = {row[0] for row in cursor.fetchall()}
    AreaIndex.objects.filter(area_id__in=live).update(indexed_at=timezone.now())
    for area_id, item in good.items():
        (report.indexed if area_id in live else report.skipped).append(area_id)
        if area_id in live:
            report.interior_cells += len(item.cover.interior)
            report.boundary_cells += len(item.cover.boundary)
            report.cover_seconds.append(item.seconds)

    # Tidy Redis: members of replaced versions are never trusted, but they take memory.
    stale = [
        (area_id, previous_versions[area_id], *previous_rows[area_id])
        for area_id in good
        if area_id in previous_versions and previous_versions[area_id] != good[area_id].version
    ]
    _best_effort(store.remove_members, stale)
    return report


def _record_builds(built: Iterable[cellmath.CoverJob]) -> None:
    now = timezone.now()
    AreaIndex.objects.bulk_create(
        [
            AreaIndex(
                area_id=item.area_id,
                version=item.version,
                resolution=item.cover.resolution,
                interior_cells=len(item.cover.interior),
                boundary_cells=len(item.cover.boundary),
                build_seconds=item.seconds,
                enqueued_at=now,
                attempts=0,
                failed_version=None,
                error="",
            )
            for item in built
        ],
        update_conflicts=True,
        unique_fields=["area"],
        update_fields=[
            "version",
            "resolution",
            "interior_cells",
            "boundary_cells",
            "build_seconds",
            "attempts",
            "failed_version",
            "error",
        ],
    )


def record_failures(failures: dict[int, tuple[int, str]]) -> None:
    """Remember why an area's index could not be built, so the API can show it and the sweep can retry later."""
    now = timezone.now()
    for area_id, (version, error) in failures.items():
        log.warning("indexing area %s (version %s) failed: %s", area_id, version, error)
        try:
            with transaction.atomic():
                AreaIndex.objects.get_or_create(area_id=area_id, defaults={"version": 0})
                AreaIndex.objects.filter(area_id=area_id).update(
                    failed_version=version, error=error[:2000], attempts=F("attempts") + 1, enqueued_at=now
                )
        except IntegrityError:
            pass  # the area was deleted meanwhile


def _best_effort(action: Callable, *args) -> None:
    try:
        action(*args)
    except Exception:  # Redis tidiness must never fail the caller
        log.warning("best-effort Redis update failed", exc_info=True)


# --- scheduling, called by the areas services -----------------------------------------------------------------


def schedule_index(*, area_id: int, version: int) -> None:
    """Queue a build of this geometry version once the surrounding transaction commits."""
    _mark_enqueued(area_id)
    transaction.on_commit(lambda: enqueue_index(area_id=area_id, version=version))


def _mark_enqueued(area_id: int) -> None:
    # `version` describes the rows in the cell table: 0 until a first build writes some.
    now = timezone.now()
    AreaIndex.objects.update_or_create(
        area_id=area_id, defaults={"enqueued_at": now}, create_defaults={"version": 0, "enqueued_at": now}
    )


def enqueue_index(*, area_id: int, version: int) -> bool:
    from hexindex.tasks import index_area

    try:
        index_area.delay(area_id, version)
    except Exception:
        # The broker is down. The write has committed and lookups already check the area directly; the sweep
        # enqueues it again later.
        log.warning("could not enqueue indexing of area %s; the sweep will retry", area_id, exc_info=True)
        return False
    return True


def forget_areas(area_ids: list[int]) -> Callable[[], None]:
    """Before deleting areas: collect their index entries, and return what removes them from Redis after commit.
    (The cell rows go with the areas.) Leftovers would be harmless, only wasted memory."""
    rows = store.cell_rows(area_ids)
    versions = dict(AreaIndex.objects.filter(area_id__in=area_ids).values_list("area_id", "version"))
    entries = [(area_id, versions[area_id], *rows[area_id]) for area_id in area_ids if area_id in versions]

    def remove() -> None:
        _best_effort(store.remove_members, entries)
        _best_effort(store.drop_payloads, area_ids)

    return remove


# --- Redis rebuild and the sweep ------------------------------------------------------------------------------


@dataclass
class RebuildReport:
    generation: int | None
    members: int = 0
    keys: int = 0
    seconds: float = 0.0
    replaced: int | None = None


def rebuild_redis(*, progress: Callable[[int], None] | None = None) -> RebuildReport:
    """Rebuild the Redis mirror from the cell table into a new generation, then switch lookups to it atomically.
    Lookups keep using the old generation (or PostGIS) meanwhile; index builds write to both."""
    started = time.perf_counter()
    generation = store.begin_rebuild(REBUILD_LOCK_SECONDS)
    if generation is None:
        return RebuildReport(generation=None)
    report = RebuildReport(generation=generation)
    try:
        # The snapshot starts after the lock is taken: a build that committed its rows earlier is in it, and
        # one that commits later sees the lock and writes to the new generation itself.
        with transaction.atomic():
            for rows in store.stream_all_cells():
                grouped = store.group_members(rows)
                store.write_generation(generation, grouped)
                store.extend_rebuild(generation, REBUILD_LOCK_SECONDS)
                report.members += len(rows)
                report.keys += len(grouped)
                if progress:
                    progress(len(rows))
    except BaseException:
        _best_effort(store.abandon_rebuild, generation)
        raise
    report.replaced = store.finish_rebuild(generation)
    if report.replaced is not None and report.replaced != generation:
        store.drop_generation(report.replaced)
    report.seconds = time.perf_counter() - started
    return report


def sweep(*, limit: int = 1000) -> dict:
    """The backstop: re-enqueue areas stuck unindexed (enqueue lost, worker crashed, earlier failure) and
    rebuild Redis when it has no live index."""
    from areas.models import ServiceArea

    now = timezone.now()
    due = (
        ServiceArea.objects.filter(unindexed())
        .filter(
            Q(index_state__isnull=True)
            | Q(index_state__enqueued_at__isnull=True)
            | Q(index_state__failed_version__isnull=True, index_state__enqueued_at__lt=now - REENQUEUE_AFTER)
            | Q(index_state__failed_version__isnull=False, index_state__enqueued_at__lt=now - FAILED_RETRY_AFTER)
        )
        .order_by("id")
        .values_list("id", "geometry_version")[:limit]
    )
    due = list(due)
    for area_id, version in due:
        _mark_enqueued(area_id)
        enqueue_index(area_id=area_id, version=version)
    rebuild = False
    try:
        if store.live_generation() is None and store.request_rebuild():
            from hexindex.tasks import rebuild_redis_index

            rebuild_redis_index.delay()
            rebuild = True
    except Exception:
        log.warning("sweep could not check Redis", exc_info=True)
    return {"reenqueued": len(due), "rebuild_requested": rebuild}
