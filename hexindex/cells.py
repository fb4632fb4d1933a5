"""H3 cell math for the service-area index. Pure: shapely, numpy and h3 only, no Django.

Vocabulary
----------
A point's *cell chain* is its H3 cell at MAX_RES and that cell's ancestors at every coarser resolution
(`point_cells`). The lookup only ever asks Redis about those cells. H3 cells do not nest exactly: the points
whose chain passes through cell X are the union of X's descendants at MAX_RES, a fractal blob that pokes out of
X's own hexagon by up to ~17% of its radius. Call it X's *reach*.

Every classification below tests a polygon that is a proven superset of X's reach (`cover_polygons`): X's
boundary pushed out by ENLARGE from its centre on the sphere, densified along great circles, then written in
planar longitude/latitude, the space in which PostGIS evaluates `ST_Covers` for SRID 4326 geometries. So:

- X is *interior* to an area when that polygon lies inside the area: every point whose chain passes through
  X is covered, with a margin far wider than floating-point noise, so PostGIS agrees.
- X is a *boundary* cell when the polygon only touches the area: a point there needs an exact check. For
  areas with many vertices the check runs against the area clipped to that polygon (`Cover.boundary` clips).
- Any other cell holds no point of the area.

Coverage is complete by construction: cells are found by flood fill over the cell graph from a vertex of every
polygon part, refined level by level, never by H3's centre-containment `polygon_to_cells` (which misses narrow
and small areas and reads polygon edges as great circles, while PostGIS reads them as straight lines in
longitude/latitude).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from itertools import chain

import h3.api.basic_int as h3
import numpy as np
import shapely
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

MAX_RES = 12  # ~10 m edges: the finest resolution an area is indexed at, and the root of every cell chain
ENLARGE = 1.25  # > 1.17, the measured reach of a cell's descendants relative to its own radius
TARGET_BOUNDARY_CELLS = 64
MAX_BOUNDARY_CELLS = 4 * TARGET_BOUNDARY_CELLS
CLIP_MIN_VERTICES = 128  # areas with fewer vertices are checked whole: that is already cheap
REFINE_LEVELS = 3  # the flood fill runs this many levels above the area's resolution, then refines down
MAX_CELLS_PER_LEVEL = 200_000  # a safety valve: refuse rather than exhaust memory
# Points closer than this (degrees, ~0.1 mm) to a clip's outline are checked against the whole area: there the
# clip's new vertices could round differently from the original edges. Far above float noise (~1e-13 here).
EXACT_CHECK_MARGIN = 1e-9
_WORLD = box(-180.0, -90.0, 180.0, 90.0)
_POLYGON, _MULTIPOLYGON = 3, 6  # shapely type ids
_BOUNDARY_WIDTH = 10  # H3 boundaries have at most 10 vertices (pentagons and face-crossing cells)
_NEXT_VERTEX = np.r_[1:_BOUNDARY_WIDTH, 0]
_PLANAR_MIN_RES, _PLANAR_MAX_LAT = 3, 70.0
_EARTH_RADIUS_KM = 6371.0088


class CoverError(ValueError):
    """The geometry cannot be covered within the cell budget."""


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


@dataclass
class Cover:
    resolution: int
    interior: list[int] = field(default_factory=list)  # compacted: any resolution <= `resolution`
    boundary: list[int] = field(default_factory=list)  # all at `resolution`
    clips: list[BaseGeometry | None] = field(default_factory=list)  # parallel to `boundary`; None: check whole


def point_cells(lat: float, lng: float, max_res: int = MAX_RES) -> list[int]:
    """The point's cell chain, coarsest first: [ancestor at res 0, ..., cell at max_res]."""
    cell = h3.latlng_to_cell(lat, lng, max_res)
    return [h3.cell_to_parent(cell, res) for res in range(max_res)] + [cell]


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


def _seeds(geometry: BaseGeometry, res: int) -> set[int]:
    """One cell per polygon part, holding a vertex of its outline: every part is reached by the flood fill."""
    seeds = set()
    for part in getattr(geometry, "geoms", [geometry]):
        lng, lat = part.exterior.coords[0]
        seeds.add(h3.cell_to_parent(h3.latlng_to_cell(lat, lng, MAX_RES), res))
    return seeds


