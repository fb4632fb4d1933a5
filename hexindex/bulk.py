"""Building the index of many areas at once (manage.py reindex, manage.py import_areas): covers computed in a
pool of processes while the previous batch is written."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from multiprocessing import get_context

from hexindex import cells
from hexindex.services import BuildReport, load_jobs, write_builds


def build_index(
    area_ids: list[int],
    *,
    force: bool = False,
    workers: int | None = None,
    batch_size: int = 250,
    progress: Callable[[int], None] | None = None,
) -> BuildReport:
    report = BuildReport()
    if not area_ids:
        return report
    # Worker processes start from a clean forkserver (not forked from this process, which holds database
    # connections) and only import the Django-free cell math.
    context = get_context("forkserver")
    context.set_forkserver_preload(["hexindex.cells"])
    with context.Pool(workers) as pool:
        computing, computing_size = None, 0
        for start in range(0, len(area_ids), batch_size):
            batch = area_ids[start : start + batch_size]
            jobs, skipped = load_jobs(batch, force=force)
            report.skipped += skipped
            following = pool.map_async(cells.cover_job, jobs, chunksize=8)
            if computing is not None:
                write_builds(computing.get(), report)
                if progress:
                    progress(computing_size)
            computing, computing_size = following, len(batch)
        if computing is not None:
            write_builds(computing.get(), report)
            if progress:
                progress(computing_size)
    return report


def summarise(report: BuildReport, seconds: float) -> str:
    cells_total = report.interior_cells + report.boundary_cells
    lines = [
        f"Indexed {len(report.indexed)} areas ({len(report.skipped)} skipped, {len(report.failed)} failed) in "
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
