"""The partner-facing lookups built on the exact answer of hexindex.api.lookup: their inputs (points, filters,
flags: parsed here, so every endpoint refuses the same things the same way), filters, batches and trips.

Filters are applied to the lookup's own results (exact, cached per area version), so a filtered answer is the
unfiltered one with some results left out, never a different computation. Only `language` needs the database
(one query by primary key: it is a property of the provider that results do not show).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from decimal import Decimal

import orjson

from core.errors import InvalidInput
from hexindex.api import lookup_many
from providers.models import Provider

MAX_LIMIT = 1000
MAX_BATCH_POINTS = 1000

COORDINATE_MISSING = "This query parameter is required."
COORDINATE_NOT_A_NUMBER = "Must be a decimal number, e.g. {example}."
COORDINATE_OUT_OF_RANGE = "Must be between {low} and {high}."
FLAG_INVALID = "Must be true or false."
BATCH_SHAPE = f'A list of 1 to {MAX_BATCH_POINTS:,} points, each {{"lat": .., "lng": ..}}.'
BATCH_POINT_SHAPE = 'Each point is {"lat": .., "lng": ..}.'

# Plain ASCII decimal notation only: Python's float() would also take "nan", "inf", "1_000", " 1 " and digits of
# other scripts ("٤٠").
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_COORDINATES = (("lat", -90.0, 90.0, "40.6413"), ("lng", -180.0, 180.0, "-73.7781"))
_ID = re.compile(r"[1-9][0-9]{0,17}")
_CURRENCY = re.compile(r"[A-Za-z]{3}")
_LANGUAGE = re.compile(r"[A-Za-z]{2}")
_PRICE = re.compile(r"[0-9]{1,10}(?:\.[0-9]{1,2})?")
_LIMIT = re.compile(r"[0-9]{1,4}")


@dataclass(frozen=True)
class LookupFilters:
    providers: frozenset[int] | None = None
    currency: str | None = None
    language: str | None = None
    max_price: Decimal | None = None
    limit: int | None = None
    cheapest_per_provider: bool = False

    @property
    def any(self) -> bool:
        return self != NO_FILTERS


NO_FILTERS = LookupFilters()


def parse_point(query_params) -> tuple[float, float]:
    """`lat` and `lng` from a query string, or InvalidInput naming each bad one."""
    values, errors = {}, {}
    for name, low, high, example in _COORDINATES:
        raw = query_params.get(name)
        if raw is None or raw == "":
            errors[name] = [COORDINATE_MISSING]
        elif not _DECIMAL.fullmatch(raw) or not math.isfinite(value := float(raw)):
            errors[name] = [COORDINATE_NOT_A_NUMBER.format(example=example)]
        elif not low <= value <= high:
            errors[name] = [COORDINATE_OUT_OF_RANGE.format(low=low, high=high)]
        else:
            values[name] = value
    if errors:
        raise InvalidInput(errors)
    return values["lat"], values["lng"]


def parse_points(body: object) -> list[tuple[float, float]]:
    """A batch's `{"points": [{"lat": .., "lng": ..}, ...]}` (parsed JSON), validated point by point like a query
    string, or InvalidInput naming the bad points by their index."""
    points = body.get("points") if isinstance(body, dict) else None
    if not isinstance(points, list) or not 1 <= len(points) <= MAX_BATCH_POINTS:
        raise InvalidInput({"points": [BATCH_SHAPE]})
    parsed, errors = [], {}
    for i, point in enumerate(points):
        try:
            if not isinstance(point, dict):
                raise InvalidInput({"non_field_errors": [BATCH_POINT_SHAPE]})
            parsed.append(parse_point(_as_query(point)))
        except InvalidInput as exc:
            errors[str(i)] = exc.errors
    if errors:
        raise InvalidInput({"points": errors})
    return parsed


def _as_query(point: dict) -> dict:
    """A point's lat/lng as the strings a query string would carry, so both are validated the same way. The standard
    library writes any value JSON can hold (orjson refuses integers beyond 64 bits: a 500 once)."""
    return {key: (value if isinstance(value, str) else json.dumps(value)) for key, value in point.items()}


def parse_flag(query_params, name: str) -> bool:
    raw = query_params.get(name)
    if raw is None or raw in ("false", "0"):
        return False
    if raw in ("true", "1"):
        return True
    raise InvalidInput({name: [FLAG_INVALID]})


def parse_filters(query_params) -> LookupFilters:
    """The lookup's optional filters from a query string, or InvalidInput naming each bad one."""
    errors, values = {}, {}
    raw_providers = [part for value in query_params.getlist("provider") for part in value.split(",")]
    if raw_providers:
        if all(_ID.fullmatch(part) for part in raw_providers):
            values["providers"] = frozenset(int(part) for part in raw_providers)
        else:
            errors["provider"] = ["Provider ids: positive integers, repeated or comma-separated, e.g. 3,5."]
    for name, pattern, message, convert in (
        ("currency", _CURRENCY, "An ISO 4217 code, e.g. USD.", str.upper),
        ("language", _LANGUAGE, "An ISO 639-1 code, e.g. en.", str.lower),
        ("max_price", _PRICE, "A price, e.g. 45 or 45.50.", Decimal),
        ("limit", _LIMIT, f"A number of results from 1 to {MAX_LIMIT}.", int),
    ):
        raw = query_params.get(name)
        if raw is None:
            continue
        if not pattern.fullmatch(raw) or (name == "limit" and not 1 <= int(raw) <= MAX_LIMIT):
            errors[name] = [message]
        else:
            values[name] = convert(raw)
    per_provider = query_params.get("per_provider")
    if per_provider is not None:
        if per_provider != "cheapest":
            errors["per_provider"] = ["The only choice is `cheapest`: each provider's cheapest area."]
        values["cheapest_per_provider"] = True
    if errors:
        raise InvalidInput(errors)
    return LookupFilters(**values)


