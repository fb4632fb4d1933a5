"""Covering an area with H3 cells for the index. Pure: shapely, numpy and h3 only, no Django.

Vocabulary
----------
A point's *cell chain* is its H3 cell at MAX_RES and that cell's ancestors at every coarser resolution
(`point_cells`). The lookup only ever asks about those cells. H3 cells do not nest exactly: the points whose
chain passes through cell X are the union of X's descendants at MAX_RES, a fractal blob that pokes out of X's own
hexagon by up to ~17% of its radius. Call it X's *reach*.

A cover classifies cells against an area, always by a proven superset of each cell's reach:

- *interior*: the superset lies inside the area, so every point whose chain passes through the cell is covered,
  with a margin far wider than floating-point noise (PostGIS agrees).
- *boundary* (crossing): the superset meets the outline; a point there may or may not be covered.
- anything else holds no point of the area.

Two supersets are used:

- `cover_polygons`: the cell's boundary pushed out by ENLARGE from its centre (on the sphere near the poles),
  written in planar longitude/latitude, the space in which PostGIS evaluates `ST_Covers` for SRID 4326. Exact
  and general, but costs microseconds per cell in h3 calls. Used for the coarse flood fill and wherever the
  cheap form below does not apply.
- *discs*: for the children and grandchildren of a cell P away from pentagons, icosahedron face edges, the poles
  and the antimeridian, H3's grid is locally affine: P's children sit at P's centre plus the six unit vectors of
  the hexagonal lattice mapped by a 2x2 matrix, and their children likewise at one level down. Both matrices
  come from exact centres of four probe cells, so one level costs a few array operations instead of an h3 call
  per cell. A cell's reach lies within DISC_REACH sibling spacings of its predicted centre, measured in a frame
  where a degree of longitude is scaled by cos(latitude) (measured maximum 0.64 over 140,000 random points,
  near face edges included; DISC_REACH leaves 25% on top). A disc that misses the outline lies wholly inside or
  outside the area, and its centre says which.

The cover of an area at resolution R is: interior cells at R and coarser (compacted), boundary cells at R, and
for each boundary cell two 64-bit masks classifying its 7 children and 49 grandchildren (REFINE_LEVELS = 2): a
lookup reads the point's digits at R+1 and R+2 from its own cell chain and settles most boundary candidates,
inside or outside, without an exact check.

Coverage is complete by construction: cells are found by flood fill over the cell graph from a vertex of every
polygon part, refined level by level, never by H3's centre-containment `polygon_to_cells` (which misses narrow
and small areas and reads polygon edges as great circles, while PostGIS reads them as straight lines in
longitude/latitude).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from functools import lru_cache
from itertools import chain

import h3.api.basic_int as h3
import numpy as np
import shapely
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from hexindex.cells import MAX_RES, UNREFINED, UNREFINED_BIT

ENLARGE = 1.25  # > 1.17, the measured reach of a cell's descendants relative to its own radius
DISC_REACH = 0.8  # disc radius per sibling spacing; measured reach at most 0.64 (see the module docstring)
TARGET_BOUNDARY_CELLS = 64
MAX_BOUNDARY_CELLS = 4 * TARGET_BOUNDARY_CELLS
CLIP_MIN_VERTICES = 128  # areas with fewer vertices are checked whole: that is already cheap
TOP_LEVELS = 2  # the exact flood fill runs this many levels above the area's resolution
REFINE_LEVELS = 2  # levels below the boundary cells classified into their masks
MAX_CELLS_PER_LEVEL = 200_000  # a safety valve: refuse rather than exhaust memory
# Outlines are simplified by this share of the disc radius before distances are measured (and the radius grows
# by the same amount, which keeps the test exact): a 1,000-vertex smooth outline has far fewer segments near
# any one cell.
SIMPLIFY_SHARE = 0.05
SIMPLIFY_MIN_VERTICES = 64
DISC_MAX_LAT = 68.0  # where the disc form was measured; beyond it the exact polygons are used


_WORLD = box(-180.0, -90.0, 180.0, 90.0)
_POLYGON, _MULTIPOLYGON = 3, 6  # shapely type ids
_BOUNDARY_WIDTH = 10  # H3 boundaries have at most 10 vertices (pentagons and face-crossing cells)
_NEXT_VERTEX = np.r_[1:_BOUNDARY_WIDTH, 0]
_PLANAR_MIN_RES, _PLANAR_MAX_LAT = 3, 70.0
_EARTH_RADIUS_KM = 6371.0088

# H3 index layout: resolution in bits 52-55, digit r (1..15) in bits 3 * (15 - r) .. + 2.
_RES_SHIFT = np.uint64(52)
_RES_MASK = np.uint64(0xF) << _RES_SHIFT
# Digit -> direction of that child from the centre child in H3's hex2d plane (IJK axes: I at 0, J at 120 and K
# at 240 degrees; 3 = JK, 5 = IK, 6 = IJ between them). The lon/lat orientation is absorbed by the fitted matrix.
_DIGIT_ANGLES = np.radians([0.0, 240.0, 120.0, 180.0, 0.0, 300.0, 60.0])
UNIT = np.stack([np.cos(_DIGIT_ANGLES), np.sin(_DIGIT_ANGLES)], axis=1)
UNIT[0] = 0.0
_PROBE_BASIS_INV = np.linalg.inv(np.column_stack([UNIT[4], UNIT[2]]))


class CoverError(ValueError):
    """The geometry cannot be covered within the cell budget."""


@dataclass
class Cover:
    resolution: int
    interior: list[int] = field(default_factory=list)  # compacted: any resolution <= `resolution`
    boundary: list[int] = field(default_factory=list)  # all at `resolution`
    inside: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))  # masks, parallel to `boundary`
    crossing: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    clips: list[BaseGeometry | None] = field(default_factory=list)  # parallel to `boundary`; None: check whole


# --- exact cover polygons ----------------------------------------------------------------------------------


def _unit_vectors(lat_deg: np.ndarray, lng_deg: np.ndarray) -> np.ndarray:
    lat, lng = np.radians(lat_deg), np.radians(lng_deg)
    cos_lat = np.cos(lat)
    out = np.empty((*lat.shape, 3))
    out[..., 0] = cos_lat * np.cos(lng)
    out[..., 1] = cos_lat * np.sin(lng)
    out[..., 2] = np.sin(lat)
    return out


def _normalise(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.sqrt(np.einsum("...i,...i->...", vectors, vectors))[..., None]


def _densify_steps(res: int, edge: float, steepness: float) -> int:
    """Points per edge so that a straight lon/lat segment strays from its great-circle arc (sagitta, about
    edge * tan(latitude) / 8 of the edge for `steps` = 1) by under 1% of the edge."""
    needed = math.ceil(math.sqrt(edge * max(steepness, 1.0) / 0.08))
    return int(min(max(needed, 1, 4 if res <= 3 else 1), 64))


def _enlarge_planar(latlng: np.ndarray, centres: np.ndarray, enlarge: float) -> tuple[np.ndarray, np.ndarray]:
    """Scale the boundary about the centre in lon/lat. For cells of resolution 3 and finer away from the poles
    this is what the reach was measured in, and their edges are straight in lon/lat to well within the margin."""
    centre_lat, centre_lng = centres[:, 0:1], centres[:, 1:2]
    ring_lat = centre_lat + enlarge * (latlng[..., 0] - centre_lat)
    ring_lng = centre_lng + enlarge * ((latlng[..., 1] - centre_lng + 180.0) % 360.0 - 180.0)
    return ring_lat, ring_lng


def _enlarge_on_sphere(
    latlng: np.ndarray, centres: np.ndarray, enlarge: float, res: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale the boundary about the centre on the sphere and densify it along great circles: for coarse cells
    and high latitudes, where lon/lat distorts."""
    n, width = latlng.shape[:2]
    centre = _unit_vectors(centres[:, 0], centres[:, 1])[:, None, :]

    # Push the boundary out from the centre in 3-D, where latitude does not distort distances.
    vertices = _unit_vectors(latlng[..., 0], latlng[..., 1])
    vertices = centre + enlarge * (vertices - centre)
    vertices = _normalise(vertices)
    radius = np.arccos(np.clip(np.einsum("nvi,nvi->nv", vertices, np.broadcast_to(centre, vertices.shape)), -1, 1))
    radius = radius.max(axis=1)
    pole_distance = np.radians(90.0 - np.abs(centres[:, 0]))
    # A cell that holds a pole, or nearly, has no sensible outline in lon/lat: it becomes the whole latitude
    # band up to the pole, a generous but safe superset.
    near_pole = pole_distance < 1.2 * radius

    # Densify each edge along its great circle (normalised linear interpolation stays on the arc) finely
    # enough that straight lon/lat segments stay within ~1% of the cell size of the true edge. The gap grows
    # with edge length and with tan(latitude) at the cell's most poleward point.
    closest_approach = (pole_distance - radius)[~near_pole]
    steepest = 1.0 / np.tan(closest_approach.min()) if closest_approach.size else 0.0
    steps = _densify_steps(res, edge=float(radius.max()), steepness=float(steepest))
    following = vertices[:, _NEXT_VERTEX]
    fractions = np.arange(steps) / steps
    ring = vertices[:, :, None, :] + fractions[None, None, :, None] * (following - vertices)[:, :, None, :]
    ring = ring.reshape(n, width * steps, 3)
    ring = _normalise(ring)

    ring_lat = np.degrees(np.arcsin(np.clip(ring[..., 2], -1.0, 1.0)))
    ring_lng = np.degrees(np.arctan2(ring[..., 1], ring[..., 0]))
    # Unwrap longitudes around the cell centre so a cell on the antimeridian stays one piece.
    ring_lng = centres[:, 1:2] + (ring_lng - centres[:, 1:2] + 180.0) % 360.0 - 180.0

    return ring_lat, ring_lng, near_pole


