"""The cell table in PostgreSQL: the index's source of truth (hexindex_areacell). The only module that writes it.

One row per (cell, area): interior cells (any resolution, compacted) and boundary cells (the area's resolution)
with their two masks (hexindex.cover) and, for areas with many vertices, the area clipped to the cell's reach.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from django.db import connection

from hexindex.cover import Cover

COLUMNS = "cell, area_id, boundary, inside, crossing, clip"


def replace(rows_by_area: dict[int, str]) -> None:
    """Delete the areas' rows and write their new ones (COPY text from `jobs.copy_rows`). Call inside a
    transaction."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM hexindex_areacell WHERE area_id = ANY(%s)", [list(rows_by_area)])
        cursor.cursor.copy_expert(
            f"COPY hexindex_areacell ({COLUMNS}) FROM STDIN", io.StringIO("".join(rows_by_area.values()))
        )


def covers(area_ids: list[int]) -> dict[int, Cover]:
    """area_id -> its cover as stored (without clips), for areas that have rows."""
    found: dict[int, tuple[list, list, list, list]] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT area_id, cell, boundary, inside, crossing FROM hexindex_areacell WHERE area_id = ANY(%s) "
            "ORDER BY area_id, cell",
            [list(area_ids)],
        )
        for area_id, cell, boundary, inside, crossing in cursor.fetchall():
            interior, edge, insides, crossings = found.setdefault(area_id, ([], [], [], []))
            if boundary:
                edge.append(cell)
                insides.append(inside)
                crossings.append(crossing)
            else:
                interior.append(cell)
    result = {}
    for area_id, (interior, edge, insides, crossings) in found.items():
        result[area_id] = Cover(
            resolution=-1,
            interior=interior,
            boundary=edge,
            inside=np.array(insides, dtype=np.int64).view(np.uint64),
            crossing=np.array(crossings, dtype=np.int64).view(np.uint64),
        )
    return result


@dataclass
class AllCells:
    """Every row of the cell table (clips aside), as arrays."""

    cell: np.ndarray  # uint64
    area: np.ndarray  # int64
    boundary: np.ndarray  # bool
    inside: np.ndarray  # uint64
    crossing: np.ndarray  # uint64


# COPY ... (FORMAT binary): a 19-byte header, then per row a field count (int16) and per field its length (int32)
# and value, big-endian; a trailer of -1. With no NULLs every row has the same size, so numpy reads it directly.
_COPY_HEADER = 19
_ROW = np.dtype(
    [("fields", ">i2"), ("l1", ">i4"), ("cell", ">i8"), ("l2", ">i4"), ("area", ">i8"), ("l3", ">i4"),
     ("boundary", ">i2"), ("l4", ">i4"), ("inside", ">i8"), ("l5", ">i4"), ("crossing", ">i8")]
)  # fmt: skip


def read_all() -> AllCells:
    """The whole table in one sequential scan, parsed without a Python loop (a Redis rebuild reads ~12 million
    rows at 200,000 areas). Run inside the snapshot's transaction."""
    buffer = io.BytesIO()
    with connection.cursor() as cursor:
        cursor.cursor.copy_expert(
            "COPY (SELECT cell, area_id, boundary::int::int2, inside, crossing FROM hexindex_areacell) "
            "TO STDOUT (FORMAT binary)",
            buffer,
        )
    raw = buffer.getbuffer()
    count = (len(raw) - _COPY_HEADER - 2) // _ROW.itemsize
    rows = np.frombuffer(raw, dtype=_ROW, count=count, offset=_COPY_HEADER)
    if count and not ((rows["fields"] == 5).all() and (rows["l1"] == 8).all() and (rows["l4"] == 8).all()):
        raise ValueError("unexpected COPY row layout")
    result = AllCells(
        cell=rows["cell"].astype(np.uint64),
        area=rows["area"].astype(np.int64),
        boundary=rows["boundary"].astype(bool),
        inside=rows["inside"].astype(np.int64).view(np.uint64),
        crossing=rows["crossing"].astype(np.int64).view(np.uint64),
    )
    del rows
    raw.release()
    buffer.close()
    return result


def size() -> tuple[int, int]:
    """(rows, bytes with indexes)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), pg_total_relation_size('hexindex_areacell') FROM hexindex_areacell")
        return cursor.fetchone()
