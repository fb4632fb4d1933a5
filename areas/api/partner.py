"""The partner endpoints: lookup, batch, trip and the change feed. Each says only what is its own (how to parse a
request, how many points it costs, the work); partners.endpoint runs them through the one pipeline (keys, limits,
usage, ETag/304, CORS, errors as JSON). The lookup's whole path: project/urls.py -> here -> partners/endpoint.py.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import orjson

from areas import lookups
from areas.api import schema
from areas.changes import changes_since, parse_cursor, parse_limit
from core import metrics
from core.errors import InvalidInput
from hexindex.api import lookup, lookup_exact
from partners.endpoint import Answer, Call, PartnerEndpoint

NOT_JSON = "Send a JSON body (Content-Type: application/json)."


@dataclass(frozen=True, slots=True)
class PointQuery:
    lat: float
    lng: float
    include_mine: bool
    filters: lookups.LookupFilters


@schema.lookup
class LookupView(PartnerEndpoint):
    kind, lean = "lookup", True

    def parse(self, request) -> PointQuery:
        errors, values = {}, {}
        for name, parse in (
            ("point", lambda: lookups.parse_point(request.GET)),
            ("include_mine", lambda: lookups.parse_flag(request.GET, "include_mine")),
            ("filters", lambda: lookups.parse_filters(request.GET)),
        ):
            try:
                values[name] = parse()
            except InvalidInput as exc:
                errors.update(exc.errors)
        if errors:
            raise InvalidInput(errors)
        (lat, lng) = values["point"]
        return PointQuery(lat, lng, values["include_mine"], values["filters"])

    def wants_owner(self, params: PointQuery) -> bool:
        return params.include_mine

    def work(self, call: Call) -> Answer:
        query: PointQuery = call.params
        if call.owner is not None:
            # An owner testing areas the public does not see yet: rare, so answered by the exact query.
            result = lookup_exact(lat=query.lat, lng=query.lng, owner_id=call.owner.id)
            return Answer(lookups.filter_body(result.body, query.filters), private=True)
        result = lookup(lat=query.lat, lng=query.lng, also=call.also)
        metrics.lookup_answered(result, time.perf_counter() - call.started)
        # The body arrives serialised: results are cached as JSON and spliced together, not re-encoded.
        return Answer(lookups.filter_body(result.body, query.filters))


@dataclass(frozen=True, slots=True)
class BatchQuery:
    points: list[tuple[float, float]]
    filters: lookups.LookupFilters


@schema.batch
class BatchLookupView(PartnerEndpoint):
    kind, allowed = "batch", ("POST",)

    def parse(self, request) -> BatchQuery:
        filters = lookups.parse_filters(request.GET)
        if request.content_type != "application/json":
            raise InvalidInput({"detail": [NOT_JSON]})
        try:
            # The standard library: it reads integers of any size (orjson refuses those beyond 64 bits).
            body = json.loads(request.body, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            raise InvalidInput({"detail": [f"JSON parse error: {exc}"]}) from exc
        return BatchQuery(lookups.parse_points(body), filters)

    def points(self, params: BatchQuery) -> int:
        return len(params.points)

    def work(self, call: Call) -> Answer:
        query: BatchQuery = call.params
        bodies = lookups.batch_bodies(query.points, query.filters)
        metrics.batch_answered(len(query.points), time.perf_counter() - call.started)
        return Answer(b'{"results":[%s]}' % b",".join(bodies), conditional=False)


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


@dataclass(frozen=True, slots=True)
class TripQuery:
    pickup: tuple[float, float]
    dropoff: tuple[float, float]
    filters: lookups.LookupFilters


@schema.trip
class TripLookupView(PartnerEndpoint):
    kind, lean = "trip", True

    def parse(self, request) -> TripQuery:
        errors, ends = {}, []
        for prefix in ("from", "to"):
            try:
                ends.append(
                    lookups.parse_point(
                        {"lat": request.GET.get(f"{prefix}_lat"), "lng": request.GET.get(f"{prefix}_lng")}
                    )
                )
            except InvalidInput as exc:
                errors.update({f"{prefix}_{name}": messages for name, messages in exc.errors.items()})
        try:
            filters = lookups.parse_filters(request.GET)
        except InvalidInput as exc:
            errors.update(exc.errors)
        if errors:
            raise InvalidInput(errors)
        return TripQuery(ends[0], ends[1], filters)

    def points(self, params: TripQuery) -> int:
        return 2

    def work(self, call: Call) -> Answer:
        query: TripQuery = call.params
        return Answer(orjson.dumps(lookups.trip(pickup=query.pickup, dropoff=query.dropoff, filters=query.filters)))


@schema.changes
class ChangeFeedView(PartnerEndpoint):
    kind, counts_as_lookup = "feed", False

    def parse(self, request) -> tuple[tuple[int, int], int]:
        return parse_cursor(request.GET.get("since")), parse_limit(request.GET.get("limit"))

    def work(self, call: Call) -> Answer:
        cursor, limit = call.params
        return Answer(orjson.dumps(changes_since(cursor, limit=limit)), conditional=False)