def cover_polygons(cells: list[int], enlarge: float = ENLARGE) -> np.ndarray:
    """For each cell, a planar lon/lat polygon containing the cell's reach (see module docstring).

    Vectorised over cells, which must share one resolution. Cells around a pole become a latitude band; cells
    crossing the antimeridian are split into a part on each side.
    """
    if not cells:
        return np.empty(0, dtype=object)
    res = h3.get_resolution(cells[0])
    n, width = len(cells), _BOUNDARY_WIDTH
    # Pad each boundary by repeating its first vertex: zero-length edges change nothing.
    padded = (b + (b[0],) * (width - len(b)) for b in map(h3.cell_to_boundary, cells))
    latlng = np.fromiter(chain.from_iterable(chain.from_iterable(padded)), float, n * width * 2)
    latlng = latlng.reshape(n, width, 2)
    centres = np.fromiter(chain.from_iterable(map(h3.cell_to_latlng, cells)), float, n * 2).reshape(n, 2)
    if res >= _PLANAR_MIN_RES and np.abs(latlng[..., 0]).max() < _PLANAR_MAX_LAT:
        ring_lat, ring_lng = _enlarge_planar(latlng, centres, enlarge)
        near_pole = np.zeros(n, dtype=bool)
    else:
        ring_lat, ring_lng, near_pole = _enlarge_on_sphere(latlng, centres, enlarge, res)

    polygons = shapely.polygons(np.stack([ring_lng, ring_lat], axis=-1))
    crosses = (ring_lng.min(axis=1) < -180.0) | (ring_lng.max(axis=1) > 180.0)
    for i in np.flatnonzero(near_pole | crosses):
        if near_pole[i]:
            # Great-circle arcs bulge towards the pole, so the outermost latitude is at a vertex.
            if centres[i, 0] > 0:
                polygons[i] = box(-180.0, ring_lat[i].min(), 180.0, 90.0)
            else:
                polygons[i] = box(-180.0, -90.0, 180.0, ring_lat[i].max())
        else:
            shift = 360.0 if ring_lng[i].min() < -180.0 else -360.0
            parts = [
                polygons[i].intersection(_WORLD),
                shapely.affinity.translate(polygons[i], xoff=shift).intersection(_WORLD),
            ]
            polygons[i] = shapely.union_all([p for p in parts if not p.is_empty])
    return polygons


