"""Filters, batches, trips and HTTP caching of the lookup, each checked against an exact PostGIS reference."""

from decimal import Decimal

import orjson
import pytest
from django.contrib.gis.geos import Point

from areas.models import ServiceArea
from testing.geo import square

LOOKUP = "/api/v1/lookup/"
BATCH = "/api/v1/lookup/batch/"
TRIP = "/api/v1/lookup/trip/"
AIRPORT = (40.6413, -73.7781)  # lat, lng: asymmetric, so a swap finds nothing
HOTEL = (40.7580, -73.9855)


def reference(lat, lng, *, providers=None, currency=None, language=None, max_price=None, limit=None, cheapest=False):
    """The exact answer: PostGIS covers, filtered in SQL, ordered by (price, id)."""
    rows = ServiceArea.objects.filter(geometry__covers=Point(lng, lat, srid=4326), provider__approved=True)
    if providers:
        rows = rows.filter(provider_id__in=providers)
    if currency:
        rows = rows.filter(provider__currency=currency)
    if language:
        rows = rows.filter(provider__language=language)
    if max_price is not None:
        rows = rows.filter(price__lte=max_price)
    ids, seen = [], set()
    for area_id, provider_id in rows.order_by("price", "id").values_list("id", "provider_id"):
        if cheapest and provider_id in seen:
            continue
        seen.add(provider_id)
        ids.append(area_id)
    return ids[:limit] if limit else ids


@pytest.fixture
def world(make_provider, make_area, index_all):
    """Providers in two currencies and languages; areas around the airport and the hotel, nested and overlapping."""
    usd_en = make_provider(currency="USD", language="en")
    eur_de = make_provider(currency="EUR", language="de")
    usd_es = make_provider(currency="USD", language="es")
    hidden = make_provider(currency="USD", language="en", approved=False)
    make_area(square(-73.78, 40.64, 0.05), provider=usd_en, price="45.00")  # airport
    make_area(square(-73.85, 40.70, 0.30), provider=usd_en, price="60.00")  # both
    make_area(square(-73.85, 40.70, 0.30), provider=eur_de, price="41.50")  # both
    make_area(square(-73.78, 40.64, 0.10), provider=eur_de, price="39.00")  # airport
    make_area(square(-73.98, 40.76, 0.05), provider=usd_es, price="30.00")  # hotel
    make_area(square(-73.78, 40.64, 0.20), provider=usd_es, price="45.00")  # airport
    make_area(square(-73.85, 40.70, 0.50), provider=hidden, price="0.00")  # both, but not approved
    index_all()
    return {"usd_en": usd_en, "eur_de": eur_de, "usd_es": usd_es}


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [result["id"] for result in orjson.loads(response.content)["results"]]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"currency": "usd"},
        {"language": "de"},
        {"max_price": "45"},
        {"limit": "2"},
        {"per_provider": "cheapest"},
        {"currency": "USD", "per_provider": "cheapest", "limit": "1"},
        {"provider": "usd_en,usd_es"},
        {"provider": "eur_de", "max_price": "40.00"},
    ],
)
@pytest.mark.parametrize("point", [AIRPORT, HOTEL, (40.70, -73.85), (-73.7781, 40.6413)])
def test_filtered_lookups_equal_the_exact_filtered_query(api, world, params, point):
    query = dict(params)
    if "provider" in query:
        query["provider"] = ",".join(str(world[name].id) for name in query["provider"].split(","))
    expected = reference(
        *point,
        providers=[int(p) for p in query["provider"].split(",")] if "provider" in query else None,
        currency=query.get("currency", "").upper() or None,
        language=query.get("language"),
        max_price=Decimal(query["max_price"]) if "max_price" in query else None,
        limit=int(query["limit"]) if "limit" in query else None,
        cheapest="per_provider" in query,
    )
    assert ids(api.get(LOOKUP, {"lat": point[0], "lng": point[1], **query})) == expected


def test_no_filter_is_byte_for_byte_todays_answer(api, world):
    from hexindex.api import lookup

    assert (
        api.get(LOOKUP, {"lat": AIRPORT[0], "lng": AIRPORT[1]}).content == lookup(lat=AIRPORT[0], lng=AIRPORT[1]).body
    )


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"provider": "3,x"}, "provider"),
        ({"provider": "-1"}, "provider"),
        ({"currency": "US"}, "currency"),
        ({"language": "eng"}, "language"),
        ({"max_price": "1e3"}, "max_price"),
        ({"max_price": "-1"}, "max_price"),
        ({"limit": "0"}, "limit"),
        ({"limit": "5000"}, "limit"),
        ({"per_provider": "all"}, "per_provider"),
    ],
)
def test_bad_filters_are_a_400_naming_them(api, db, params, field):
    response = api.get(LOOKUP, {"lat": 1, "lng": 2, **params})
    assert response.status_code == 400 and field in response.json()


