"""Writes to the index: marking changed areas, building covers, making areas live, rebuilding Redis, sweeping.

Trust rules (what keeps every lookup exact, whatever crashes or races):

- Every write to an area (create, geometry, name, price, provider, delete) or to a provider's name or currency
  marks the areas *pending* in Redis before the transaction commits, and again right after. If Redis cannot be
  reached the write is refused (503) and nothing changes. A pending area has no live entry: lookups check it
  directly in PostGIS, with its current data.
- A build records each area's pending token *before* reading the database, then:
  1. in one transaction, holding the area's row (FOR SHARE, so its geometry cannot change meanwhile) and an
     advisory lock (so two builders do not interleave): checks the geometry version is still the one computed,
     replaces the area's rows in the cell table, records the build in AreaIndex;
  2. adds the new members to Redis, in every generation being served or built;
  3. marks the area indexed in PostgreSQL (indexed_version = version) if its geometry is still that version;
  4. makes it live in Redis with its payload, only if its token is unchanged. A change that committed after the
     build read the database re-marked the area (new token), so a stale build can never hide it.
- Members carry the geometry version, and only the live version's members are trusted, so leftovers of old
  geometries are harmless.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta

import orjson
from django.db import IntegrityError, connection, transaction
from django.db.models import BooleanField, F, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone
from redis.exceptions import RedisError
from rest_framework.exceptions import APIException

from areas.selectors import area_payload
from hexindex import cells as cellmath
from hexindex import store
from hexindex.models import AreaIndex

log = logging.getLogger(__name__)

UNINDEXED_SQL = "indexed_version IS DISTINCT FROM geometry_version"
REENQUEUE_AFTER = timedelta(minutes=2)
FAILED_RETRY_AFTER = timedelta(minutes=10)
REBUILD_LOCK_SECONDS = 600
INDEX_UNAVAILABLE = "The lookup index cannot be reached, so nothing was changed. Please try again shortly."

PAYLOAD_SQL = """
SELECT a.indexed_version, a.payload_version, a.id, a.price, a.name, p.id, p.name, p.currency
FROM areas_servicearea a JOIN providers_provider p ON p.id = a.provider_id
WHERE a.id = ANY(%s) AND a.indexed_version = a.geometry_version
"""
BOXES_SQL = """
SELECT id, ST_XMin(geometry), ST_YMin(geometry), ST_XMax(geometry), ST_YMax(geometry)
FROM areas_servicearea WHERE id = ANY(%s)
"""


class IndexUnavailable(APIException):
    status_code = 503
    default_detail = INDEX_UNAVAILABLE
    default_code = "index_unavailable"


def unindexed():
    """Condition for areas whose current geometry is not indexed yet (matches the partial index)."""
    return RawSQL(UNINDEXED_SQL, [], output_field=BooleanField())


def payload_blob(area_id, price, name, provider_id, provider_name, currency) -> bytes:
    """One lookup result (see areas.selectors.area_payload), serialised, behind its (price, id) sort key."""
    body = orjson.dumps(area_payload(area_id, price, name, provider_id, provider_name, currency))
    return store.payload_blob(area_id, price, body)


def areas_to_build(area_ids: Iterable[int] | None = None) -> list[int]:
    """Areas whose index is not up to date: not indexed in PostgreSQL, or pending in Redis."""
    from areas.models import ServiceArea

    areas = ServiceArea.objects.all()
    if area_ids is not None:
        areas = areas.filter(id__in=list(area_ids))
    stale = set(areas.filter(unindexed()).values_list("id", flat=True))
    pending = set(store.pending_tokens_all())
    if pending:
        stale |= set(areas.filter(id__in=pending).values_list("id", flat=True))
    return sorted(stale)


# --- marking changes (called by the areas and providers services, inside their transactions) ----------------


def _boxes(area_ids: list[int]) -> dict[int, tuple[float, float, float, float]]:
    with connection.cursor() as cursor:
        cursor.execute(BOXES_SQL, [area_ids])
        return {row[0]: tuple(row[1:]) for row in cursor.fetchall()}


def _mark(boxes: dict[int, tuple[float, float, float, float]]) -> None:
    try:
        store.mark_pending(boxes)
    except RedisError as exc:
        log.warning("cannot mark areas pending in Redis; refusing the write", exc_info=True)
        raise IndexUnavailable() from exc


def areas_changed(area_ids: list[int], *, versions: dict[int, int] | None = None, enqueue_builds: bool = True) -> None:
    """The areas were created or changed in the current transaction: take them out of the live index now, and
    once the transaction commits, mark them again and queue their rebuild. `versions` (geometry versions) queue
    one versioned build per area; without it, one refresh for all of them (payload changes, imports)."""
    if not area_ids:
        return
    boxes = _boxes(area_ids)
    _mark(boxes)
    now = timezone.now()
    AreaIndex.objects.bulk_create(
        [AreaIndex(area_id=area_id, version=0, enqueued_at=now) for area_id in boxes],
        update_conflicts=True,
        unique_fields=["area"],
        update_fields=["enqueued_at"],
    )

    def after_commit() -> None:
        try:
            store.mark_pending(boxes)
        except RedisError:
            log.warning("could not re-mark committed areas pending; the sweep will catch up", exc_info=True)
        if not enqueue_builds:
            return
        if versions is not None:
            for area_id, version in versions.items():
                enqueue(area_id=area_id, version=version)
        else:
            enqueue_refresh(list(boxes))

    transaction.on_commit(after_commit)


def areas_deleting(area_ids: list[int]) -> None:
    """The areas are about to be deleted in the current transaction. Until it commits lookups check them in
    PostGIS; after, they are forgotten (their cell rows go with them)."""
    if not area_ids:
        return
    _mark(_boxes(area_ids))
    rows = store.cell_rows(area_ids)
    versions = dict(AreaIndex.objects.filter(area_id__in=area_ids).values_list("area_id", "version"))
    entries = [(area_id, versions[area_id], *rows[area_id]) for area_id in area_ids if area_id in versions]

    def after_commit() -> None:
        _best_effort(store.forget, area_ids)
        _best_effort(store.remove_members, entries)

    transaction.on_commit(after_commit)


def enqueue(*, area_id: int, version: int) -> bool:
    from hexindex.tasks import index_area

    return _send(index_area, area_id, version)


def enqueue_refresh(area_ids: list[int]) -> bool:
    from hexindex.tasks import refresh_areas

    return _send(refresh_areas, area_ids)


def _send(task, *args) -> bool:
    try:
        task.delay(*args)
    except Exception:
        # The broker is down. The write has committed and lookups already check the areas directly; the sweep
        # enqueues them again later.
        log.warning("could not enqueue %s%r; the sweep will retry", task.name, args, exc_info=True)
        return False
    return True


# --- building ------------------------------------------------------------------------------------------------


@dataclass
class BuildReport:
    indexed: list[int] = field(default_factory=list)  # covers built
    live: list[int] = field(default_factory=list)  # made live in Redis (built, or refreshed)
    skipped: list[int] = field(default_factory=list)  # stale, gone, or changed meanwhile
    failed: dict[int, str] = field(default_factory=dict)
    interior_cells: int = 0
    boundary_cells: int = 0
    cover_seconds: list[float] = field(default_factory=list)


@dataclass
class Batch:
    tokens: dict[int, str]
    jobs: list[tuple[int, int, bytes]]
    current: list[int]  # geometry already indexed at its current version: only needs making live
    report: BuildReport


def prepare(area_ids: Iterable[int], *, force: bool = False, versions: dict[int, int] | None = None) -> Batch:
    """Read the areas' pending tokens, then their geometries: (area_id, version, WKB) jobs for those that need
    a cover. `versions` pins the geometry version (a task's): other versions are skipped as stale."""
    area_ids = list(area_ids)
    tokens = store.pending_tokens(area_ids)
    jobs, current, skipped = [], [], []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, geometry_version, indexed_version, ST_AsBinary(geometry) FROM areas_servicearea "
            "WHERE id = ANY(%s)",
            [area_ids],
        )
        found = cursor.fetchall()
    for area_id, version, indexed_version, wkb in found:
        if versions is not None and versions.get(area_id) != version:
            skipped.append(area_id)
        elif indexed_version == version and not force:
            current.append(area_id)
        else:
            jobs.append((area_id, version, bytes(wkb)))
    gone = set(area_ids) - {row[0] for row in found}
    return Batch(tokens, jobs, current, BuildReport(skipped=skipped + sorted(gone)))


