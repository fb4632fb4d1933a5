"""Binary encodings of the index's Redis values. Pure: numpy, struct and h3 only, unit-testable without Redis.

Records live in one Redis hash per *anchor* (the H3 cell at ANCHOR_RES that contains a cell; cells coarser than
that are copied into every anchor below them), one field per (cell, kind), so a point's whole cell chain is one
HMGET of one key:

    field  = <cell: 8 bytes big-endian><kind: b"i" interior | b"b" boundary>
    value  = records sorted by area id, fixed size:
             interior  <area: u32 big-endian><version: u32>                                  8 bytes
             boundary  <area: u32 big-endian><version: u32><inside: u64><crossing: u64>      24 bytes

Area ids are big-endian so that Lua can binary-search them with `struct.unpack('>I4', ...)`; the masks (see
hexindex.cells) are little-endian, as numpy reads them. An area's *version* is its geometry version plus its
payload version: both only grow, so the sum changes whenever either does, and whatever a web process caches for
(area, version) (its serialised result, its shape near a cell) never goes stale.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

import h3.api.basic_int as h3
import numpy as np

from hexindex.cells import MAX_RES

ANCHOR_RES = 3  # ~60 km cells: a point's records are one hash of a few thousand fields at most
INTERIOR = np.dtype([("area", ">u4"), ("version", "<u4")])
BOUNDARY = np.dtype([("area", ">u4"), ("version", "<u4"), ("inside", "<u8"), ("crossing", "<u8")])
KIND_INTERIOR, KIND_BOUNDARY = b"i", b"b"
MAX_AREA_ID = 2**32 - 1

_RES_SHIFT = 52
_RES_BITS = 0xF << _RES_SHIFT
# For each resolution r, the bits of digits r+1..15: set to 7 ("unused") in an index at resolution r.
_UNUSED_DIGITS = [(1 << (3 * (15 - r))) - 1 for r in range(16)]
_CHAIN = struct.Struct(f">{MAX_RES + 1}Q")


def parent(cell: int, res: int) -> int:
    """H3 parent by bit arithmetic (h3.cell_to_parent without the call): the lookup does this 13 times."""
    return (cell & ~_RES_BITS & ~_UNUSED_DIGITS[res]) | (res << _RES_SHIFT) | _UNUSED_DIGITS[res]


def parents(cells: np.ndarray, res: int) -> np.ndarray:
    """`parent` over an array of cells at `res` or finer."""
    cells = cells.astype(np.uint64)
    unused = np.uint64(_UNUSED_DIGITS[res])
    return (cells & ~np.uint64(_RES_BITS) & ~unused) | np.uint64(res << _RES_SHIFT) | unused


_KEEP = [~_RES_BITS & ~_UNUSED_DIGITS[res] for res in range(16)]
_SET = [(res << _RES_SHIFT) | _UNUSED_DIGITS[res] for res in range(16)]


def chain(cell: int) -> list[int]:
    """The cell chain of a MAX_RES cell, coarsest first (same as hexindex.cells.point_cells)."""
    return [(cell & _KEEP[res]) | _SET[res] for res in range(MAX_RES)] + [cell]


def chain_fields(cells: list[int]) -> list[bytes]:
    """The 8-byte names of a chain's cells, as the lookup script appends kinds to them."""
    packed = _CHAIN.pack(*cells)
    return [packed[i : i + 8] for i in range(0, len(packed), 8)]


def cell_name(cell: int) -> bytes:
    return cell.to_bytes(8, "big")


def field(cell: int, kind: bytes) -> bytes:
    return cell.to_bytes(8, "big") + kind


def anchor_name(anchor: int) -> str:
    return f"{anchor:x}"


