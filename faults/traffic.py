"""What the fault suite asks of the stack while it breaks it, and how it judges the answers.

Every response must be JSON: a lookup's 200 must be exactly what PostGIS says (`ST_Covers` over the areas of
approved providers, cheapest first), and anything else a 503 naming the dependency that failed. A 500, an HTML
page or a wrong answer fails the test.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import requests

from faults.stack import Stack

EXACT_SQL = """
SELECT a.id FROM areas_servicearea a JOIN providers_provider p ON p.id = a.provider_id
WHERE p.approved AND ST_Covers(a.geometry, ST_SetSRID(ST_MakePoint(%s, %s), 4326))
ORDER BY a.price, a.id
"""
# Points near every area: one inside each, and a few scattered around its bounding box (inside, outside, near the
# outline). Seeded, so every run asks the same questions.
POINTS_SQL = """
SELECT ST_Y(p), ST_X(p) FROM (
    SELECT ST_PointOnSurface(geometry) AS p FROM areas_servicearea
    UNION ALL
    SELECT (ST_Dump(ST_GeneratePoints(ST_Expand(ST_Envelope(geometry), 0.02), 4, id::int))).geom
    FROM areas_servicearea
) points
"""
# New areas are written here, in the South Atlantic, where no query point is: the answers at the query points
# stay what they were before the fault, whatever was written meanwhile.
WRITE_ORIGIN = (-20.0, -40.0)  # lng, lat
WRITE_STEP = 0.01


def exact_answers(stack: Stack) -> dict[tuple[float, float], list[int]]:
    """The query points and what PostGIS says about each, read while PostgreSQL is up."""
    with stack.pg.connect() as connection, connection.cursor() as cursor:
        cursor.execute(POINTS_SQL)
        points = [(round(lat, 7), round(lng, 7)) for lat, lng in cursor.fetchall()]
        answers = {}
        for lat, lng in points:
            cursor.execute(EXACT_SQL, [lng, lat])
            answers[(lat, lng)] = [row[0] for row in cursor.fetchall()]
    connection.close()
    return answers


def judge(response: requests.Response) -> str:
    """'200', '201', '503 postgres', ...; fails on anything that is not JSON, and on any other 5xx."""
    content_type = response.headers.get("Content-Type", "")
    assert content_type.startswith("application/json"), (
        f"{response.request.method} {response.url}: {response.status_code} {content_type}: {response.text[:300]}"
    )
    body = response.json()
    if response.status_code == 503:
        assert body.get("service") in ("postgres", "redis") and body.get("detail"), body
        return f"503 {body['service']}"
    assert response.status_code < 500, f"{response.request.method} {response.url}: {response.status_code} {body}"
    return str(response.status_code)


def lookup(stack: Stack, lat: float, lng: float, expected: list[int], timeout: float = 10) -> tuple[str, float]:
    """One lookup, judged: ('exact', seconds) or ('503 <service>', seconds)."""
    started = time.monotonic()
    response = stack.get("/api/v1/lookup/", params={"lat": lat, "lng": lng}, timeout=timeout)
    seconds = time.monotonic() - started
    outcome = judge(response)
    if outcome == "200":
        found = [result["id"] for result in response.json()["results"]]
        assert found == expected, f"lookup at {lat},{lng}: {found}, PostGIS says {expected}"
        return "exact", seconds
    return outcome, seconds


def all_exact(stack: Stack, answers: dict) -> bool:
    return all(lookup(stack, lat, lng, expected)[0] == "exact" for (lat, lng), expected in answers.items())


_write_serial = itertools.count()


def square(lng: float, lat: float, half: float = 0.002) -> dict:
    ring = [[lng - half, lat - half], [lng + half, lat - half], [lng + half, lat + half], [lng - half, lat + half]]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def write_area(stack: Stack, provider_id: int, timeout: float = 10) -> tuple[str, dict | None]:
    """Create a small area in the write region. Returns the judged outcome and, when acknowledged, the area."""
    n = next(_write_serial)
    lng, lat = WRITE_ORIGIN[0] + WRITE_STEP * (n % 100), WRITE_ORIGIN[1] - WRITE_STEP * (n // 100)
    body = {
        "type": "Feature",
        "geometry": square(lng, lat),
        "properties": {"provider": provider_id, "name": f"fault write {n}", "price": "7.00"},
    }
    response = stack.write("POST", "/api/v1/service-areas/", body, timeout=timeout)
    outcome = judge(response)
    if response.status_code == 201:
        return outcome, {"id": response.json()["id"], "lat": lat, "lng": lng}
    return outcome, None


@dataclass
class Traffic:
    """Lookups at every query point in turn, and a write every `write_every` seconds, from a background thread
    while a fault is on. Every response is judged; the first bad one is kept and re-raised by `stop()`."""

    stack: Stack
    answers: dict
    provider_id: int
    write_every: float = 1.0
    outcomes: Counter = field(default_factory=Counter)
    slowest_lookup: float = 0.0
    acknowledged: list[dict] = field(default_factory=list)
    failure: BaseException | None = None
    # The last answer that was not an exact lookup or an acknowledged write (a 503), and how many of each came
    # since.
    last_refusal: float = 0.0
    exact_since_refusal: int = 0
    writes_since_refusal: int = 0

    def __post_init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure

    def _run(self) -> None:
        points = itertools.cycle(self.answers.items())
        next_write = time.monotonic()
        try:
            while not self._stop.is_set():
                (lat, lng), expected = next(points)
                outcome, seconds = lookup(self.stack, lat, lng, expected)
                self.outcomes[f"lookup {outcome}"] += 1
                self.slowest_lookup = max(self.slowest_lookup, seconds)
                if outcome == "exact":
                    self.exact_since_refusal += 1
                else:
                    self._refused()
                if time.monotonic() >= next_write:
                    outcome, area = write_area(self.stack, self.provider_id)
                    self.outcomes[f"write {outcome}"] += 1
                    if area is not None:
                        self.acknowledged.append(area)
                        self.writes_since_refusal += 1
                    else:
                        self._refused()
                    next_write = time.monotonic() + self.write_every
                self._stop.wait(0.05)
        except BaseException as exc:  # handed to the test by stop()
            self.failure = exc

    def _refused(self) -> None:
        self.last_refusal = time.monotonic()
        self.exact_since_refusal = self.writes_since_refusal = 0

    def summary(self) -> str:
        """What users saw, e.g. 'lookups: exact 120 (slowest 0.8 s); writes: 201 3, 503 postgres 9'."""
        lookups = ", ".join(f"{o.split(' ', 1)[1]} {n}" for o, n in sorted(self.outcomes.items()) if o[0] == "l")
        writes = ", ".join(f"{o.split(' ', 1)[1]} {n}" for o, n in sorted(self.outcomes.items()) if o[0] == "w")
        return f"lookups: {lookups} (slowest {self.slowest_lookup:.2f} s); writes: {writes or 'none'}"
