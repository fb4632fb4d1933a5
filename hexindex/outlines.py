"""Exact checks in the web process: an area's outline as segments, and whether it covers a point, settled here
unless the point is too close to the outline to decide (then PostGIS decides: hexindex.selectors)."""

from __future__ import annotations

import numpy as np
import shapely

from hexindex.cells import EXACT_CHECK_MARGIN


def outline_segments(shape) -> np.ndarray:
    """Every ring's edges as rows (x0, y0, x1, y1)."""
    rings = shapely.get_rings(shapely.get_parts(shape))
    coords, ring = shapely.get_coordinates(rings, return_index=True)
    same = ring[1:] == ring[:-1]
    return np.ascontiguousarray(np.hstack([coords[:-1][same], coords[1:][same]]))


def covered_or_unsure(lng: float, lat: float, shapes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """For each shape (its outline segments): does it cover the point, and is the point within
    EXACT_CHECK_MARGIN of its outline (then only PostGIS may decide)? Crossing-number point in polygon, vectorised
    over all shapes at once; it agrees with PostGIS for every point farther than the margin from an edge."""
    counts = np.fromiter(map(len, shapes), np.int64, len(shapes))
    segments = np.concatenate(shapes)
    owner = np.repeat(np.arange(len(shapes)), counts)
    x0, y0, x1, y1 = segments[:, 0], segments[:, 1], segments[:, 2], segments[:, 3]
    straddles = (y0 > lat) != (y1 > lat)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = x0 + (lat - y0) * (x1 - x0) / (y1 - y0)
    crossings = np.bincount(owner[straddles & (lng < x_at)], minlength=len(shapes))
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy
    t = np.clip(((lng - x0) * dx + (lat - y0) * dy) / np.where(length2 > 0, length2, 1.0), 0.0, 1.0)
    near = ((x0 + t * dx - lng) ** 2 + (y0 + t * dy - lat) ** 2) <= EXACT_CHECK_MARGIN**2
    unsure = np.bincount(owner[near], minlength=len(shapes)) > 0
    return (crossings % 2 == 1), unsure