def anchors(cell: int) -> list[int]:
    """The anchors whose hash holds the cell's records: its ancestor at ANCHOR_RES, or for a coarser cell every
    descendant at ANCHOR_RES (a point's chain passes through both)."""
    res = h3.get_resolution(cell)
    if res >= ANCHOR_RES:
        return [parent(cell, ANCHOR_RES)]
    return h3.cell_to_children(cell, ANCHOR_RES)


class Placement(NamedTuple):
    anchor: str
    field: bytes


def placements(interior: list[int], boundary: list[int]) -> Iterator[Placement]:
    """Where an area's records go: (anchor, field) for each cell of its cover."""
    for cells, kind in ((interior, KIND_INTERIOR), (boundary, KIND_BOUNDARY)):
        for cell in cells:
            name = field(cell, kind)
            for anchor in anchors(cell):
                yield Placement(anchor_name(anchor), name)


def area_version(geometry_version: int, payload_version: int) -> int:
    return geometry_version + payload_version


def interior_record(area_id: int, version: int) -> bytes:
    return np.array([(area_id, version)], INTERIOR).tobytes()


def boundary_records(area_id: int, version: int, inside: np.ndarray, crossing: np.ndarray) -> list[bytes]:
    records = np.zeros(len(inside), BOUNDARY)
    records["area"], records["version"] = area_id, version
    records["inside"], records["crossing"] = inside, crossing
    raw = records.tobytes()
    return [raw[i : i + BOUNDARY.itemsize] for i in range(0, len(raw), BOUNDARY.itemsize)]


# --- an area's state: which cells hold its records, for the versions it was made live with ------------------

_STATE_HEADER = struct.Struct("<III")  # geometry version, payload version, number of interior cells


class AreaState(NamedTuple):
    geometry_version: int
    payload_version: int
    interior: list[int]
    boundary: list[int]


def encode_state(state: AreaState) -> bytes:
    cells = np.array(state.interior + state.boundary, dtype="<u8")
    header = _STATE_HEADER.pack(state.geometry_version, state.payload_version, len(state.interior))
    return header + cells.tobytes()


def decode_state(raw: bytes) -> AreaState:
    geometry_version, payload_version, interior_count = _STATE_HEADER.unpack_from(raw)
    cells = np.frombuffer(raw, dtype="<u8", offset=_STATE_HEADER.size).tolist()
    return AreaState(geometry_version, payload_version, cells[:interior_count], cells[interior_count:])


def encode_versions(geometry_version: int, payload_version: int) -> bytes:
    return b"%d:%d" % (geometry_version, payload_version)


def decode_versions(raw: bytes) -> tuple[int, int]:
    geometry_version, payload_version = raw.split(b":")
    return int(geometry_version), int(payload_version)


# --- results ---------------------------------------------------------------------------------------------------

_RESULT_HEADER = struct.Struct("<Iq")  # area version, price in cents (the sort key)


def encode_result(version: int, price_cents: int, body: bytes) -> bytes:
    return _RESULT_HEADER.pack(version, price_cents) + body


def decode_result(raw: bytes) -> tuple[int, int, bytes]:
    version, price_cents = _RESULT_HEADER.unpack_from(raw)
    return version, price_cents, raw[_RESULT_HEADER.size :]


# --- pending registrations -------------------------------------------------------------------------------------


def pack_cells(cells: list[int]) -> bytes:
    return b"".join(cell.to_bytes(8, "big") for cell in cells)


# --- shared outlines (hexindex.caches.Shapes, shared between web processes through Redis) -----------------------


def shape_field(area: int, cell: int) -> bytes:
    """The shared outline's name in Redis: area and cell (all ones for an area checked whole)."""
    return area.to_bytes(4, "big") + (cell & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")


def encode_shape(version: int, segments: np.ndarray) -> bytes:
    return version.to_bytes(4, "little") + segments.astype("<f8").tobytes()


def decode_shape(raw: bytes) -> tuple[int, np.ndarray]:
    return int.from_bytes(raw[:4], "little"), np.frombuffer(raw, "<f8", offset=4).reshape(-1, 4)
