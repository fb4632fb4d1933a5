"""Building the index of many areas at once (manage.py reindex, manage.py import_areas): covers computed in a
pool of processes while the previous batch is written."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from multiprocessing import get_context

from django.db import connection

from hexindex import jobs, maintenance, redis_index
from hexindex.build import BuildReport, complete, make_areas_live, prepare
from hexindex.models import INDEXED_SQL

_AREA_IDS_SQL = "SELECT a.id FROM areas_servicearea a WHERE (%(all)s OR a.id = ANY(%(ids)s)) ORDER BY a.id"
_STALE_SQL = f"""
SELECT a.id FROM areas_servicearea a
WHERE (%(all)s OR a.id = ANY(%(ids)s)) AND (NOT {INDEXED_SQL} OR a.id = ANY(%(pending)s))
ORDER BY a.id
"""


def area_ids_to_index(ids: list[int] | None = None, *, force: bool = False) -> list[int]:
    """The areas (all, or these) whose index is not live: not indexed at their current geometry, or pending in
    Redis. With `force`, all of them."""
    params = {"all": ids is None, "ids": ids or [], "pending": [] if force else list(redis_index.pending_tokens_all())}
    with connection.cursor() as cursor:
        cursor.execute(_AREA_IDS_SQL if force else _STALE_SQL, params)
        return [row[0] for row in cursor.fetchall()]


# Above this many areas, making each one live in Redis costs more than rebuilding Redis from the cell table once.
REBUILD_ABOVE = 20_000


@redis_index.bulk
def build_index(
    area_ids: list[int],
    *,
    force: bool = False,
    workers: int | None = None,
    batch_size: int = 250,
    progress: Callable[[int], None] | None = None,
) -> BuildReport:
    """Build and make live the index of the given areas; one batch is computed while the previous is written."""
    total = BuildReport()
    if not area_ids:
        return total
    # Without a live generation nothing can be made live one by one: the rebuild creates one.
    rebuild = len(area_ids) > REBUILD_ABOVE or redis_index.live_generation() is None
    tokens: dict[int, str] = {}
    # Worker processes start from a clean forkserver (not forked from this process, which holds database
    # connections) and only import the Django-free cell math. Their numpy works on tiny arrays: BLAS threads
    # would only spin against the other workers.
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    context = get_context("forkserver")
    context.set_forkserver_preload(["hexindex.jobs"])
    with context.Pool(workers) as pool:
        previous = None
        for start in range(0, len(area_ids) + batch_size, batch_size):
            batch_ids = area_ids[start : start + batch_size]
            following = None
            if batch_ids:
                batch = prepare(batch_ids, force=force)
                following = (batch, pool.map_async(jobs.cover_job, batch.jobs, chunksize=8), len(batch_ids))
            if previous is not None:
                done_batch, computing, size = previous
                total.merge(complete(done_batch, computing.get(), make_live=not rebuild))
                tokens.update(done_batch.tokens)
                if progress:
                    progress(size)
            previous = following
    if rebuild:
        if maintenance.rebuild_redis().generation is not None:
            total.live = sorted(set(total.indexed) | set(total.live))
        else:  # another rebuild holds the lock: make them live one by one
            total.live = sorted(make_areas_live(total.indexed, tokens, {}))
    return total


def summarise(report: BuildReport, seconds: float) -> str:
    cells_total = report.interior_cells + report.boundary_cells
    lines = [
        f"Indexed {len(report.indexed)} areas, {len(report.live)} live ({len(report.skipped)} skipped, "
        f"{len(report.failed)} failed) in "
        f"{seconds:.1f} s: {cells_total} cells ({report.interior_cells} interior, {report.boundary_cells} boundary)"
    ]
    if report.indexed:
        times = sorted(report.cover_seconds)
        lines.append(
            f"Per area: {cells_total / len(report.indexed):.1f} cells on average; cover computed in "
            f"{statistics.median(times) * 1000:.1f} ms median, {times[int(len(times) * 0.99)] * 1000:.1f} ms p99 "
            "(one process)"
        )
    return "\n".join(lines)
