"""One lookup result: what a partner sees for an area that serves the point. Every lookup path (the index, the
exact PostGIS query, the benchmark's baselines) builds its results here, so their bodies are byte-identical."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, NamedTuple

import orjson

# Every query that feeds AreaPayload selects these columns, in this order (areas_servicearea a, providers_provider p).
PAYLOAD_COLUMNS = "a.id, a.price, a.name, p.id, p.name, p.currency"
# Public lookups show the areas of approved providers only (the same condition, on providers_provider p).
PUBLIC_SQL = "p.approved"


class AreaPayload(NamedTuple):
    area_id: int
    price: Decimal
    name: str
    provider_id: int
    provider_name: str
    currency: str

    def as_dict(self) -> dict:
        return {
            "id": self.area_id,
            "name": self.name,
            "price": str(self.price),
            "currency": self.currency,
            "provider": {"id": self.provider_id, "name": self.provider_name},
        }

    def json(self) -> bytes:
        return orjson.dumps(self.as_dict())

    @property
    def price_cents(self) -> int:
        return int(self.price * 100)


def render(results: list[bytes]) -> bytes:
    """The lookup's body from serialised results, in order."""
    return b'{"count":%d,"results":[%s]}' % (len(results), b",".join(results))


@dataclass(slots=True)
class LookupResult:
    """A lookup's response body and how it was answered."""

    body: bytes
    count: int
    source: Literal["index", "postgis"]  # "postgis": answered by the exact query
    candidates: int = 0  # records found for the point (interior and boundary, pending excluded)
    boundary_candidates: int = 0
    exact_checks: int = 0  # boundary candidates the masks could not settle
    checks_in_process: int = 0  # of those, settled here from a shape seen before
    pending: int = 0  # areas pending at the point, checked in PostgreSQL
    postgres_queries: int = 0
    redis_seconds: float = 0.0
    postgres_seconds: float = 0.0