def complete(batch: Batch, built: list[cellmath.CoverJob]) -> BuildReport:
    """Steps 1 to 4 of the module docstring for computed covers, then make the batch's areas live."""
    report = batch.report
    failures = {item.area_id: (item.version, item.error) for item in built if item.cover is None}
    report.failed.update({area_id: error for area_id, (_, error) in failures.items()})
    record_failures(failures)
    good = {item.area_id: item for item in built if item.cover is not None}
    if good:
        _write_cells(good, report)
    # Areas whose geometry is indexed are made live: fresh builds, and unchanged geometries marked pending for
    # a payload change. An area live already is left as it is.
    refresh = [area_id for area_id in batch.current if batch.tokens.get(area_id)]
    report.skipped += [area_id for area_id in batch.current if not batch.tokens.get(area_id)]
    report.live = sorted(_make_live(report.indexed + refresh, batch.tokens))
    return report


def index_areas(
    area_ids: Iterable[int],
    *,
    force: bool = False,
    versions: dict[int, int] | None = None,
    mapper: Callable = map,
) -> BuildReport:
    """Build and make live the index of the given areas. `mapper` lets a caller compute covers in a process
    pool. Transient database and Redis errors propagate (the caller retries); a geometry that cannot be covered
    is reported in `failed`."""
    batch = prepare(area_ids, force=force, versions=versions)
    return complete(batch, list(mapper(cellmath.cover_job, batch.jobs)))


