"""Service areas over HTTP: GeoJSON Features in and out, validation, ownership, filters."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from areas import geometry as g
from areas.api.crud import NOT_YOUR_PROVIDER
from areas.models import ServiceArea
from areas.serializers import NOT_A_FEATURE, PRICE_INVALID
from testing.geo import feature, multipolygon, polygon, square

URL = "/api/v1/service-areas/"
JFK = square(-73.78, 40.64, 0.05)  # longitude -73.78, latitude 40.64


@pytest.fixture
def owner(make_user):
    return make_user()


@pytest.fixture
def provider(make_provider, owner):
    return make_provider(owner=owner, name="Acme Shuttles", currency="USD")


@pytest.fixture
def owner_client(client_for, owner):
    return client_for(owner)


def detail(area_id: int) -> str:
    return f"{URL}{area_id}/"


def snapshot() -> list:
    """Every stored area, to prove a refused request changed nothing."""
    return [(a.id, a.provider_id, a.name, a.price, a.geometry.wkb.hex()) for a in ServiceArea.objects.order_by("id")]


def test_create_returns_a_geojson_feature_stored_as_multipolygon(owner_client, provider):
    response = owner_client.post(URL, feature(JFK, provider=provider.id, name="JFK", price="45"), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["type"] == "Feature"
    assert body["geometry"] == {"type": "MultiPolygon", "coordinates": [JFK["coordinates"]]}
    assert body["bbox"] == pytest.approx([-73.83, 40.59, -73.73, 40.69])
    assert body["properties"]["provider"] == provider.id
    assert body["properties"]["name"] == "JFK"
    assert body["properties"]["price"] == "45.00"
    assert body["properties"]["currency"] == "USD"
    area = ServiceArea.objects.get(pk=body["id"])
    assert area.geometry.geom_type == "MultiPolygon"
    assert area.geometry.srid == 4326
    assert area.geometry.extent == pytest.approx((-73.83, 40.59, -73.73, 40.69))


def test_coordinates_round_trip_at_full_precision(owner_client, provider):
    precise = polygon([(-73.781234567890123, 40.641234567890123), (-73.7, 40.6412), (-73.7, 40.7)])
    response = owner_client.post(URL, feature(precise, provider=provider.id, name="Precise", price="1"), format="json")

    assert response.status_code == 201
    assert response.json()["geometry"]["coordinates"][0] == precise["coordinates"]


def test_multipolygon_with_hole_round_trips(owner_client, provider):
    outer = [(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0)]
    hole = [(1.0, 1.0), (1.0, 2.0), (2.0, 2.0), (2.0, 1.0)]  # clockwise, as RFC 7946 wants holes
    geometry = multipolygon(polygon(outer, hole), square(10.0, 10.0, 1.0))
    response = owner_client.post(URL, feature(geometry, provider=provider.id, name="Holes", price="3"), format="json")

    assert response.status_code == 201
    assert response.json()["geometry"] == geometry


def test_price_large_enough_for_real_fares(owner_client, provider):
    response = owner_client.post(URL, feature(JFK, provider=provider.id, name="Big", price="9999999.99"), format="json")
    assert response.status_code == 201
    assert response.json()["properties"]["price"] == "9999999.99"


def test_retrieve_and_list_as_feature_collection(owner_client, make_area, provider):
    first = make_area(JFK, provider=provider, name="JFK")
    second = make_area(square(-0.45, 51.47, 0.05), provider=provider, name="Heathrow")

    one = owner_client.get(detail(first.id))
    assert one.status_code == 200
    assert one.json()["id"] == first.id

    page = owner_client.get(URL).json()
    assert page["type"] == "FeatureCollection"
    assert page["count"] == 2
    assert [f["id"] for f in page["features"]] == [first.id, second.id]
    assert all(f["type"] == "Feature" for f in page["features"])


def test_list_paginates(owner_client, make_area, provider):
    for _ in range(3):
        make_area(JFK, provider=provider)
    page = owner_client.get(URL, {"page_size": 2}).json()
    assert page["count"] == 3
    assert len(page["features"]) == 2
    assert page["next"] is not None


def test_filter_by_provider(owner_client, make_area, make_provider, provider):
    mine = make_area(JFK, provider=provider)
    make_area(JFK, provider=make_provider())
    page = owner_client.get(URL, {"provider": provider.id}).json()
    assert [f["id"] for f in page["features"]] == [mine.id]


def test_filter_in_bbox_uses_lng_lat_order(owner_client, make_area, provider):
    jfk = make_area(JFK, provider=provider)
    make_area(square(-0.45, 51.47, 0.05), provider=provider)

    assert [f["id"] for f in owner_client.get(URL, {"in_bbox": "-74,40,-73,41"}).json()["features"]] == [jfk.id]
    # The same box written lat-first finds nothing.
    assert owner_client.get(URL, {"in_bbox": "40,-74,41,-73"}).json()["features"] == []


def test_filter_in_bbox_across_the_antimeridian(owner_client, make_area, provider):
    fiji_east = make_area(square(179.5, -17.0, 0.3), provider=provider)
    fiji_west = make_area(square(-179.5, -17.0, 0.3), provider=provider)
    make_area(square(0.0, -17.0, 0.3), provider=provider)

    found = {f["id"] for f in owner_client.get(URL, {"in_bbox": "179,-18,-179,-16"}).json()["features"]}
    assert found == {fiji_east.id, fiji_west.id}


@pytest.mark.parametrize("bbox", ["1,2,3", "a,b,c,d", "nan,0,1,1", "0,0,inf,1", "0,0,200,1", "0,10,1,5", ""])
def test_malformed_in_bbox_is_a_400(owner_client, bbox):
    response = owner_client.get(URL, {"in_bbox": bbox})
    if bbox == "":
        assert response.status_code == 200
    else:
        assert response.status_code == 400
        assert "in_bbox" in response.json()


def test_unknown_provider_filter_value_is_a_400(owner_client):
    assert owner_client.get(URL, {"provider": "abc"}).status_code == 400


def test_put_replaces_the_area(owner_client, make_area, provider):
    area = make_area(JFK, provider=provider, name="JFK", price="45.00")
    new_geometry = square(-73.87, 40.77, 0.02)
    response = owner_client.put(
        detail(area.id), feature(new_geometry, provider=provider.id, name="LaGuardia", price="38.5"), format="json"
    )
    assert response.status_code == 200, response.json()
    area.refresh_from_db()
    assert (area.name, str(area.price)) == ("LaGuardia", "38.50")
    assert area.geometry.extent == pytest.approx((-73.89, 40.75, -73.85, 40.79))


def test_put_accepts_what_get_returned(owner_client, make_area, provider):
    area = make_area(JFK, provider=provider)
    before = snapshot()
    body = owner_client.get(detail(area.id)).json()
    response = owner_client.put(detail(area.id), body, format="json")
    assert response.status_code == 200, response.json()
    assert snapshot() == before


def test_patch_changes_only_what_is_sent(owner_client, make_area, provider):
    area = make_area(JFK, provider=provider, name="JFK", price="45.00")
    response = owner_client.patch(detail(area.id), {"type": "Feature", "properties": {"price": "50"}}, format="json")
    assert response.status_code == 200, response.json()
    area.refresh_from_db()
    assert (area.name, str(area.price)) == ("JFK", "50.00")
    assert area.geometry.extent == pytest.approx((-73.83, 40.59, -73.73, 40.69))

    moved = square(2.35, 48.85, 0.1)
    response = owner_client.patch(detail(area.id), {"type": "Feature", "geometry": moved}, format="json")
    assert response.status_code == 200
    area.refresh_from_db()
    assert area.geometry.extent == pytest.approx((2.25, 48.75, 2.45, 48.95))


def test_delete(owner_client, make_area, provider):
    area = make_area(JFK, provider=provider)
    assert owner_client.delete(detail(area.id)).status_code == 204
    assert not ServiceArea.objects.filter(pk=area.id).exists()
    assert owner_client.get(detail(area.id)).status_code == 404


BOWTIE = polygon([(0, 0), (1, 1), (1, 0), (0, 1)])


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"geometry": JFK, "name": "x", "price": "1"}, "type", NOT_A_FEATURE),
        ({"type": "FeatureCollection", "features": []}, "type", NOT_A_FEATURE),
        ({"type": "Feature", "geometry": JFK, "properties": []}, "properties", "'properties' must be an object."),
        ({"type": "Feature", "properties": {"name": "x", "price": "1"}}, "geometry", "This member"),
        (feature({"type": "Point", "coordinates": [1, 2]}, name="x", price="1"), "geometry", "Polygon or MultiPolygon"),
        (feature("POLYGON((0 0,1 0,1 1,0 0))", name="x", price="1"), "geometry", g.NOT_AN_OBJECT),
        (
            feature({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}, name="x", price="1"),
            "geometry",
            "must end where it starts",
        ),
        (
            feature({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}, name="x", price="1"),
            "geometry",
            "at least 4 positions",
        ),
        (feature(square(190, 10, 1), name="x", price="1"), "geometry", "longitude 189"),
        (feature(square(10, 95, 1), name="x", price="1"), "geometry", "latitude 94"),
        (feature(BOWTIE, name="x", price="1"), "geometry", "Self-intersection[0.5 0.5]"),
        (feature({"type": "MultiPolygon", "coordinates": []}, name="x", price="1"), "geometry", "must not be empty"),
        (feature(JFK, name="x", price="-1"), "price", "greater than or equal to 0"),
        (feature(JFK, name="x", price="1.234"), "price", "decimal places"),
        (feature(JFK, name="x", price="abc"), "price", PRICE_INVALID),
        (feature(JFK, name="x", price="NaN"), "price", PRICE_INVALID),
        (feature(JFK, name="x", price="Infinity"), "price", PRICE_INVALID),
        (feature(JFK, name="x", price="99999999999.00"), "price", "digits"),
        (feature(JFK, name="   ", price="1"), "name", "blank"),
        (feature(JFK, price="1"), "name", "required"),
    ],
)
def test_bad_input_is_a_400_naming_the_problem_and_stores_nothing(
    owner_client, provider, make_area, body, field, message
):
    make_area(JFK, provider=provider)
    if isinstance(body.get("properties"), dict) and "provider" not in body["properties"]:
        body["properties"]["provider"] = provider.id
    before = snapshot()

    response = owner_client.post(URL, body, format="json")

    assert response.status_code == 400
    assert any(message in error for error in response.json()[field]), response.json()
    assert snapshot() == before


def test_bad_geometry_on_update_leaves_the_area_unchanged(owner_client, make_area, provider):
    area = make_area(JFK, provider=provider)
    before = snapshot()
    response = owner_client.patch(detail(area.id), {"type": "Feature", "geometry": BOWTIE}, format="json")
    assert response.status_code == 400
    assert snapshot() == before


def test_nan_coordinates_in_raw_json_are_a_400(owner_client, provider):
    # NaN is not JSON, but some encoders emit it; it must never become a coordinate.
    raw = json.dumps(feature(JFK, provider=provider.id, name="x", price="1")).replace("40.59", "NaN", 1)
    response = owner_client.post(URL, raw, content_type="application/json")
    assert response.status_code == 400
    assert "NaN" in response.json()["detail"]
    assert ServiceArea.objects.count() == 0


def test_malformed_json_is_a_400(owner_client):
    response = owner_client.post(URL, '{"type": "Feature", ', content_type="application/json")
    assert response.status_code == 400
    assert ServiceArea.objects.count() == 0


def test_unknown_provider_is_a_400(owner_client):
    response = owner_client.post(URL, feature(JFK, provider=999999, name="x", price="1"), format="json")
    assert response.status_code == 400
    assert "provider" in response.json()


def test_oversized_body_is_refused_with_413_and_stores_nothing(owner_client, provider, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    ring = [[-73.0 + i * 1e-6, 40.0] for i in range(2000)] + [[-73.0, 41.0], [-73.0, 40.0]]
    body = feature({"type": "Polygon", "coordinates": [ring]}, provider=provider.id, name="x", price="1")
    response = owner_client.post(URL, body, format="json")
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]
    assert ServiceArea.objects.count() == 0


def test_absurd_vertex_count_is_a_400(owner_client, provider, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = None
    ring = [[0.0, 0.0]] * (g.MAX_VERTICES + 1)
    body = feature({"type": "Polygon", "coordinates": [ring]}, provider=provider.id, name="x", price="1")
    response = owner_client.post(URL, body, format="json")
    assert response.status_code == 400
    assert response.json()["geometry"] == [g.TOO_MANY_VERTICES]


def test_token_required(api, make_area):
    area = make_area(JFK)
    assert api.get(URL).status_code == 401
    assert api.get(detail(area.id)).status_code == 401
    assert api.post(URL, feature(JFK, provider=area.provider_id, name="x", price="1"), format="json").status_code == 401


def test_other_users_cannot_create_areas_for_my_provider(client_for, make_user, provider):
    intruder = client_for(make_user())
    response = intruder.post(URL, feature(JFK, provider=provider.id, name="x", price="1"), format="json")
    assert response.status_code == 403
    assert response.json()["detail"] == NOT_YOUR_PROVIDER
    assert ServiceArea.objects.count() == 0


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_other_users_cannot_change_my_areas(client_for, make_user, make_area, provider, method):
    area = make_area(JFK, provider=provider)
    before = snapshot()
    intruder = client_for(make_user())
    body = feature(square(1, 1, 1), provider=provider.id, name="taken", price="1")
    response = getattr(intruder, method)(detail(area.id), body, format="json")
    assert response.status_code == 403
    assert snapshot() == before


def test_cannot_move_my_area_to_someone_elses_provider(owner_client, make_area, make_provider, provider):
    area = make_area(JFK, provider=provider)
    foreign = make_provider()
    before = snapshot()
    response = owner_client.patch(
        detail(area.id), {"type": "Feature", "properties": {"provider": foreign.id}}, format="json"
    )
    assert response.status_code == 403
    assert snapshot() == before


def test_staff_can_manage_any_area(client_for, make_user, make_area, provider):
    area = make_area(JFK, provider=provider)
    staff = client_for(make_user(staff=True))
    assert (
        staff.patch(detail(area.id), {"type": "Feature", "properties": {"price": "7"}}, format="json").status_code
        == 200
    )
    assert staff.post(URL, feature(JFK, provider=provider.id, name="y", price="1"), format="json").status_code == 201
    assert staff.delete(detail(area.id)).status_code == 204


def test_list_query_count_does_not_grow_with_areas(owner_client, make_area, provider):
    make_area(JFK, provider=provider)
    with CaptureQueriesContext(connection) as few:
        assert owner_client.get(URL).status_code == 200
    for _ in range(10):
        make_area(JFK, provider=provider)
    with CaptureQueriesContext(connection) as many:
        assert owner_client.get(URL).status_code == 200
    # token (knox: the token, then the user's others to tidy), count, the page's weight in positions, page (areas
    # joined with their provider)
    assert len(few) == len(many) == 5
