"""Building the index of areas and making them live (or forgetting them).

A build records each area's change token (hexindex.invalidation) *before* reading the database, then:

1. computes the cover of each area whose geometry is not indexed (possibly in a process pool);
2. in one transaction, holding the area's row (FOR SHARE, so its geometry cannot change meanwhile) and an
   advisory lock (so two builders do not interleave): checks the geometry version is still the one computed,
   replaces the area's rows in the cell table and records the indexed version in AreaIndex;
3. makes each indexed area live in the live Redis generation with its current lookup result (apply.lua), only
   if its change token is unchanged: a change that committed after the build read the database registered the
   area again (new token), so a stale build can never hide it. The same step, without a new cover, refreshes
   areas whose result changed (price, name, provider).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from hexindex import celltable, codec, jobs, redis_index
from hexindex.cover import Cover
from hexindex.models import INDEXED_SQL, AreaIndex
from hexindex.payload import PAYLOAD_COLUMNS, PUBLIC_SQL, AreaPayload

log = logging.getLogger(__name__)


# Areas whose current geometry is indexed, with what a lookup shows for them.
LIVE_ROWS_SQL = f"""
SELECT {PUBLIC_SQL}, a.geometry_version, a.payload_version, {PAYLOAD_COLUMNS}
FROM areas_servicearea a JOIN providers_provider p ON p.id = a.provider_id
WHERE a.id = ANY(%s) AND {INDEXED_SQL}
"""


@dataclass
class BuildReport:
    indexed: list[int] = field(default_factory=list)  # covers built
    live: list[int] = field(default_factory=list)  # made live in Redis (built, or refreshed)
    skipped: list[int] = field(default_factory=list)  # stale, gone, or changed meanwhile
    failed: dict[int, str] = field(default_factory=dict)
    interior_cells: int = 0
    boundary_cells: int = 0
    cover_seconds: list[float] = field(default_factory=list)

    def merge(self, other: BuildReport) -> None:
        self.indexed += other.indexed
        self.live += other.live
        self.skipped += other.skipped
        self.failed.update(other.failed)
        self.interior_cells += other.interior_cells
        self.boundary_cells += other.boundary_cells
        self.cover_seconds += other.cover_seconds


@dataclass
class Batch:
    tokens: dict[int, str]
    jobs: list[tuple[int, int, bytes]]
    current: list[int]  # geometry already indexed at its current version: only needs making live
    report: BuildReport


def prepare(area_ids: Iterable[int], *, force: bool = False, versions: dict[int, int] | None = None) -> Batch:
    """Read the areas' change tokens, then their geometries: (area_id, version, WKB) jobs for those that need a
    cover. `versions` pins the geometry version (a task's): other versions are skipped as stale."""
    area_ids = list(area_ids)
    tokens = redis_index.pending_tokens(area_ids)
    jobs, current, skipped = [], [], []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.id, a.geometry_version, s.indexed_version, ST_AsBinary(a.geometry) "
            "FROM areas_servicearea a LEFT JOIN hexindex_areaindex s ON s.area_id = a.id WHERE a.id = ANY(%s)",
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


def complete(batch: Batch, built: list[jobs.CoverJob], *, make_live: bool = True) -> BuildReport:
    """Steps 2 and 3 of the module docstring for computed covers; then make the batch's areas live (unless the
    caller rebuilds Redis as a whole afterwards)."""
    report = batch.report
    failures = {item.area_id: (item.version, item.error) for item in built if item.cover is None}
    report.failed.update({area_id: error for area_id, (_, error) in failures.items()})
    record_failures(failures)
    good = {item.area_id: item for item in built if item.cover is not None}
    if good:
        _write_cells(good, report)
    # Areas whose geometry is indexed are made live: fresh builds, and unchanged geometries registered as pending
    # for a change of their result. An area live already is left as it is.
    refresh = [area_id for area_id in batch.current if batch.tokens.get(area_id)]
    report.skipped += [area_id for area_id in batch.current if not batch.tokens.get(area_id)]
    if make_live:
        fresh = {area_id: good[area_id].cover for area_id in report.indexed}
        report.live = sorted(make_areas_live(report.indexed + refresh, batch.tokens, fresh))
    return report


@redis_index.bulk
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
    return complete(batch, list(mapper(jobs.cover_job, batch.jobs)))


def _write_cells(good: dict[int, jobs.CoverJob], report: BuildReport) -> None:
    """Step 2: the cell table and the indexed version, under locks, for areas whose geometry is still the version
    the cover was computed from."""
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
        celltable.replace({area_id: item.copy_rows for area_id, item in good.items()})
        _record_builds(good.values())
    for item in good.values():
        report.indexed.append(item.area_id)
        report.interior_cells += len(item.cover.interior)
        report.boundary_cells += len(item.cover.boundary)
        report.cover_seconds.append(item.seconds)


def _record_builds(built: Iterable[jobs.CoverJob]) -> None:
    now = timezone.now()
    AreaIndex.objects.bulk_create(
        [
            AreaIndex(
                area_id=item.area_id,
                indexed_version=item.version,
                resolution=item.cover.resolution,
                interior_cells=len(item.cover.interior),
                boundary_cells=len(item.cover.boundary),
                build_seconds=item.seconds,
                indexed_at=now,
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
            "indexed_version",
            "resolution",
            "interior_cells",
            "boundary_cells",
            "build_seconds",
            "indexed_at",
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
                AreaIndex.objects.get_or_create(area_id=area_id, defaults={"indexed_version": 0})
                AreaIndex.objects.filter(area_id=area_id).update(
                    failed_version=version, error=error[:2000], attempts=F("attempts") + 1, enqueued_at=now
                )
        except IntegrityError:
            pass  # the area was deleted meanwhile


# --- step 3: Redis ---------------------------------------------------------------------------------------------


def live_update(
    area_id: int,
    cover: Cover,
    payload: AreaPayload,
    geometry_version: int,
    payload_version: int,
    *,
    token: str,
    clear_pending: bool,
) -> redis_index.AreaUpdate:
    """The change that makes an area live with this cover and result (its records, by the bucket they go to)."""
    version = codec.area_version(geometry_version, payload_version)
    new_records: dict[tuple[str, bytes], bytes] = {}
    interior = codec.interior_record(area_id, version)
    for placement in codec.placements(cover.interior, []):
        new_records[placement] = interior
    boundary = codec.boundary_records(area_id, version, cover.inside, cover.crossing)
    for cell, record in zip(cover.boundary, boundary, strict=True):
        for placement in codec.placements([], [cell]):
            new_records[placement] = record
    return redis_index.AreaUpdate(
        area_id=area_id,
        token=token,
        records=redis_index.records_by_bucket((anchor, name, record) for (anchor, name), record in new_records.items()),
        payload=codec.encode_result(version, payload.price_cents, payload.json()),
        versions=codec.encode_versions(geometry_version, payload_version),
        clear_pending=clear_pending,
    )


def forget_update(area_id: int, *, clear_pending: bool = True, token: str = "*") -> redis_index.AreaUpdate:
    """The change that takes an area out of the generation: unconditionally ("*"), or only while its pending token
    is `token` ("": only while it is not pending)."""
    return redis_index.AreaUpdate(area_id=area_id, token=token, clear_pending=clear_pending)


def make_areas_live(area_ids: list[int], tokens: dict[int, str], fresh: dict[int, Cover]) -> set[int]:
    """Step 3: each area's current result, read now (after its token was), made live with its cover (`fresh`, or
    as stored in the cell table), unless it changed again since. Returns the ids made live."""
    if not area_ids:
        return set()
    live_generation, _ = redis_index.generations()
    if live_generation is None:
        return set()  # no index in Redis at all: the rebuild reads everything from PostgreSQL
    with connection.cursor() as cursor:
        cursor.execute(LIVE_ROWS_SQL, [area_ids])
        found = cursor.fetchall()
    rows = {row[3]: (row[1], row[2], AreaPayload(*row[3:])) for row in found if row[0]}
    # Areas of providers not (or no longer) approved are indexed but not public: out of the live index.
    hide([row[3] for row in found if not row[0]], live_generation, tokens)
    stored = celltable.covers([area_id for area_id in rows if area_id not in fresh])
    covers = {**stored, **{area_id: cover for area_id, cover in fresh.items() if area_id in rows}}
    todo = [area_id for area_id in rows if area_id in covers]
    updates = [
        live_update(
            area_id,
            covers[area_id],
            rows[area_id][2],
            rows[area_id][0],
            rows[area_id][1],
            token=tokens.get(area_id, ""),
            clear_pending=True,
        )
        for area_id in todo
    ]
    results = redis_index.apply(live_generation, updates)
    return {area_id for area_id, result in zip(todo, results, strict=True) if result == redis_index.APPLIED}


def hide(area_ids: list[int], live_generation: int | None = None, tokens: dict[int, str] | None = None) -> None:
    """Take areas out of the live index and clear their pending registration, unless they changed again since
    their token was read (`tokens`; without them, unless they are pending): the newer change's build decides."""
    if not area_ids:
        return
    if live_generation is None:
        live_generation, _ = redis_index.generations()
        if live_generation is None:
            return
    tokens = tokens or {}
    redis_index.apply(live_generation, [forget_update(area_id, token=tokens.get(area_id, "")) for area_id in area_ids])


def forget(area_ids: list[int]) -> None:
    """Take deleted areas out of the live index and clear their pending registrations."""
    if not area_ids:
        return
    live_generation, _ = redis_index.generations()
    if live_generation is None:
        redis_index.unpend(dict.fromkeys(area_ids, "*"))
        return
    redis_index.apply(live_generation, [forget_update(area_id) for area_id in area_ids])