def filtered_results(results: list[dict], filters: LookupFilters, speaking: set[int] | None = None) -> list[dict]:
    """The results (ordered by price, then id) that pass the filters, in the same order. `speaking`: the providers
    speaking `filters.language`, when already known."""
    if filters.providers is not None:
        results = [r for r in results if r["provider"]["id"] in filters.providers]
    if filters.currency is not None:
        results = [r for r in results if r["currency"] == filters.currency]
    if filters.max_price is not None:
        results = [r for r in results if Decimal(r["price"]) <= filters.max_price]
    if filters.language is not None and results:
        if speaking is None:
            speaking = _speaking(filters.language, [results])
        results = [r for r in results if r["provider"]["id"] in speaking]
    if filters.cheapest_per_provider:
        seen: set[int] = set()
        results = [r for r in results if not (r["provider"]["id"] in seen or seen.add(r["provider"]["id"]))]
    if filters.limit is not None:
        results = results[: filters.limit]
    return results


def _speaking(language: str, result_lists: list[list[dict]]) -> set[int]:
    """Of the providers in these results, those speaking the language: one query by primary key (none when there
    are no results)."""
    ids = {r["provider"]["id"] for results in result_lists for r in results}
    if not ids:
        return set()
    return set(Provider.objects.filter(id__in=ids, language=language).values_list("id", flat=True))


def render(results: list[dict]) -> bytes:
    return orjson.dumps({"count": len(results), "results": results})


def filter_body(body: bytes, filters: LookupFilters) -> bytes:
    """A lookup's JSON body with the filters applied; without filters, the body itself (byte for byte)."""
    if not filters.any:
        return body
    return render(filtered_results(orjson.loads(body)["results"], filters))


def filter_bodies(bodies: list[bytes], filters: LookupFilters) -> list[bytes]:
    """filter_body for each body, with at most one query for the whole lot."""
    if not filters.any:
        return bodies
    result_lists = [orjson.loads(body)["results"] for body in bodies]
    speaking = _speaking(filters.language, result_lists) if filters.language is not None else None
    return [render(filtered_results(results, filters, speaking)) for results in result_lists]


def batch_bodies(points: list[tuple[float, float]], filters: LookupFilters = NO_FILTERS) -> list[bytes]:
    """The lookup's JSON body for each point, filtered, in order: one Redis read (two when this process meets
    results or outlines it has not seen yet) and at most one PostgreSQL query for the lookups, plus one for a
    `language` filter."""
    return filter_bodies([result.body for result in lookup_many(points)], filters)


def trip(*, pickup: tuple[float, float], dropoff: tuple[float, float], filters: LookupFilters = NO_FILTERS) -> dict:
    """Providers serving both ends: each with its cheapest area at each end (after the filters), ordered by the
    pickup price, then the drop-off price, then provider id. Both ends are looked up together (lookup_many)."""
    per_end = replace(filters, limit=None, cheapest_per_provider=False)  # the limit applies to the trips
    result_lists = [orjson.loads(result.body)["results"] for result in lookup_many([pickup, dropoff])]
    speaking = _speaking(per_end.language, result_lists) if per_end.language is not None else None
    ends = []
    for results in result_lists:
        cheapest: dict[int, dict] = {}
        for result in filtered_results(results, per_end, speaking):  # by price, then id: first is the cheapest
            cheapest.setdefault(result["provider"]["id"], result)
        ends.append(cheapest)
    both = []
    for provider_id, at_pickup in ends[0].items():
        at_dropoff = ends[1].get(provider_id)
        if at_dropoff is not None:
            both.append(
                {
                    "provider": at_pickup["provider"],
                    "currency": at_pickup["currency"],
                    "pickup": _area(at_pickup),
                    "dropoff": _area(at_dropoff),
                }
            )
    both.sort(key=lambda r: (Decimal(r["pickup"]["price"]), Decimal(r["dropoff"]["price"]), r["provider"]["id"]))
    if filters.limit is not None:
        both = both[: filters.limit]
    return {"count": len(both), "results": both}


def _area(result: dict) -> dict:
    return {"id": result["id"], "name": result["name"], "price": result["price"]}