# --- sizing ------------------------------------------------------------------------------------------------


def _vertex_count(geometry: BaseGeometry) -> int:
    return int(shapely.get_num_coordinates(geometry))


def _ring_length_km(coords: np.ndarray) -> float:
    lat, lng = np.radians(coords[:, 1]), np.radians(coords[:, 0])
    dlat, dlng = np.diff(lat), np.diff(lng)
    a = np.sin(dlat / 2) ** 2 + np.cos(lat[:-1]) * np.cos(lat[1:]) * np.sin(dlng / 2) ** 2
    return float(2 * _EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))).sum())


def outline_km(geometry: BaseGeometry) -> float:
    """Great-circle length of each part's convex hull, summed: the scale of the outline as cells see it.
    A jagged outline is no longer than its hull at cell scale, and far-apart parts do not merge."""
    total = 0.0
    for part in getattr(geometry, "geoms", [geometry]):
        hull = part.convex_hull
        total += _ring_length_km(np.asarray(getattr(hull, "exterior", hull).coords))
    return total


def choose_resolution(geometry: BaseGeometry, target: int = TARGET_BOUNDARY_CELLS) -> int:
    """The finest resolution at which the area's outline crosses about `target` cells, so that a 2 km airport
    zone and a 500 km region both get a bounded number of cells."""
    outline = outline_km(geometry)
    for res in range(MAX_RES, -1, -1):
        if outline / h3.average_hexagon_edge_length(res, "km") <= target:
            return res
    return 0


# --- exact classification (flood fill, and cells without a disc form) ---------------------------------------


def _seeds(geometry: BaseGeometry, res: int) -> set[int]:
    """One cell per polygon part, holding a vertex of its outline: every part is reached by the flood fill."""
    seeds = set()
    for part in getattr(geometry, "geoms", [geometry]):
        lng, lat = part.exterior.coords[0]
        seeds.add(h3.cell_to_parent(h3.latlng_to_cell(lat, lng, MAX_RES), res))
    return seeds


