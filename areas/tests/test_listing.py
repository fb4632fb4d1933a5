"""What a list page carries: `geometry=full|simplified|none`, and a budget of positions per page."""

import math

import pytest

from testing.geo import polygon

URL = "/api/v1/service-areas/"


def circle(lng, lat, radius, vertices) -> dict:
    return polygon(
        [
            (lng + radius * math.cos(2 * math.pi * k / vertices), lat + radius * math.sin(2 * math.pi * k / vertices))
            for k in range(vertices)
        ]
    )


@pytest.fixture
def owner(make_user):
    return make_user()


@pytest.fixture
def owner_client(client_for, owner):
    return client_for(owner)


@pytest.fixture
def areas(make_area, make_provider, owner):
    provider = make_provider(owner=owner)
    return [make_area(circle(10.0 + n, 50.0, 0.3, 2_000), provider=provider) for n in range(3)]


def positions(feature) -> int:
    return sum(len(ring) for part in feature["geometry"]["coordinates"] for ring in part)


def test_full_geometry_by_default(owner_client, areas):
    features = owner_client.get(URL).json()["features"]
    assert [positions(f) for f in features] == [2_001] * 3


def test_simplified_geometry_is_much_lighter_and_stays_where_the_area_is(owner_client, areas):
    features = owner_client.get(URL, {"geometry": "simplified"}).json()["features"]
    assert all(20 <= positions(f) < 400 for f in features), [positions(f) for f in features]
    for feature, area in zip(features, areas, strict=True):
        assert feature["bbox"] == pytest.approx(area.geometry.extent, abs=0.01)


def test_no_geometry_when_asked(owner_client, areas):
    features = owner_client.get(URL, {"geometry": "none"}).json()["features"]
    assert [f["geometry"] for f in features] == [None] * 3
    assert owner_client.get(f"{URL}{areas[0].id}/", {"geometry": "none"}).json()["geometry"] is None


def test_a_page_over_the_position_budget_is_refused_with_a_hint(owner_client, areas, settings):
    settings.LIST_MAX_POSITIONS_PER_PAGE = 5_000
    response = owner_client.get(URL)
    assert response.status_code == 400
    assert (
        "6,003 positions" in response.json()["geometry"][0] and "geometry=simplified" in response.json()["geometry"][0]
    )
    assert len(owner_client.get(URL, {"page_size": 2}).json()["features"]) == 2
    assert len(owner_client.get(URL, {"geometry": "simplified"}).json()["features"]) == 3


def test_an_unknown_geometry_mode_is_a_400(owner_client, areas):
    response = owner_client.get(URL, {"geometry": "some"})
    assert response.status_code == 400 and "geometry" in response.json()
