"""One lookup result: what a partner sees for an area that serves the point. Every lookup path (the index, the
exact PostGIS query, the benchmark's baselines) builds its results here, so their bodies are byte-identical."""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

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
