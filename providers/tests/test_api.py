"""Providers over HTTP: CRUD, validation of contact and locale data, ownership, filters."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from areas.models import ServiceArea
from providers.fields import PHONE_INVALID, PHONE_NOT_INTERNATIONAL
from providers.models import Provider
from providers.permissions import IsProviderManagerOrReadOnly
from providers.serializers import EMAIL_TAKEN
from testing.geo import square

URL = "/api/v1/providers/"
VALID = {
    "name": "Acme Shuttles",
    "email": "dispatch@acme.example",
    "phone_number": "+1 (212) 555-0123",
    "language": "en",
    "currency": "USD",
}


def detail(provider_id: int) -> str:
    return f"{URL}{provider_id}/"


def snapshot() -> list:
    return list(
        Provider.objects.order_by("id").values_list("id", "name", "email", "phone_number", "language", "currency")
    )


@pytest.fixture
def owner(make_user):
    return make_user()


@pytest.fixture
def owner_client(client_for, owner):
    return client_for(owner)


def test_create_normalises_and_returns_the_provider(owner_client, owner):
    body = {**VALID, "email": "Dispatch@ACME.Example", "language": "EN", "currency": "usd"}
    response = owner_client.post(URL, body, format="json")

    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["owner"] == owner.id
    assert data["phone_number"] == "+12125550123"  # E.164
    assert data["email"] == "Dispatch@acme.example"  # the domain is case-insensitive, the mailbox may not be
    assert (data["language"], data["currency"]) == ("en", "USD")
    assert {"id", "created_at", "updated_at"} <= data.keys()
    assert Provider.objects.get(pk=data["id"]).owner == owner


def test_retrieve_update_and_patch(owner_client):
    provider_id = owner_client.post(URL, VALID, format="json").json()["id"]
    assert owner_client.get(detail(provider_id)).json()["name"] == "Acme Shuttles"

    replaced = {**VALID, "name": "Acme Transfers", "phone_number": "+44 20 7946 0958", "currency": "GBP"}
    response = owner_client.put(detail(provider_id), replaced, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["phone_number"] == "+442079460958"

    response = owner_client.patch(detail(provider_id), {"language": "fr"}, format="json")
    assert response.status_code == 200
    provider = Provider.objects.get(pk=provider_id)
    assert (provider.name, provider.language, provider.currency) == ("Acme Transfers", "fr", "GBP")


def test_owner_is_read_only(owner_client, make_user, owner):
    other = make_user()
    response = owner_client.post(URL, {**VALID, "owner": other.id}, format="json")
    assert Provider.objects.get(pk=response.json()["id"]).owner == owner


def test_delete_removes_the_provider_and_its_areas(owner_client, owner, make_area, make_provider):
    provider = make_provider(owner=owner)
    make_area(square(10, 50, 1), provider=provider)
    make_area(square(11, 51, 1), provider=provider)
    kept = make_area(square(12, 52, 1))

    assert owner_client.delete(detail(provider.id)).status_code == 204
    assert not Provider.objects.filter(pk=provider.id).exists()
    assert list(ServiceArea.objects.values_list("id", flat=True)) == [kept.id]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("email", "not-an-email", "valid email"),
        ("phone_number", "(212) 555-0123", PHONE_NOT_INTERNATIONAL),
        ("phone_number", "212 555 0123", PHONE_NOT_INTERNATIONAL),
        ("phone_number", "+1 555", PHONE_INVALID),
        ("phone_number", "+1 212 555 01234567", PHONE_INVALID),
        ("phone_number", "call me", PHONE_INVALID),
        ("language", "eng", "not a valid choice"),
        ("language", "xx", "not a valid choice"),
        ("currency", "US", "not a valid choice"),
        ("currency", "ABC", "not a valid choice"),
        ("currency", "XAU", "not a valid choice"),  # gold is ISO 4217 but not a fare currency
        ("name", "", "blank"),
        ("name", "x" * 201, "200 characters"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_stores_nothing(owner_client, field, value, message):
    before = snapshot()
    response = owner_client.post(URL, {**VALID, field: value}, format="json")
    assert response.status_code == 400
    assert any(message in error for error in response.json()[field]), response.json()
    assert snapshot() == before


def test_email_is_unique_among_your_providers_ignoring_case(owner_client, owner, make_provider):
    make_provider(owner=owner, email="dispatch@acme.example")
    before = snapshot()
    response = owner_client.post(URL, {**VALID, "email": "DISPATCH@acme.example"}, format="json")
    assert response.status_code == 400
    assert response.json()["email"] == [EMAIL_TAKEN]
    assert snapshot() == before


def test_creating_a_provider_does_not_reveal_whether_another_user_uses_the_email(owner_client, make_provider):
    make_provider(email="dispatch@acme.example")  # someone else's
    assert owner_client.post(URL, {**VALID, "email": "dispatch@acme.example"}, format="json").status_code == 201


def test_keeping_your_own_email_on_update_is_fine(owner_client):
    provider_id = owner_client.post(URL, VALID, format="json").json()["id"]
    assert owner_client.put(detail(provider_id), VALID, format="json").status_code == 200


def test_list_filters(owner_client, make_provider):
    acme = make_provider(name="Acme Shuttles", language="en", currency="USD")
    make_provider(name="Sakura Taxi", language="ja", currency="JPY")
    tokyo = make_provider(name="Tokyo Acme", language="ja", currency="JPY")

    def ids(**params):
        return [p["id"] for p in owner_client.get(URL, params).json()["results"]]

    assert ids(name="acme") == [acme.id, tokyo.id]
    assert ids(language="ja", name="acme") == [tokyo.id]
    assert ids(currency="USD") == [acme.id]
    assert owner_client.get(URL, {"currency": "XYZ"}).status_code == 400


def test_list_is_paginated(owner_client, make_provider):
    for _ in range(3):
        make_provider()
    page = owner_client.get(URL, {"page_size": 2}).json()
    assert page["count"] == 3
    assert len(page["results"]) == 2
    assert page["next"]


def test_token_required(api, make_provider):
    provider = make_provider()
    assert api.get(URL).status_code == 401
    assert api.post(URL, VALID, format="json").status_code == 401
    assert api.delete(detail(provider.id)).status_code == 401
    assert Provider.objects.filter(pk=provider.id).exists()


def test_wrong_token_is_refused(api, db):
    api.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert api.get(URL).status_code == 401


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_other_users_cannot_change_my_provider(client_for, make_user, make_provider, make_area, method):
    mine = make_provider()
    make_area(square(10, 50, 1), provider=mine)
    before, areas_before = snapshot(), ServiceArea.objects.count()
    intruder = client_for(make_user())

    response = getattr(intruder, method)(detail(mine.id), {**VALID, "name": "Hijacked"}, format="json")

    assert response.status_code == 403
    assert response.json()["detail"] == IsProviderManagerOrReadOnly.message
    assert snapshot() == before
    assert ServiceArea.objects.count() == areas_before


def test_other_users_can_read_providers(client_for, make_user, make_provider):
    provider = make_provider()
    assert client_for(make_user()).get(detail(provider.id)).status_code == 200


def test_staff_can_change_any_provider(client_for, make_user, make_provider):
    provider = make_provider()
    staff = client_for(make_user(staff=True))
    assert staff.patch(detail(provider.id), {"name": "Renamed"}, format="json").status_code == 200
    assert Provider.objects.get(pk=provider.id).name == "Renamed"
    assert staff.delete(detail(provider.id)).status_code == 204


def test_list_query_count_does_not_grow_with_providers(owner_client, make_provider):
    make_provider()
    with CaptureQueriesContext(connection) as few:
        owner_client.get(URL)
    for _ in range(10):
        make_provider()
    with CaptureQueriesContext(connection) as many:
        owner_client.get(URL)
    assert len(few) == len(many) == 4  # token (knox: the token, then the user's others to tidy), count, page


def test_codes_in_filters_forgive_letter_case_and_a_bad_boolean_is_a_400(client_for, make_user, make_provider):
    gbp = make_provider(currency="GBP", language="en")
    make_provider(currency="USD", language="es")
    staff_client = client_for(make_user(staff=True))
    assert [p["id"] for p in staff_client.get("/api/v1/providers/", {"currency": "gbp"}).json()["results"]] == [gbp.id]
    english = staff_client.get("/api/v1/providers/", {"language": "EN"}).json()["results"]
    assert [p["id"] for p in english] == [gbp.id]
    for bad in ({"approved": "maybe"}, {"review_pending": "yes please"}, {"currency": "GBX"}):
        response = staff_client.get("/api/v1/providers/", bad)
        assert response.status_code == 400 and set(response.json()) == set(bad), response.content


def test_the_api_root_lists_every_endpoint_to_anyone(api, db):
    response = api.get("/api/v1/")
    assert response.status_code == 200
    body = response.json()
    assert {"lookup", "lookup-batch", "lookup-trip", "changes", "usage", "register", "providers"} <= set(body)
    assert body["lookup"]["url"] == "http://testserver/api/v1/lookup/"