def test_a_batch_answers_each_point_exactly_as_the_lookup_in_order(api, world):
    points = [AIRPORT, HOTEL, (40.70, -73.85), (0.0, 0.0), (-73.7781, 40.6413)]
    body = {"points": [{"lat": lat, "lng": lng} for lat, lng in points]}
    response = api.post(f"{BATCH}?per_provider=cheapest", body, format="json")
    assert response.status_code == 200
    answers = response.json()["results"]
    assert len(answers) == len(points)
    for (lat, lng), answer in zip(points, answers, strict=True):
        single = api.get(LOOKUP, {"lat": lat, "lng": lng, "per_provider": "cheapest"}).json()
        assert answer == single
        assert [r["id"] for r in answer["results"]] == reference(lat, lng, cheapest=True)


def test_a_batch_with_a_bad_point_or_too_many_points_is_a_400(api, db):
    bad = api.post(BATCH, {"points": [{"lat": 1, "lng": 2}, {"lat": 91, "lng": 2}, {"lng": 3}]}, format="json")
    assert bad.status_code == 400
    assert set(bad.json()["points"]) == {"1", "2"} and "lat" in bad.json()["points"]["1"]
    too_many = api.post(BATCH, {"points": [{"lat": 1, "lng": 2}] * 1001}, format="json")
    assert too_many.status_code == 400 and "points" in too_many.json()
    assert api.post(BATCH, {"points": []}, format="json").status_code == 400
    assert api.post(BATCH, {"points": [{"lat": True, "lng": 2}]}, format="json").status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        b'{"points": [{"lat": 123456789012345678901234567890, "lng": 2}]}',  # beyond 64 bits: was a 500 (HTML)
        b'{"points": [{"lat": 1e400, "lng": 2}]}',
        b'{"points": [{"lat": [1], "lng": {"a": 1}}]}',
        b'{"points": [{"lat": null, "lng": 2}]}',
        b'{"points": [{"lat": -0.5e-400, "lng": 2, "extra": 123456789012345678901234567890}]}',
    ],
)
def test_a_batch_point_of_any_json_value_is_a_400_naming_it_never_a_500(api, db, settings, body):
    settings.DEBUG = True  # a 500 would have been Django's HTML debug page
    response = api.post(BATCH, body, content_type="application/json")
    assert response.status_code in (200, 400), response.content
    if response.status_code == 400:
        assert "0" in response.json()["points"]


def test_a_trip_lists_providers_serving_both_ends_with_their_cheapest_area_at_each(api, world):
    response = api.get(TRIP, {"from_lat": AIRPORT[0], "from_lng": AIRPORT[1], "to_lat": HOTEL[0], "to_lng": HOTEL[1]})
    assert response.status_code == 200
    results = response.json()["results"]
    expected = []
    for provider in world.values():
        at_pickup = reference(*AIRPORT, providers=[provider.id])
        at_dropoff = reference(*HOTEL, providers=[provider.id])
        if at_pickup and at_dropoff:
            expected.append((provider.id, at_pickup[0], at_dropoff[0]))
    got = [(r["provider"]["id"], r["pickup"]["id"], r["dropoff"]["id"]) for r in results]
    assert sorted(got) == sorted(expected) and len(got) == 3
    pickups = [Decimal(r["pickup"]["price"]) for r in results]
    assert pickups == sorted(pickups)


def test_a_trip_with_a_missing_end_is_a_400_naming_it(api, db):
    response = api.get(TRIP, {"from_lat": 1, "from_lng": 2, "to_lat": 3})
    assert response.status_code == 400 and set(response.json()) == {"to_lng"}