def _write_cells(good: dict[int, cellmath.CoverJob], report: BuildReport) -> None:
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
            return
        previous_rows = store.cell_rows(list(good))
        previous_versions = dict(AreaIndex.objects.filter(area_id__in=good).values_list("area_id", "version"))
        store.replace_cell_rows({area_id: item.copy_rows for area_id, item in good.items()})
        _record_builds(good.values())

    # Step 2: Redis members.
    store.add_members((i.area_id, i.version, i.cover.interior, i.cover.boundary) for i in good.values())

    # Step 3: indexed, unless the geometry changed after step 1.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE areas_servicearea AS a SET indexed_version = v.version "
            "FROM unnest(%s::bigint[], %s::int[]) AS v(id, version) "
            "WHERE a.id = v.id AND a.geometry_version = v.version RETURNING a.id",
            [list(good), [item.version for item in good.values()]],
        )
        indexed = {row[0] for row in cursor.fetchall()}
    AreaIndex.objects.filter(area_id__in=indexed).update(indexed_at=timezone.now())
    for area_id, item in good.items():
        if area_id in indexed:
            report.indexed.append(area_id)
            report.interior_cells += len(item.cover.interior)
            report.boundary_cells += len(item.cover.boundary)
            report.cover_seconds.append(item.seconds)
        else:
            report.skipped.append(area_id)

    # Tidy Redis: members of replaced versions are never trusted, but they take memory.
    stale = [
        (area_id, previous_versions[area_id], *previous_rows[area_id])
        for area_id in good
        if previous_versions.get(area_id) and previous_versions[area_id] != good[area_id].version
    ]
    _best_effort(store.remove_members, stale)


def _make_live(area_ids: list[int], tokens: dict[int, str]) -> set[int]:
    """Step 4: each area's payload, read now (after its token was), and its live version, unless it changed."""
    if not area_ids:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(PAYLOAD_SQL, [area_ids])
        rows = cursor.fetchall()
    entries = []
    payload_versions = {}
    for version, payload_version, *payload in rows:
        area_id = payload[0]
        entries.append((area_id, tokens.get(area_id, ""), version, payload_blob(*payload)))
        payload_versions[area_id] = payload_version
    live = store.make_live(entries)
    if live:
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE hexindex_areaindex AS s SET payload_version = v.payload_version "
                "FROM unnest(%s::bigint[], %s::int[]) AS v(area_id, payload_version) WHERE s.area_id = v.area_id",
                [list(live), [payload_versions[area_id] for area_id in live]],
            )
    return live


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