class _PolygonCache:
    """Cover polygons of recently used cells. Areas crowd around cities, so the same cells come up again and
    again when many areas are indexed by one process; computing a polygon costs far more than keeping it."""

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
                # Forget the oldest half: cheap, and close enough to least-recently-used here.
                for cell in list(self.polygons)[: len(self.polygons) // 2]:
                    del self.polygons[cell]
            self.polygons.update(zip((cells[i] for i in missing), computed, strict=True))
        return polygons


_polygon_cache = _PolygonCache(capacity=1_000_000)


def _classify(geometry: BaseGeometry, cells: list[int]) -> tuple[list[int], list[int], np.ndarray]:
    """Split same-resolution cells into interior and boundary ones; cells that miss the area are dropped."""
    polygons = _polygon_cache.get(cells)
    touches = shapely.intersects(geometry, polygons)
    inside = touches & shapely.contains(geometry, polygons)
    edge = touches & ~inside
    cell_array = np.asarray(cells, dtype=np.int64)
    return cell_array[inside].tolist(), cell_array[edge].tolist(), polygons[edge]


def _flood_fill(geometry: BaseGeometry, res: int) -> tuple[list[int], list[int], np.ndarray]:
    interior, boundary, polygons = [], [], []
    seen = frontier = _seeds(geometry, res)
    while frontier:
        inside, edge, edge_polygons = _classify(geometry, sorted(frontier))
        interior += inside
        boundary += edge
        polygons.append(edge_polygons)
        neighbours = {n for cell in inside + edge for n in h3.grid_disk(cell, 1)}
        frontier = neighbours - seen
        seen = seen | frontier
        if len(seen) > MAX_CELLS_PER_LEVEL:
            raise CoverError("the area needs too many cells at this resolution")
    return interior, boundary, np.concatenate(polygons) if polygons else np.empty(0, dtype=object)


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


def _clip(geometry: BaseGeometry, polygons: np.ndarray) -> list[BaseGeometry | None]:
    """The area cut to the bounding box of each boundary cell's polygon, or None where the check must use the
    whole area (nothing purely polygonal left, e.g. the area only touches the box along a line).

    A box cut is linear-time where a true intersection is not, and it agrees with the area everywhere except
    within rounding distance of the cut edges; those points are far from every point the cell holds, and any
    point within EXACT_CHECK_MARGIN of a clip's outline is checked against the whole area anyway.
    """
    pieces = np.array([shapely.clip_by_rect(geometry, *bounds) for bounds in shapely.bounds(polygons)])
    kinds = shapely.get_type_id(pieces)
    clips = np.full(len(pieces), None, dtype=object)
    single = np.flatnonzero(kinds == _POLYGON)
    clips[single] = shapely.multipolygons(pieces[single], indices=np.arange(len(single)))
    multi = kinds == _MULTIPOLYGON
    clips[multi] = pieces[multi]
    return clips.tolist()


def cover_at(geometry: BaseGeometry, res: int) -> Cover:
    """Cover the area with cells at `res` (interior compacted). See the module docstring for the guarantees."""
    shapely.prepare(geometry)
    start = max(0, res - REFINE_LEVELS)
    interior, boundary, polygons = _flood_fill(geometry, start)
    interior_by_res: dict[int, set[int]] = {start: set(interior)}
    for level in range(start + 1, res + 1):
        children = [child for cell in boundary for child in h3.cell_to_children(cell, level)]
        if len(children) > MAX_CELLS_PER_LEVEL:
            raise CoverError("the area needs too many cells at this resolution")
        inside, boundary, polygons = _classify(geometry, children)
        interior_by_res[level] = set(inside)
    cover = Cover(resolution=res, interior=_compact(interior_by_res), boundary=boundary)
    if _vertex_count(geometry) >= CLIP_MIN_VERTICES:
        cover.clips = _clip(geometry, polygons)
    else:
        cover.clips = [None] * len(boundary)
    return cover


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
    """The cover as rows of the cell table (cell, area, boundary, clip as hex EWKB) in PostgreSQL COPY text."""
    clips = np.array(result.clips, dtype=object)
    clip_text = np.full(len(clips), "\\N", dtype=object)
    present = np.array([clip is not None for clip in result.clips], dtype=bool)
    if present.any():
        clip_text[present] = shapely.to_wkb(shapely.set_srid(clips[present], 4326), hex=True, include_srid=True)
    interior = "".join(f"{cell}\t{area_id}\tf\t\\N\n" for cell in result.interior)
    boundary = "".join(f"{cell}\t{area_id}\tt\t{text}\n" for cell, text in zip(result.boundary, clip_text, strict=True))
    return interior + boundary


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


__all__ = [
    "CLIP_MIN_VERTICES",
    "ENLARGE",
    "EXACT_CHECK_MARGIN",
    "MAX_RES",
    "Cover",
    "CoverError",
    "CoverJob",
    "choose_resolution",
    "copy_rows",
    "cover",
    "cover_at",
    "cover_job",
    "cover_polygons",
    "outline_km",
    "point_cells",
]
