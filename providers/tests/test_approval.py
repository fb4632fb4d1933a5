"""Approval: only staff-approved providers reach public lookups; owners see and test their own meanwhile."""

import orjson
import pytest

from areas.models import ServiceArea
from hexindex import redis_index
from providers.models import Provider
from testing.geo import feature, square
from testing.index import records_of

PROVIDERS = "/api/v1/providers/"
AREAS = "/api/v1/service-areas/"
LOOKUP = "/api/v1/lookup/"
WORLD = {"type": "Polygon", "coordinates": [[[-180, -90], [180, -90], [180, 90], [-180, 90], [-180, -90]]]}
VALID = {
    "name": "Zero Cabs",
    "email": "dispatch@zero.example",
    "phone_number": "+12125550123",
    "language": "en",
    "currency": "USD",
}


def lookup_ids(api, lat, lng, **params) -> list[int]:
    response = api.get(LOOKUP, {"lat": lat, "lng": lng, **params})
    assert response.status_code == 200, response.content
    return [item["id"] for item in orjson.loads(response.content)["results"]]


@pytest.fixture
def owner(make_user):
    return make_user()


@pytest.fixture
def owner_client(client_for, owner):
    return client_for(owner)


@pytest.fixture
def staff_client(client_for, make_user):
    return client_for(make_user(staff=True))


@pytest.fixture
def world_area(owner_client, staff, settings, index_all):
    """A self-registered user's provider with a whole-world area at price 0, indexed like any other."""
    settings.AREA_MAX_SPAN_KM = 50_000.0
    provider = owner_client.post(PROVIDERS, VALID, format="json").json()
    assert provider["approved"] is False
    response = owner_client.post(AREAS, feature(WORLD, provider=provider["id"], name="Everywhere", price="0"))
    assert response.status_code == 201, response.json()
    index_all()
    return response.json()


@pytest.fixture
def staff(make_user):
    return make_user(staff=True)


@pytest.mark.parametrize(("lat", "lng"), [(40.6413, -73.7781), (-33.9399, 151.1753), (0.0, 0.0), (64.1, -21.9)])
def test_a_whole_world_area_of_an_unapproved_provider_is_absent_from_public_lookups(api, world_area, lat, lng):
    assert lookup_ids(api, lat, lng) == []


def test_its_owner_sees_it_with_include_mine_and_other_users_do_not(
    api, world_area, owner_client, client_for, make_user
):
    assert lookup_ids(owner_client, 40.6413, -73.7781, include_mine="true") == [world_area["id"]]
    assert lookup_ids(owner_client, 40.6413, -73.7781) == []
    assert lookup_ids(client_for(make_user()), 40.6413, -73.7781, include_mine="true") == []


def test_include_mine_without_a_token_is_a_401_and_a_bad_flag_a_400(api, world_area):
    anonymous = api.get(LOOKUP, {"lat": 1, "lng": 2, "include_mine": "true"})
    assert anonymous.status_code == 401 and "token" in anonymous.json()["detail"]
    api.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert api.get(LOOKUP, {"lat": 1, "lng": 2, "include_mine": "true"}).status_code == 401
    assert api.get(LOOKUP, {"lat": 1, "lng": 2, "include_mine": "yes please"}).status_code == 400


def test_the_owner_sees_its_index_status_while_it_waits_for_approval(owner_client, world_area):
    area = owner_client.get(f"{AREAS}{world_area['id']}/").json()
    assert area["properties"]["index"]["status"] == "ready"
    assert area["geometry"]["type"] == "MultiPolygon"


def test_approval_by_staff_makes_it_public_and_revoking_removes_it_at_once(
    api, world_area, staff_client, index_all, index_redis
):
    provider_id = world_area["properties"]["provider"]
    approved = staff_client.post(f"{PROVIDERS}{provider_id}/approve/")
    assert approved.status_code == 200 and approved.json()["approved"] is True
    assert lookup_ids(api, 40.6413, -73.7781) == [world_area["id"]]  # pending: checked in PostGIS
    index_all()
    assert lookup_ids(api, 40.6413, -73.7781) == [world_area["id"]]  # live in the index
    assert records_of(index_redis, world_area["id"])

    revoked = staff_client.post(f"{PROVIDERS}{provider_id}/revoke/")
    assert revoked.status_code == 200 and revoked.json()["approved"] is False
    assert lookup_ids(api, 40.6413, -73.7781) == []  # at once, before any worker ran
    index_all()
    assert lookup_ids(api, 40.6413, -73.7781) == []
    assert not records_of(index_redis, world_area["id"])  # out of the live index
    assert redis_index.pending_tokens([world_area["id"]]) == {world_area["id"]: ""}  # and no longer pending


