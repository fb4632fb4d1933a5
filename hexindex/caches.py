"""The web process's two caches for lookups (hexindex.selectors): serialised results by area and version, and
outline segments of areas near cells. Both hold immutable facts (what an area looked like at a version, which only
grows), so they are never stale; they are dropped with the index generation (a rebuild may follow a database
reset)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from django.conf import settings


class Results:
    """Serialised results with their price, by area id, for one version of each area: numpy arrays indexed by area
    id, so a lookup finds and orders ~200 results in a few array operations."""

    def __init__(self):
        self.generation: int | None = None
        self._allocate(0)

    def _allocate(self, size: int) -> None:
        self.version = np.zeros(size, np.uint32)  # 0: nothing cached (versions start at 2)
        self.price = np.zeros(size, np.int64)
        self.body = np.empty(size, object)

    def use_generation(self, generation: int) -> None:
        if generation != self.generation:
            self._allocate(0)
            self.generation = generation

    def missing(self, areas: np.ndarray, versions: np.ndarray) -> np.ndarray:
        inside = areas < len(self.version)
        found = np.zeros(len(areas), bool)
        found[inside] = self.version[areas[inside]] == versions[inside]
        return ~found

    def store(self, area: int, version: int, price_cents: int, body: bytes) -> None:
        if area >= len(self.version):
            grown = max(area + 1, 2 * len(self.version), 1024)
            old = self.version, self.price, self.body
            self._allocate(grown)
            self.version[: len(old[0])], self.price[: len(old[1])], self.body[: len(old[2])] = old
        self.version[area], self.price[area], self.body[area] = version, price_cents, body


class Shapes:
    """Outline segments (x0, y0, x1, y1) of areas near cells: what an exact check needs. Keyed by (area, cell)
    for clips and (area, WHOLE) for areas checked whole, within a budget of segments; the oldest go first."""

    WHOLE = -1

    def __init__(self):
        self.generation: int | None = None
        self.entries: OrderedDict[tuple[int, int], tuple[int, np.ndarray]] = OrderedDict()
        self.segments = 0

    def use_generation(self, generation: int) -> None:
        if generation != self.generation:
            self.entries.clear()
            self.segments = 0
            self.generation = generation

    def get(self, area: int, cell: int, version: int) -> np.ndarray | None:
        entry = self.entries.get((area, cell)) or self.entries.get((area, self.WHOLE))
        return entry[1] if entry is not None and entry[0] == version else None

    def store(self, area: int, cell: int, version: int, segments: np.ndarray) -> None:
        previous = self.entries.pop((area, cell), None)
        if previous is not None:
            self.segments -= len(previous[1])
        self.entries[(area, cell)] = (version, segments)
        self.segments += len(segments)
        budget = settings.HEXINDEX_SHAPE_CACHE_SEGMENTS
        while self.segments > budget and self.entries:
            _, (_, dropped) = self.entries.popitem(last=False)
            self.segments -= len(dropped)


results = Results()
shapes = Shapes()
