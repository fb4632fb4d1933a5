"""Random valid areas and points around them, for the property tests that hold the indexed lookup to the exact
PostGIS answer (hexindex/tests/test_selectors.py, test_batch.py)."""

import itertools
import math
import random

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Polygon, box

PROPERTY = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
WORLD = box(-180, -90, 180, 90)


def star(rng, lng, lat, radius, vertices, hole) -> Polygon:
    angles = np.linspace(0, 2 * math.pi, vertices, endpoint=False)
    radii = [radius * (0.5 + 0.5 * rng.random()) for _ in angles]
    outer = [(lng + r * math.cos(a), lat + r * math.sin(a)) for r, a in zip(radii, angles, strict=True)]
    holes = []
    if hole:
        inner = min(radii) * 0.4
        holes = [
            [
                (lng + inner * math.cos(a), lat + inner * math.sin(a))
                for a in np.linspace(2 * math.pi, 0, 7, endpoint=False)
            ]
        ]
    return Polygon(outer, holes)


@st.composite
def areas(draw):
    """A random valid area: star polygons with or without holes, multi-part, slivers, near ±180 and the poles,
    from metres to thousands of kilometres across."""
    rng = random.Random(draw(st.integers(0, 10**6)))
    kind = draw(st.sampled_from(["star", "star-hole", "multi", "sliver", "antimeridian", "polar"]))
    radius = draw(st.sampled_from([2e-5, 1e-3, 0.02, 0.3, 3.0, 20.0]))
    lng = draw(st.floats(-170, 170))
    lat = draw(st.floats(-70, 70))
    vertices = draw(st.sampled_from([3, 5, 8, 24, 80]))
    if kind in ("star", "star-hole"):
        shape = star(rng, lng, lat, radius, vertices, kind == "star-hole")
    elif kind == "multi":
        # A second part with a hole, beside the first (never overlapping it).
        shape = MultiPolygon(
            [star(rng, lng, lat, radius, vertices, False), star(rng, lng + 2.5 * radius, lat, radius, 6, True)]
        )
    elif kind == "sliver":
        shape = Polygon([(lng, lat), (lng + radius * 10, lat + radius * 1e-3), (lng, lat + radius * 2e-3)])
    elif kind == "antimeridian":
        shape = star(rng, 180.0 - radius / 3, lat, radius, vertices, False).union(
            star(rng, -180.0 + radius / 4, lat, radius / 2, vertices, False)
        )
    else:
        shape = (
            box(-180, 90 - radius, 180, 90) if rng.random() < 0.5 else star(rng, lng, 85.0, min(radius, 4.0), 12, False)
        )
    assert shape.is_valid
    shape = shape.intersection(WORLD)
    parts = [p for p in getattr(shape, "geoms", [shape]) if isinstance(p, Polygon) and not p.is_empty]
    area = MultiPolygon(parts)
    if not area.is_valid or area.is_empty:
        area = MultiPolygon([box(lng, lat, lng + radius, lat + radius)])
    return area


def points_for(rng, area, count):
    """Random points around the area, plus its vertices, edge midpoints and the antimeridian."""
    minx, miny, maxx, maxy = area.bounds
    dx, dy = (maxx - minx) * 0.3 + 1e-6, (maxy - miny) * 0.3 + 1e-6
    points = [
        (max(-90, min(90, rng.uniform(miny - dy, maxy + dy))), max(-180, min(180, rng.uniform(minx - dx, maxx + dx))))
        for _ in range(count)
    ]
    for polygon in area.geoms:
        coords = list(polygon.exterior.coords)
        for (x1, y1), (x2, y2) in list(itertools.pairwise(coords))[:6]:
            points += [(y1, x1), ((y1 + y2) / 2, (x1 + x2) / 2)]
    points += [(miny, 180.0), (miny, -180.0), (0.0, 0.0)]
    return points


def to_geos(shape):
    """A shapely geometry as GEOS, in WGS 84, as the services take it."""
    from django.contrib.gis.geos import GEOSGeometry

    return GEOSGeometry(memoryview(shape.wkb), srid=4326)
