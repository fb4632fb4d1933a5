"""The partner-facing lookups built on the exact answer of hexindex.api.lookup: filters, batches and trips.

Filters are applied to the lookup's own results (exact, cached per area version), so a filtered answer is the
unfiltered one with some results left out, never a different computation. Only `language` needs the database
(one query by primary key: it is a property of the provider that results do not show).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from decimal import Decimal

import orjson
from rest_framework.exceptions import ValidationError

from hexindex.api import lookup_many
from providers.models import Provider

MAX_LIMIT = 1000
MAX_BATCH_POINTS = 1000
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


def parse_filters(query_params) -> LookupFilters:
    """The lookup's optional filters from a query string, or a ValidationError naming each bad one."""
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
        raise ValidationError(errors)
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