class _PolygonCache:
    """Cover polygons of recently used cells. Areas crowd around cities, so the same coarse cells come up again
    and again when many areas are covered by one process; computing a polygon costs far more than keeping it."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.polygons: dict[int, object] = {}

    def get(self, cells: list[int]) -> np.ndarray:
        polygons = np.empty(len(cells), dtype=object)
        missing = []
        for i, cell in enumerate(cells):
            polygon = self.polygons.get(cell)
            if polygon is None:
                missing.append(i)
            else:
                polygons[i] = polygon
        if missing:
            computed = cover_polygons([cells[i] for i in missing])
            polygons[missing] = computed
            if len(self.polygons) + len(missing) > self.capacity:
                for cell in list(self.polygons)[: len(self.polygons) // 2]:  # the oldest half
                    del self.polygons[cell]
            self.polygons.update(zip((cells[i] for i in missing), computed, strict=True))
        return polygons


_polygon_cache = _PolygonCache(capacity=100_000)


def _classify_exact(geometry: BaseGeometry, cells: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split same-resolution cells into interior and crossing ones by their cover polygons; cells that miss the
    area are dropped. Returns (interior cells, crossing cells, crossing cells' polygon bounds)."""
    cell_array = np.asarray(cells, dtype=np.uint64)
    if not cells:
        return cell_array, cell_array, np.zeros((0, 4))
    polygons = _polygon_cache.get(cells)
    touches = shapely.intersects(geometry, polygons)
    inside = touches & shapely.contains(geometry, polygons)
    edge = touches & ~inside
    return cell_array[inside], cell_array[edge], shapely.bounds(polygons[edge])