# --- Redis rebuild and the sweep ------------------------------------------------------------------------------


@dataclass
class RebuildReport:
    generation: int | None
    members: int = 0
    keys: int = 0
    live: int = 0
    pending: int = 0
    seconds: float = 0.0
    replaced: int | None = None


def rebuild_redis(*, progress: Callable[[int], None] | None = None) -> RebuildReport:
    """Rebuild the Redis side from PostgreSQL: members into a new generation, live entries and payloads, pending
    marks for areas not indexed; then switch lookups to the new generation atomically. Lookups keep using the
    old generation (or PostGIS) meanwhile; builds write to both generations."""
    started = time.perf_counter()
    tokens = store.pending_tokens_all()  # before reading the database, like any build
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
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM areas_servicearea WHERE indexed_version = geometry_version ORDER BY id")
            indexed = [row[0] for row in cursor.fetchall()]
            cursor.execute(f"SELECT id FROM areas_servicearea WHERE {UNINDEXED_SQL} ORDER BY id")
            waiting = [row[0] for row in cursor.fetchall()]
        for start in range(0, len(indexed), 5000):
            report.live += len(_make_live(indexed[start : start + 5000], tokens))
        for start in range(0, len(waiting), 5000):
            chunk = [area_id for area_id in waiting[start : start + 5000] if area_id not in tokens]
            if chunk:
                store.mark_pending(_boxes(chunk))
            report.pending += len(chunk)
    except BaseException:
        _best_effort(store.abandon_rebuild, generation)
        raise
    report.replaced = store.finish_rebuild(generation)
    if report.replaced is not None and report.replaced != generation:
        store.drop_generation(report.replaced)
    report.seconds = time.perf_counter() - started
    return report


def request_redis_rebuild() -> bool:
    """Queue a rebuild of the Redis side, unless one was requested within the last minute. True if queued; a
    Redis or broker failure is logged, not raised (the next lookup or sweep asks again)."""
    try:
        if not store.request_rebuild():
            return False
        from hexindex.tasks import rebuild_redis_index

        rebuild_redis_index.delay()
    except Exception:
        log.warning("could not request a Redis index rebuild", exc_info=True)
        return False
    return True


def sweep(*, limit: int = 1000) -> dict:
    """The backstop, run every minute: rebuild Redis when it has no index; re-enqueue areas stuck unindexed
    (enqueue lost, worker crashed, earlier failure) or left pending; refresh areas changed behind the services'
    back (their payload version moved)."""
    from areas.models import ServiceArea

    try:
        if store.live_generation() is None:
            return {"reenqueued": 0, "refreshed": 0, "rebuild_requested": request_redis_rebuild()}
        pending = store.pending_since()
    except RedisError:
        log.warning("sweep could not reach Redis", exc_info=True)
        return {"reenqueued": 0, "refreshed": 0, "rebuild_requested": False}

    now = timezone.now()
    due = list(
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
    if due:
        due_ids = [area_id for area_id, _ in due]
        # Unindexed areas must be pending in Redis, whoever created them.
        _mark({area_id: box for area_id, box in _boxes(due_ids).items() if area_id not in pending})
        AreaIndex.objects.filter(area_id__in=due_ids).update(enqueued_at=now)
        for area_id, version in due:
            enqueue(area_id=area_id, version=version)

    cutoff = time.time() - REENQUEUE_AFTER.total_seconds()
    stuck = [area_id for area_id, since in pending.items() if since < cutoff]
    changed = [
        area_id
        for area_id in ServiceArea.objects.filter(index_state__isnull=False, indexed_version=F("geometry_version"))
        .exclude(payload_version=F("index_state__payload_version"))
        .values_list("id", flat=True)[:limit]
        if area_id not in pending
    ]
    if changed:
        _mark(_boxes(changed))
    refresh = sorted(set(stuck) | set(changed))[:limit]
    existing = set(ServiceArea.objects.filter(id__in=refresh).values_list("id", flat=True))
    _best_effort(store.forget, [area_id for area_id in refresh if area_id not in existing])
    if existing:
        enqueue_refresh(sorted(existing))
    return {"reenqueued": len(due), "refreshed": len(existing), "rebuild_requested": False}
