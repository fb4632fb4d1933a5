"""H3 cell math a lookup needs: a point's cell chain, the digits that locate it inside a boundary cell, and the
masks that settle it there. Pure: h3 and numpy, no Django.

A point's *cell chain* is its H3 cell at MAX_RES and that cell's ancestors at every coarser resolution
(`point_cells`). The lookup only ever asks about those cells. How an area is covered with cells, and why the
cover is complete and exact, is hexindex.cover; where a changing area is registered, hexindex.pending.
"""

from __future__ import annotations

from itertools import pairwise

import h3.api.basic_int as h3
import numpy as np

MAX_RES = 12  # ~10 m edges: the finest resolution an area is indexed at, and the root of every cell chain
# Points closer than this (degrees, ~0.1 mm) to a clip's outline are checked against the whole area: there the
# clip's new vertices could round differently from the original edges. Far above float noise (~1e-13 here).
EXACT_CHECK_MARGIN = 1e-9

# The masks: bit d (0..6) is child d, bit 7 + 7 * d + e grandchild (d, e). UNREFINED is set in both levels' lookup
# positions when a level cannot be classified (past MAX_RES, or no disc form): "crossing, check exactly".
UNREFINED_BIT = 63
UNREFINED = np.uint64(((1 << 56) - 1) | (1 << UNREFINED_BIT))


# --- points ------------------------------------------------------------------------------------------------


def point_cells(lat: float, lng: float, max_res: int = MAX_RES) -> list[int]:
    """The point's cell chain, coarsest first: [ancestor at res 0, ..., cell at max_res]."""
    cell = h3.latlng_to_cell(lat, lng, max_res)
    return [h3.cell_to_parent(cell, res) for res in range(max_res)] + [cell]


def digit(cell: int, res: int) -> int:
    """The cell's index digit at `res` (which child of its ancestor at res - 1 its chain passes through)."""
    return (cell >> (3 * (15 - res))) & 7


_DIGIT_SHIFTS = [3 * (15 - res) for res in range(1, MAX_RES + 1)]


def mask_bits(cell: int) -> tuple[np.ndarray, np.ndarray]:
    """For a point's MAX_RES cell: per boundary resolution R (0..MAX_RES), the mask bit of its child at R+1 and
    of its grandchild at R+2, or UNREFINED_BIT where those levels are past MAX_RES."""
    digits = [(cell >> shift) & 7 for shift in _DIGIT_SHIFTS]  # resolutions 1..MAX_RES
    first = [*digits, UNREFINED_BIT]
    second = [7 + 7 * d1 + d2 for d1, d2 in pairwise(digits)] + [UNREFINED_BIT, UNREFINED_BIT]
    return np.array(first, np.uint64), np.array(second, np.uint64)


def settle(inside: int, crossing: int, first_bit: int, second_bit: int) -> int:
    """1 inside, 0 outside, -1 needs an exact check: what a boundary record's masks say about a point."""
    if inside >> first_bit & 1:
        return 1
    if not crossing >> first_bit & 1:
        return 0
    if inside >> second_bit & 1:
        return 1
    return -1 if crossing >> second_bit & 1 else 0