def _flood_fill(geometry: BaseGeometry, res: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    interior, crossing, bounds = [], [], []
    seen = frontier = _seeds(geometry, res)
    while frontier:
        inside, edge, edge_bounds = _classify_exact(geometry, sorted(frontier))
        interior.append(inside)
        crossing.append(edge)
        bounds.append(edge_bounds)
        neighbours = {n for cell in np.concatenate([inside, edge]).tolist() for n in h3.grid_disk(cell, 1)}
        frontier = neighbours - seen
        seen = seen | frontier
        if len(seen) > MAX_CELLS_PER_LEVEL:
            raise CoverError("the area needs too many cells at this resolution")
    return np.concatenate(interior), np.concatenate(crossing), np.concatenate(bounds)


def children(cells: np.ndarray, res: int) -> np.ndarray:
    """The seven children (digits 0..6) of each cell one resolution up, as an (n, 7) array of H3 indexes. For a
    pentagon, digit 1 is not a valid cell: callers keep pentagons away (see `_probe_safe`) or use h3."""
    shift = np.uint64(3 * (15 - res))
    base = (cells.astype(np.uint64) & ~_RES_MASK) | (np.uint64(res) << _RES_SHIFT)
    base &= ~(np.uint64(7) << shift)
    return base[:, None] | (np.arange(7, dtype=np.uint64) << shift)[None, :]


# --- disc classification -------------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _near_pentagon(res: int) -> frozenset[int]:
    """Cells within two steps of a pentagon: H3's grid is not affine there."""
    return frozenset(n for p in h3.get_pentagons(res) for n in h3.grid_disk(p, 2))


class _Outline:
    """The area's outline as segments (x0, y0, x1, y1), simplified per tolerance on demand."""

    def __init__(self, geometry: BaseGeometry):
        self.rings = shapely.get_rings(shapely.get_parts(geometry))
        self.vertices = _vertex_count(geometry)
        self._by_tolerance: dict[float, np.ndarray] = {}

    def segments(self, tolerance: float) -> tuple[np.ndarray, float]:
        """Segments within `tolerance` (degrees, Hausdorff) of the outline, and the tolerance actually used."""
        # Powers of two: a handful of simplifications per area, however many levels ask.
        tolerance = 0.0 if self.vertices < SIMPLIFY_MIN_VERTICES else 2.0 ** math.floor(math.log2(tolerance))
        if tolerance not in self._by_tolerance:
            # Each ring as a line: Douglas-Peucker keeps every dropped vertex within the tolerance of the result,
            # even for rings smaller than the tolerance (they shrink towards their first point).
            lines = shapely.linestrings(shapely.get_coordinates(self.rings), indices=self._ring_index())
            if tolerance:
                lines = shapely.simplify(lines, tolerance, preserve_topology=False)
            coords, owner = shapely.get_coordinates(lines, return_index=True)
            same = owner[1:] == owner[:-1]
            self._by_tolerance[tolerance] = np.hstack([coords[:-1][same], coords[1:][same]])
        return self._by_tolerance[tolerance], tolerance

    def _ring_index(self) -> np.ndarray:
        counts = shapely.get_num_coordinates(self.rings)
        return np.repeat(np.arange(len(self.rings)), counts)


@dataclass
class _Probe:
    """Exact geometry of disc-safe cells P: centre, and the affine maps from lattice unit vectors to the offsets
    of P's children from P's centre (a1), and of P's grandchildren from their parent's centre (a2), with the
    sibling spacings they imply in the isotropic frame."""

    cells: np.ndarray
    centre: np.ndarray  # (n, 2) lon, lat
    scale_x: np.ndarray  # cos(latitude): the isotropic frame
    a1: np.ndarray  # (n, 2, 2)
    a2: np.ndarray  # (n, 2, 2)
    spacing1: np.ndarray
    spacing2: np.ndarray

    def subset(self, keep: np.ndarray) -> _Probe:
        return _Probe(*(getattr(self, f.name)[keep] for f in fields(self)))

    @property
    def extent(self) -> np.ndarray:
        """How far (isotropic frame) from each centre its children's and grandchildren's discs reach, tolerance
        for simplified outlines included."""
        reach = np.maximum(DISC_REACH * self.spacing1, self.spacing2 + DISC_REACH * self.spacing2)
        return self.spacing1 + reach * (1 + 2 * SIMPLIFY_SHARE)

    def boxes(self) -> np.ndarray:
        extent = self.extent
        x, y = self.centre[:, 0], self.centre[:, 1]
        return np.column_stack([x - extent / self.scale_x, y - extent, x + extent / self.scale_x, y + extent])


def _spacing(a: np.ndarray, scale_x: np.ndarray) -> np.ndarray:
    """Largest distance, in the isotropic frame, from a cell's centre to one of its neighbours' at that level."""
    offsets = _offsets(a)[:, 1:]  # (n, 6, 2)
    return np.sqrt((offsets[..., 0] * scale_x[:, None]) ** 2 + offsets[..., 1] ** 2).max(axis=1)


def _probe(cells: np.ndarray, res: int) -> _Probe:
    kids = children(cells, res + 1)
    grandkids = children(kids[:, 0], res + 2)
    probes = np.column_stack([kids[:, 0], kids[:, 4], kids[:, 2], grandkids[:, 4], grandkids[:, 2]]).ravel()
    latlng = np.fromiter(chain.from_iterable(map(h3.cell_to_latlng, probes.tolist())), float, len(probes) * 2)
    lnglat = latlng.reshape(len(cells), 5, 2)[:, :, ::-1]
    centre = lnglat[:, 0]
    offsets = lnglat[:, 1:] - centre[:, None, :]
    offsets[..., 0] = (offsets[..., 0] + 180.0) % 360.0 - 180.0
    a1 = np.einsum("nij,jk->nik", np.stack([offsets[:, 0], offsets[:, 1]], axis=2), _PROBE_BASIS_INV)
    a2 = np.einsum("nij,jk->nik", np.stack([offsets[:, 2], offsets[:, 3]], axis=2), _PROBE_BASIS_INV)
    scale_x = np.cos(np.radians(centre[:, 1]))
    return _Probe(cells, centre, scale_x, a1, a2, _spacing(a1, scale_x), _spacing(a2, scale_x))


def _probe_safe(cells: np.ndarray, res: int) -> tuple[_Probe | None, np.ndarray]:
    """Probe the cells that have a disc form for two levels below them (see the module docstring): away from
    pentagons, icosahedron face edges, the poles and the antimeridian. Returns the probe and which cells it has."""
    safe = np.zeros(len(cells), bool)
    if res < _PLANAR_MIN_RES or res + 2 > 15 or not len(cells):
        return None, safe
    near = _near_pentagon(res)
    safe[:] = [c not in near and len(h3.get_icosahedron_faces(c)) == 1 for c in cells.tolist()]
    if not safe.any():
        return None, safe
    probe = _probe(cells[safe], res)
    extent = probe.extent
    fits = (np.abs(probe.centre[:, 1]) + extent < DISC_MAX_LAT) & (
        np.abs(probe.centre[:, 0]) + extent / probe.scale_x < 180.0
    )
    if not fits.all():
        safe[np.flatnonzero(safe)[~fits]] = False
        probe = probe.subset(fits)
    return (probe if len(probe.cells) else None), safe


def _pairs(boxes: np.ndarray, segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(box index, segment index) for every segment whose bounding box meets the box (minx, miny, maxx, maxy)."""
    low = np.minimum(segments[:, :2], segments[:, 2:])
    high = np.maximum(segments[:, :2], segments[:, 2:])
    meets = (
        (low[None, :, 0] <= boxes[:, 2:3])
        & (high[None, :, 0] >= boxes[:, 0:1])
        & (low[None, :, 1] <= boxes[:, 3:4])
        & (high[None, :, 1] >= boxes[:, 1:2])
    )
    return np.nonzero(meets)


@dataclass
class _Discs:
    """Children (n, 7) and grandchildren (n, 7, 7) of probed cells: classified, with their centres and radii."""

    inside1: np.ndarray
    crossing1: np.ndarray
    centres1: np.ndarray  # (n, 7, 2)
    radius1: np.ndarray  # (n,)
    inside2: np.ndarray
    crossing2: np.ndarray
    centres2: np.ndarray | None  # (n, 7, 7, 2)
    radius2: np.ndarray
    scale_x: np.ndarray

    def bounds(self, level: int, where: np.ndarray) -> np.ndarray:
        """Lon/lat boxes of the selected discs at `level` (1 or 2): what a boundary cell's clip must cover."""
        if level == 2 and self.centres2 is None:
            return np.empty((0, 4))  # no child crossed the outline, so no grandchild was classified or selected
        centres = (self.centres1 if level == 1 else self.centres2)[where]
        index = np.nonzero(where)[0]
        radius = (self.radius1 if level == 1 else self.radius2)[index]
        half_x = radius / self.scale_x[index]
        return np.column_stack(
            [centres[:, 0] - half_x, centres[:, 1] - radius, centres[:, 0] + half_x, centres[:, 1] + radius]
        )


def _offsets(a: np.ndarray) -> np.ndarray:
    """Each cell's 2x2 map applied to the 7 lattice vectors: (n, 7, 2) offsets in lon/lat (no BLAS: tiny)."""
    return np.stack([a[:, None, 0, 0] * UNIT[:, 0] + a[:, None, 0, 1] * UNIT[:, 1],
                     a[:, None, 1, 0] * UNIT[:, 0] + a[:, None, 1, 1] * UNIT[:, 1]], axis=-1)  # fmt: skip


def _segment_frame(segments: np.ndarray, parent: np.ndarray, segment: np.ndarray, probe: _Probe):
    """Per (parent, segment) pair: the segment's start and direction in the parent's isotropic frame (centred on
    the parent), as columns ready to broadcast against the parent's children."""
    chosen, k = segments[segment], probe.scale_x[parent]
    ax = (chosen[:, 0] - probe.centre[parent, 0]) * k
    ay = chosen[:, 1] - probe.centre[parent, 1]
    dx = (chosen[:, 2] - chosen[:, 0]) * k
    dy = chosen[:, 3] - chosen[:, 1]
    inverse = 1.0 / np.maximum(dx * dx + dy * dy, 1e-300)
    return ax[:, None], ay[:, None], dx[:, None], dy[:, None], inverse[:, None]


def _distance2(px, py, ax, ay, dx, dy, inverse) -> np.ndarray:
    """Squared distances from points (a row of them per segment) to that row's segment."""
    vx, vy = px - ax, py - ay
    t = np.clip((vx * dx + vy * dy) * inverse, 0.0, 1.0)
    ex, ey = vx - t * dx, vy - t * dy
    return ex * ex + ey * ey


def _disc_classify(geometry: BaseGeometry, outline: _Outline, probe: _Probe, levels: int) -> _Discs:
    """Classify the children of probed cells and, with levels=2, the grandchildren of their crossing children.
    Distances are taken in each parent's isotropic frame, segments against all 7 children at once."""
    n, k = len(probe.cells), probe.scale_x
    boxes = probe.boxes()
    radius1 = DISC_REACH * probe.spacing1
    offsets1 = _offsets(probe.a1)
    centres1 = probe.centre[:, None, :] + offsets1
    children_x, children_y = offsets1[..., 0] * k[:, None], offsets1[..., 1]  # in each parent's frame
    segments, tolerance = outline.segments(SIMPLIFY_SHARE * float(radius1.min()))
    parent, segment = _pairs(boxes, segments)
    frame = _segment_frame(segments, parent, segment, probe)
    distance2 = _distance2(children_x[parent], children_y[parent], *frame)  # (pairs, 7)
    crossing1 = np.zeros((n, 7), bool)
    if len(parent):
        # Pairs come grouped by parent: a child crosses if any of its parent's segments is near it.
        starts = np.flatnonzero(np.r_[True, parent[1:] != parent[:-1]])
        hit = distance2 <= ((radius1 + tolerance) ** 2)[parent][:, None]
        crossing1[parent[starts]] = np.logical_or.reduceat(hit, starts, axis=0)
    inside1 = np.zeros((n, 7), bool)
    settled = ~crossing1
    inside1[settled] = shapely.contains_xy(geometry, centres1[settled][:, 0], centres1[settled][:, 1])

    radius2 = DISC_REACH * probe.spacing2
    inside2 = np.zeros((n, 7, 7), bool)
    crossing2 = np.zeros((n, 7, 7), bool)
    centres2 = None
    if levels >= 2 and crossing1.any():
        offsets2 = _offsets(probe.a2)
        centres2 = centres1[:, :, None, :] + offsets2[:, None, :, :]
        segments2, tolerance2 = outline.segments(SIMPLIFY_SHARE * float(radius2.min()))
        if segments2 is not segments:
            parent, segment = _pairs(boxes, segments2)
            frame = _segment_frame(segments2, parent, segment, probe)
            distance2 = _distance2(children_x[parent], children_y[parent], *frame)
        reach2 = radius2 + tolerance2
        # A grandchild's centre is within one spacing of its parent's: only segments that near matter.
        near = (distance2 <= ((probe.spacing2 + reach2) ** 2)[parent][:, None]) & crossing1[parent]
        row, digit = np.nonzero(near)
        owner = parent[row]
        grand_x = children_x[owner, digit][:, None] + offsets2[owner, :, 0] * k[owner][:, None]  # (m, 7)
        grand_y = children_y[owner, digit][:, None] + offsets2[owner, :, 1]
        ax, ay, dx, dy, inverse = (column[row] for column in frame)
        hit2 = _distance2(grand_x, grand_y, ax, ay, dx, dy, inverse) <= (reach2**2)[owner][:, None]
        rows, grand = np.nonzero(hit2)
        crossing2[owner[rows], digit[rows], grand] = True
        settled2 = crossing1[:, :, None] & ~crossing2
        points2 = centres2[settled2]
        inside2[settled2] = shapely.contains_xy(geometry, points2[:, 0], points2[:, 1])
    return _Discs(inside1, crossing1, centres1, radius1, inside2, crossing2, centres2, radius2, k)


# --- the cover -----------------------------------------------------------------------------------------------


def _descend(geometry, outline, cells: np.ndarray, res: int, levels: int):
    """`levels` (1 or 2) levels down from crossing cells at `res`: interior cells per level, and the crossing
    cells at res + levels with the boxes their reach lies in."""
    probe, safe = _probe_safe(cells, res)
    interior: list[list[np.ndarray]] = [[] for _ in range(levels)]
    crossing, crossing_bounds = [], []
    if probe is not None:
        discs = _disc_classify(geometry, outline, probe, levels)
        kids = children(probe.cells, res + 1)
        interior[0].append(kids[discs.inside1])
        if levels == 1:
            crossing.append(kids[discs.crossing1])
            crossing_bounds.append(discs.bounds(1, discs.crossing1))
        else:
            grandkids = children(kids.ravel(), res + 2).reshape(len(kids), 7, 7)
            interior[1].append(grandkids[discs.inside2])
            crossing.append(grandkids[discs.crossing2])
            crossing_bounds.append(discs.bounds(2, discs.crossing2))
    if (~safe).any():
        edge = cells[~safe]
        for level in range(levels):
            kids = [child for cell in edge.tolist() for child in h3.cell_to_children(cell, res + level + 1)]
            if len(kids) > MAX_CELLS_PER_LEVEL:
                raise CoverError("the area needs too many cells at this resolution")
            inside, edge, edge_bounds = _classify_exact(geometry, kids)
            interior[level].append(inside)
        crossing.append(edge)
        crossing_bounds.append(edge_bounds)
    crossing_all = np.concatenate(crossing)
    if len(crossing_all) > MAX_CELLS_PER_LEVEL:
        raise CoverError("the area needs too many cells at this resolution")
    return [np.concatenate(parts) for parts in interior], crossing_all, np.concatenate(crossing_bounds)


def _masks(geometry, outline, boundary: np.ndarray, bounds: np.ndarray, res: int):
    """(inside masks, crossing masks, the boxes exact checks can fall in: NaN rows where none can) of the
    boundary cells; `bounds` are the boxes of their whole reach."""
    inside = np.zeros(len(boundary), np.uint64)
    crossing = np.full(len(boundary), UNREFINED)
    check_boxes = bounds.copy()
    levels = min(REFINE_LEVELS, MAX_RES - res)
    if levels <= 0:
        return inside, crossing, check_boxes
    probe, safe = _probe_safe(boundary, res)
    if probe is None:
        return inside, crossing, check_boxes
    discs = _disc_classify(geometry, outline, probe, levels=levels)
    weights1 = np.uint64(1) << np.arange(7, dtype=np.uint64)
    weights2 = np.uint64(1) << (np.uint64(7) + np.arange(49, dtype=np.uint64))
    packed_inside = (discs.inside1 * weights1).sum(axis=1, dtype=np.uint64)
    packed_inside |= (discs.inside2.reshape(-1, 49) * weights2).sum(axis=1, dtype=np.uint64)
    packed_crossing = (discs.crossing1 * weights1).sum(axis=1, dtype=np.uint64)
    packed_crossing |= (discs.crossing2.reshape(-1, 49) * weights2).sum(axis=1, dtype=np.uint64)
    if levels < 2:
        # Grandchildren are past MAX_RES: a crossing child stays crossing.
        packed_crossing |= np.uint64(1 << UNREFINED_BIT)
    inside[safe] = packed_inside
    crossing[safe] = packed_crossing
    # Exact checks only ever happen in the crossing cells of the last level: clips need cover no more.
    unsure = discs.crossing2 if levels == 2 else discs.crossing1
    boxes = np.full((len(probe.cells), 4), np.nan)
    if unsure.any():
        where = np.nonzero(unsure)
        each = discs.bounds(levels, unsure)
        for column, reduce in ((0, np.fmin), (1, np.fmin), (2, np.fmax), (3, np.fmax)):
            reduce.at(boxes[:, column], where[0], each[:, column])
    check_boxes[safe] = boxes
    return inside, crossing, check_boxes


def cover_at(geometry: BaseGeometry, res: int) -> Cover:
    """Cover the area with cells at `res` (interior compacted) and classify two levels below its boundary cells.
    See the module docstring for the guarantees."""
    shapely.prepare(geometry)
    outline = _Outline(geometry)
    level = max(0, res - TOP_LEVELS)
    interior, crossing, bounds = _flood_fill(geometry, level)
    interior_by_res = {level: set(interior.tolist())}
    while level < res:
        levels = min(2, res - level)
        interiors, crossing, bounds = _descend(geometry, outline, crossing, level, levels)
        for step, cells in enumerate(interiors, start=1):
            interior_by_res.setdefault(level + step, set()).update(cells.tolist())
        level += levels
    order = np.argsort(crossing)
    boundary, bounds = crossing[order], bounds[order]
    inside, crossing_masks, check_boxes = _masks(geometry, outline, boundary, bounds, res)
    cover = Cover(
        resolution=res,
        interior=_compact(interior_by_res),
        boundary=boundary.tolist(),
        inside=inside,
        crossing=crossing_masks,
    )
    cover.clips = (
        _clip(geometry, check_boxes) if _vertex_count(geometry) >= CLIP_MIN_VERTICES else [None] * len(boundary)
    )
    return cover


def _compact(cells_by_res: dict[int, set[int]]) -> list[int]:
    """Replace every complete set of seven sibling cells by their parent, level by level from the finest.
    Inputs never overlap (children of interior cells are not refined), so neither do outputs."""
    levels = {res: set(cells) for res, cells in cells_by_res.items()}
    for res in range(max(levels, default=0), 0, -1):
        compacted = h3.compact_cells(list(levels.get(res, ())))
        levels[res] = set()
        for cell in compacted:
            levels.setdefault(h3.get_resolution(cell), set()).add(cell)
    return sorted(cell for cells in levels.values() for cell in cells)


def _clip(geometry: BaseGeometry, bounds: np.ndarray) -> list[BaseGeometry | None]:
    """The area cut to each box (NaN: no box, nothing to clip), or None where the check must use the whole area
    (nothing purely polygonal left, e.g. the area only touches the box along a line).

    A box cut is linear-time where a true intersection is not, and it agrees with the area everywhere except
    within rounding distance of the cut edges; those points are far from every point the cell holds, and any
    point within EXACT_CHECK_MARGIN of a clip's outline is checked against the whole area anyway.
    """
    if not len(bounds):
        return []
    pieces = np.full(len(bounds), None, dtype=object)
    wanted = np.flatnonzero(~np.isnan(bounds[:, 0]))
    pieces[wanted] = [shapely.clip_by_rect(geometry, *box_) for box_ in bounds[wanted].tolist()]
    kinds = shapely.get_type_id(pieces)
    clips = np.full(len(pieces), None, dtype=object)
    single = np.flatnonzero(kinds == _POLYGON)
    clips[single] = shapely.multipolygons(pieces[single], indices=np.arange(len(single)))
    multi = kinds == _MULTIPOLYGON
    clips[multi] = pieces[multi]
    return clips.tolist()


def cover(geometry: BaseGeometry) -> Cover:
    """Cover the area at the resolution that keeps its boundary cells near TARGET_BOUNDARY_CELLS."""
    res = choose_resolution(geometry)
    while True:
        try:
            result = cover_at(geometry, res)
        except CoverError:
            if res == 0:
                raise
            res -= 1
            continue
        if len(result.boundary) <= MAX_BOUNDARY_CELLS or res == 0:
            return result
        res -= 1