def test_lookups_carry_an_etag_and_answer_304_until_the_answer_changes(api, world, make_area, index_all):
    query = {"lat": HOTEL[0], "lng": HOTEL[1]}
    first = api.get(LOOKUP, query)
    etag = first["ETag"]
    assert first["Cache-Control"] == "no-cache"
    again = api.get(LOOKUP, query, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b"" and again["ETag"] == etag
    make_area(square(-73.98, 40.76, 0.01), provider=world["usd_en"], price="1.00")
    changed = api.get(LOOKUP, query, HTTP_IF_NONE_MATCH=etag)  # pending, found by PostGIS: the answer changed
    assert changed.status_code == 200 and changed["ETag"] != etag
    index_all()
    assert api.get(LOOKUP, query, HTTP_IF_NONE_MATCH=changed["ETag"]).status_code == 304  # same answer, indexed


# If-None-Match as sent: {etag} is the answer's ETag ("..."), {bare} the same without its quotes.
IF_NONE_MATCH_304 = {
    "the current tag": "{etag}",
    "its weak form (compared weakly: matches)": "W/{etag}",
    "a list naming it": '"0123", {etag}',
    "a list naming its weak form": 'W/"0123",W/{etag}',
    "star": "*",
}
IF_NONE_MATCH_200 = {
    "other tags": '"0123", W/"4567"',
    "the tag without quotes (malformed: ignored)": "{bare}",
    "an unterminated tag (malformed: ignored)": '"{bare}',
    "an empty header": "",
}


@pytest.mark.parametrize("sent", IF_NONE_MATCH_304.values(), ids=IF_NONE_MATCH_304.keys())
def test_if_none_match_is_a_304_for_the_tag_weak_or_strong_in_a_list_or_star(api, world, sent):
    query = {"lat": HOTEL[0], "lng": HOTEL[1]}
    etag = api.get(LOOKUP, query)["ETag"]
    again = api.get(LOOKUP, query, HTTP_IF_NONE_MATCH=sent.format(etag=etag, bare=etag.strip('"')))
    assert (again.status_code, again.content, again["ETag"]) == (304, b"", etag)


@pytest.mark.parametrize("sent", IF_NONE_MATCH_200.values(), ids=IF_NONE_MATCH_200.keys())
def test_if_none_match_naming_other_tags_or_malformed_gets_the_whole_answer(api, world, sent):
    query = {"lat": HOTEL[0], "lng": HOTEL[1]}
    first = api.get(LOOKUP, query)
    etag = first["ETag"]
    again = api.get(LOOKUP, query, HTTP_IF_NONE_MATCH=sent.format(etag=etag, bare=etag.strip('"')))
    assert (again.status_code, again["ETag"]) == (200, etag)
    assert again.content == first.content and ids(again) == reference(*HOTEL)


def test_cors_allows_configured_origins_only(api, db, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://partner.example"]
    allowed = api.get(LOOKUP, {"lat": 1, "lng": 2}, HTTP_ORIGIN="https://partner.example")
    assert allowed["Access-Control-Allow-Origin"] == "https://partner.example"
    assert "Access-Control-Allow-Origin" not in api.get(
        LOOKUP, {"lat": 1, "lng": 2}, HTTP_ORIGIN="https://evil.example"
    )
    preflight = api.options(LOOKUP, HTTP_ORIGIN="https://partner.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET")
    assert preflight.status_code in (200, 204)  # the middleware answers here; the lean path (production) with 204
    assert "if-none-match" in preflight["Access-Control-Allow-Headers"].lower()
    batch = api.post(BATCH, {"points": [{"lat": 1, "lng": 2}]}, format="json", HTTP_ORIGIN="https://partner.example")
    assert batch["Access-Control-Allow-Origin"] == "https://partner.example"


def test_the_lean_paths_answer_a_cors_preflight_themselves(rf, settings, db):
    from areas.api.partner import LookupView

    settings.CORS_ALLOWED_ORIGINS = ["https://partner.example"]
    request = rf.options(LOOKUP, HTTP_ORIGIN="https://partner.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET")
    response = LookupView.as_view()(request)
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == "https://partner.example"
    assert "if-none-match" in response["Access-Control-Allow-Headers"]
    assert "x-api-key" in response["Access-Control-Allow-Headers"]  # partners' keys from a web page
    answer = LookupView.as_view()(rf.get(LOOKUP, {"lat": 1, "lng": 2}, HTTP_ORIGIN="https://partner.example"))
    assert {"ETag", "Retry-After", "X-RateLimit-Remaining"} <= {
        header.strip() for header in answer["Access-Control-Expose-Headers"].split(",")
    }


def test_a_batch_over_http_costs_at_most_one_query_and_two_with_a_language_filter(
    api, world, django_assert_max_num_queries
):
    import random

    rng = random.Random(3)
    points = [{"lat": rng.uniform(40.3, 41.0), "lng": rng.uniform(-74.3, -73.5)} for _ in range(100)]
    with django_assert_max_num_queries(1):
        plain = api.post(BATCH, {"points": points}, format="json")
    with django_assert_max_num_queries(2):
        german = api.post(f"{BATCH}?language=de", {"points": points}, format="json")
    for point, answer, filtered in zip(points, plain.json()["results"], german.json()["results"], strict=True):
        assert [r["id"] for r in answer["results"]] == reference(point["lat"], point["lng"])
        assert [r["id"] for r in filtered["results"]] == reference(point["lat"], point["lng"], language="de")
