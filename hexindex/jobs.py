"""Covers computed away from the database, possibly in a process pool (hexindex.bulk): an area's cover, its timing,
and its rows for the cell table already in PostgreSQL COPY text, so clips cross the process boundary as text,
once. Pure and picklable: no Django."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import shapely

from hexindex.cover import Cover, CoverError, cover


@dataclass
class CoverJob:
    """An area's cover, computed away from the database (possibly in another process), with its timing and its
    rows for the cell table already in COPY format (so clips cross the process boundary as text, once)."""

    area_id: int
    version: int
    cover: Cover | None
    seconds: float
    error: str = ""
    copy_rows: str = ""


def cover_job(job: tuple[int, int, bytes]) -> CoverJob:
    """(area_id, version, WKB) -> CoverJob. Picklable and free of Django, so a process pool can run it."""
    area_id, version, wkb = job
    started = time.perf_counter()
    try:
        result = cover(shapely.from_wkb(wkb))
    except (CoverError, shapely.errors.GEOSException, ValueError) as exc:
        return CoverJob(area_id, version, None, time.perf_counter() - started, f"{exc.__class__.__name__}: {exc}")
    rows = copy_rows(area_id, result)
    result.clips = []  # now in `rows`
    return CoverJob(area_id, version, result, time.perf_counter() - started, copy_rows=rows)


def copy_rows(area_id: int, result: Cover) -> str:
    """The cover as rows of the cell table (cell, area, boundary, inside, crossing, clip as hex EWKB) in PostgreSQL
    COPY text. Masks are stored as signed 64-bit integers (PostgreSQL has no unsigned type)."""
    clips = np.array(result.clips, dtype=object)
    clip_text = np.full(len(clips), "\\N", dtype=object)
    present = np.array([clip is not None for clip in result.clips], dtype=bool)
    if present.any():
        clip_text[present] = shapely.to_wkb(shapely.set_srid(clips[present], 4326), hex=True, include_srid=True)
    inside = result.inside.view(np.int64).tolist()
    crossing = result.crossing.view(np.int64).tolist()
    interior = "".join(f"{cell}\t{area_id}\tf\t0\t0\t\\N\n" for cell in result.interior)
    boundary = "".join(
        f"{cell}\t{area_id}\tt\t{i}\t{c}\t{text}\n"
        for cell, i, c, text in zip(result.boundary, inside, crossing, clip_text, strict=True)
    )
    return interior + boundary
