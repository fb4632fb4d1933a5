"""Where an area is registered while it changes (hexindex.invalidation): cells such that every point of the area's
bounding boxes has one of them in its cell chain, so a lookup finds the pending area through its own chain. Pure:
h3 and numpy, no Django."""

from __future__ import annotations

import math
from functools import lru_cache

import h3.api.basic_int as h3
import numpy as np

from hexindex.cells import MAX_RES

PENDING_RING = 3  # grid steps around each sample's cell (see pending_cells)
PENDING_SAMPLE_EDGES = 0.5  # sample spacing, in average cell edges
PENDING_BOX_EDGES = 4.0  # the resolution is the finest whose average edge is at least a quarter of the box
_KM_PER_DEGREE_LAT, _KM_PER_DEGREE_LNG = 111.25, 111.33


def pending_cells(boxes: list[tuple[float, float, float, float]]) -> list[int] | None:
    """Cells at which an area whose polygon parts have these bounding boxes (west, south, east, north) is
    registered while it changes: every point of every box has one of them in its cell chain. None when a box is
    too large for that (register everywhere).

    Each box is sampled on a grid no coarser than half an average cell edge A (in km along parallels and
    meridians). Any point q of the box is then within 0.5 A of a sample s, and the centres of their chain cells
    are within 0.5 A + 2 reaches (each at most 1.17 of a cell radius, itself under 1.25 A) < 3.5 A of each other,
    while cells three grid steps apart have centres at least 4.5 edges (over 4 A with H3's smallest edges)
    apart. So q's cell is within PENDING_RING (3) steps of s's.
    """
    found: set[int] = set()
    for west, south, east, north in boxes:
        widest = 0.0 if south <= 0.0 <= north else min(abs(south), abs(north))
        width = (east - west) * _KM_PER_DEGREE_LNG * math.cos(math.radians(widest))
        height = (north - south) * _KM_PER_DEGREE_LAT
        res = next(
            (r for r in range(MAX_RES, -1, -1) if PENDING_BOX_EDGES * _average_edge_km(r) >= max(width, height)), None
        )
        if res is None:
            return None
        step = PENDING_SAMPLE_EDGES * _average_edge_km(res)
        lats = np.linspace(south, north, math.ceil(height / step) + 1)
        lngs = np.linspace(west, east, math.ceil(width / step) + 1)
        samples = {h3.latlng_to_cell(lat, lng, res) for lat in lats.tolist() for lng in lngs.tolist()}
        for cell in samples:
            found.update(h3.grid_disk(cell, PENDING_RING))
    return sorted(found)


@lru_cache(maxsize=16)
def _average_edge_km(res: int) -> float:
    return h3.average_hexagon_edge_length(res, "km")
