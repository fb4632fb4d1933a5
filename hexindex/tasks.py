"""Celery tasks for the index. They take ids and versions, are idempotent, and skip stale work."""

from celery import shared_task
from django.db import DatabaseError
from redis.exceptions import RedisError

from core.tasks import DeliveryCountingTask
from hexindex import build, invalidation, maintenance

TRANSIENT = (DatabaseError, RedisError)
# Builds survive a worker crash (late ack) and retry transient failures with growing, jittered delays.
RETRYING = {
    "acks_late": True,
    "autoretry_for": TRANSIENT,
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
}


class IndexTask(DeliveryCountingTask):
    """A failure shows on the area (properties.index), and the sweep tries again later."""

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        # Retries exhausted, or an unexpected error.
        area_id, version = _area_and_version(args, kwargs)
        build.record_failures({area_id: (version, f"{exc.__class__.__name__}: {exc}")})

    def on_worker_deaths(self, deaths, args, kwargs):
        super().on_worker_deaths(deaths, args, kwargs)
        area_id, version = _area_and_version(args, kwargs)
        build.record_failures({area_id: (version, f"killed its worker {deaths} times")})


def _area_and_version(args, kwargs) -> tuple[int, int]:
    """index_area's arguments, however it was called."""
    bound = dict(zip(("area_id", "version"), args, strict=False), **kwargs)
    return bound["area_id"], bound["version"]


@shared_task(base=IndexTask, name="hexindex.index_area", soft_time_limit=120, time_limit=180, **RETRYING)
def index_area(area_id: int, version: int) -> str:
    """Cover one area's geometry (at this version) with H3 cells and make it live in the index."""
    report = build.index_areas([area_id], versions={area_id: version})
    if report.indexed:
        return (
            f"indexed area {area_id} v{version}: {report.interior_cells} interior + {report.boundary_cells} "
            f"boundary cells, cover in {report.cover_seconds[0] * 1000:.1f} ms"
            + ("" if report.live else "; changed again since, left pending")
        )
    if report.failed:
        return f"failed area {area_id} v{version}: {report.failed[area_id]}"
    if report.live:
        return f"refreshed area {area_id} v{version}: its lookup result is live again"
    return f"skipped area {area_id} v{version}: already live, changed since, or deleted"


@shared_task(name="hexindex.refresh_areas", soft_time_limit=600, time_limit=900, **RETRYING)
def refresh_areas(area_ids: list[int]) -> str:
    """Bring several areas' index up to date (builds what is not indexed, then makes them live): after a
    provider rename, a bulk import, or from the sweep."""
    report = build.index_areas(area_ids)
    return (
        f"{len(area_ids)} areas: {len(report.indexed)} indexed, {len(report.live)} made live, "
        f"{len(report.skipped)} skipped, {len(report.failed)} failed"
    )


# Retried like the builds: a rebuild that meets PostgreSQL down (Redis and PostgreSQL restarting together) would
# otherwise wait for the next request, a minute later, with lookups on PostGIS meanwhile.
@shared_task(name="hexindex.rebuild_redis", soft_time_limit=3540, time_limit=3600, **RETRYING)
def rebuild_redis_index() -> str:
    """Rebuild the Redis mirror of the index from PostgreSQL (e.g. after Redis restarted empty)."""
    report = maintenance.rebuild_redis()
    if report.generation is None:
        return "another rebuild is running"
    return (
        f"generation {report.generation}: {report.records} records in {report.fields} fields, {report.live} areas "
        f"live, {report.pending} pending, {report.seconds:.1f} s"
    )


@shared_task(name="hexindex.sweep", time_limit=300)
def sweep_index() -> dict:
    """Periodic backstop: re-enqueue areas stuck pending or failed, reconcile Redis with PostgreSQL, and rebuild
    Redis when it has no index."""
    return maintenance.sweep()


@shared_task(name="hexindex.replay_deferred", ignore_result=True, soft_time_limit=20, time_limit=30)
def replay_deferred() -> int:
    """Registrations Redis could not take (a revocation while it was down or full), into Redis once it can.
    Every few seconds; a no-op (one indexed probe) when none wait."""
    if not invalidation.deferred_waiting():
        return 0
    try:
        return invalidation.replay_deferred()
    except RedisError:
        return 0  # still away: the next run tries again
