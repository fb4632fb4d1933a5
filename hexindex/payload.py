"""One lookup result: what a partner sees for an area that serves the point. Every lookup path (the index, the
exact PostGIS query, the benchmark's baselines) builds its results here, so their bodies are byte-identical."""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

import orjson

# Every query that feeds AreaPayload selects these columns, in this order (areas_servicearea a, providers_provider p).
PAYLOAD_COLUMNS = "a.id, a.price, a.name, p.id, p.name, p.currency"
SORT_KEY_LENGTH = 28  # the (price, id) prefix of a cached result, "|" included


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

    def sortable(self) -> bytes:
        """The JSON behind a prefix that sorts like (price, id): results are ordered by sorting bytes."""
        return b"%015d%012d|%s" % (int(self.price * 100), self.area_id, self.json())


def render(results: list[bytes]) -> bytes:
    """The lookup's body from serialised results, in order."""
    return b'{"count":%d,"results":[%s]}' % (len(results), b",".join(results))


def render_sortable(blobs: list[bytes]) -> bytes:
    """The lookup's body from sortable results, in any order."""
    blobs.sort()
    return render([blob[SORT_KEY_LENGTH:] for blob in blobs])