def test_only_staff_may_approve(owner_client, world_area):
    provider_id = world_area["properties"]["provider"]
    assert owner_client.post(f"{PROVIDERS}{provider_id}/approve/").status_code == 403
    assert Provider.objects.get(pk=provider_id).approved is False


def test_a_rebuild_of_redis_and_the_sweep_keep_unapproved_areas_out(api, world_area, index_redis):
    from hexindex.maintenance import rebuild_redis, sweep

    rebuild_redis()
    assert not records_of(index_redis, world_area["id"])
    assert lookup_ids(api, 40.6413, -73.7781) == []
    # Approval revoked behind the services' back (raw SQL) on a live area: the sweep takes it out.
    Provider.objects.filter(pk=world_area["properties"]["provider"]).update(approved=True)
    from hexindex.build import index_areas

    index_areas([world_area["id"]], force=True)
    assert records_of(index_redis, world_area["id"])
    Provider.objects.filter(pk=world_area["properties"]["provider"]).update(approved=False)
    assert sweep()["hidden"] == 1
    assert not records_of(index_redis, world_area["id"])


def test_listing_shows_others_approved_providers_without_contact_data(client_for, make_user, make_provider, owner):
    mine = make_provider(owner=owner, approved=False)
    public = make_provider()
    hidden = make_provider(approved=False)
    listed = {p["id"]: p for p in client_for(owner).get(PROVIDERS).json()["results"]}
    assert set(listed) == {mine.id, public.id}
    assert listed[mine.id]["email"] == mine.email and "phone_number" in listed[mine.id]
    assert "email" not in listed[public.id] and "phone_number" not in listed[public.id]
    assert client_for(owner).get(f"{PROVIDERS}{hidden.id}/").status_code == 404
    staff_listed = {p["id"]: p for p in client_for(make_user(staff=True)).get(PROVIDERS).json()["results"]}
    assert {mine.id, public.id, hidden.id} <= set(staff_listed) and "email" in staff_listed[hidden.id]


def test_listing_areas_hides_other_users_geometries(client_for, make_user, make_provider, make_area, owner):
    mine = make_area(square(10.0, 50.0, 0.1), provider=make_provider(owner=owner, approved=False))
    public = make_area(square(11.0, 50.0, 0.1))
    hidden = make_area(square(12.0, 50.0, 0.1), provider=make_provider(approved=False))
    listed = {f["id"]: f for f in client_for(owner).get(AREAS).json()["features"]}
    assert set(listed) == {mine.id, public.id}
    assert listed[mine.id]["geometry"]["type"] == "MultiPolygon"
    assert listed[public.id]["geometry"] is None and "bbox" not in listed[public.id]
    assert client_for(owner).get(f"{AREAS}{public.id}/").json()["geometry"] is None
    assert client_for(owner).get(f"{AREAS}{hidden.id}/").status_code == 404
    staff_listed = {f["id"]: f for f in client_for(make_user(staff=True)).get(AREAS).json()["features"]}
    assert staff_listed[hidden.id]["geometry"]["type"] == "MultiPolygon"
    assert ServiceArea.objects.count() == 3


def test_import_with_approve_approves_the_providers(tmp_path, make_provider, api):
    from django.core.management import call_command

    provider = make_provider(approved=False)
    path = tmp_path / "areas.ndjson"
    path.write_text(orjson.dumps(feature(square(20.0, -30.0, 0.5), provider=provider.id, name="x", price="5")).decode())
    call_command("import_areas", str(path), "--approve", "--no-progress")
    provider.refresh_from_db()
    assert provider.approved and provider.approved_at is not None
    assert len(lookup_ids(api, -30.0, 20.0)) == 1
