"""What public lookups show of an approved provider (its name and currency) changes only when staff accept it."""

import pytest

from hexindex import redis_index
from testing.index import WEST

PROVIDERS = "/api/v1/providers/"
LOOKUP = "/api/v1/lookup/"


@pytest.fixture
def live_area(make_area, index_all):
    area = make_area(WEST, price="20.00")
    index_all()
    return area


@pytest.fixture
def staff_client(client_for, make_user):
    return client_for(make_user(staff=True))


def shown(api) -> tuple[str, str]:
    result = api.get(LOOKUP, {"lat": 50.0, "lng": 10.0}).json()["results"][0]
    return result["provider"]["name"], result["currency"]


def test_an_owners_rename_of_an_approved_provider_waits_for_review_and_costs_the_index_nothing(
    api, client_for, live_area, index_redis
):
    provider = live_area.provider
    owner = client_for(provider.owner)
    response = owner.patch(f"{PROVIDERS}{provider.id}/", {"name": "Cheap Cabs", "currency": "EUR"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["currency"]) == (provider.name, "USD")
    assert body["pending_review"] == {"name": "Cheap Cabs", "currency": "EUR"}
    assert body["review_requested_at"] is not None
    assert shown(api) == (provider.name, "USD")
    assert redis_index.pending_tokens_all() == {}  # nothing registered: lookups stay on the index


def test_staff_accepting_the_changes_shows_them_in_the_next_lookup(api, client_for, live_area, staff_client):
    provider = live_area.provider
    client_for(provider.owner).patch(f"{PROVIDERS}{provider.id}/", {"name": "Cheap Cabs"}, format="json")
    waiting = staff_client.get(PROVIDERS, {"review_pending": "true"}).json()["results"]
    assert [p["id"] for p in waiting] == [provider.id]
    accepted = staff_client.post(f"{PROVIDERS}{provider.id}/accept-changes/")
    assert accepted.status_code == 200
    assert (accepted.json()["name"], accepted.json()["pending_review"]) == ("Cheap Cabs", {})
    assert shown(api) == ("Cheap Cabs", "USD")
    assert staff_client.get(PROVIDERS, {"review_pending": "true"}).json()["results"] == []


def test_staff_rejecting_the_changes_keeps_what_lookups_show(api, client_for, live_area, staff_client):
    provider = live_area.provider
    client_for(provider.owner).patch(f"{PROVIDERS}{provider.id}/", {"currency": "EUR"}, format="json")
    rejected = staff_client.post(f"{PROVIDERS}{provider.id}/reject-changes/")
    assert rejected.status_code == 200
    assert (rejected.json()["currency"], rejected.json()["pending_review"]) == ("USD", {})
    assert shown(api) == (provider.name, "USD")
    assert staff_client.post(f"{PROVIDERS}{provider.id}/reject-changes/").status_code == 400  # nothing waits now


def test_sending_the_current_value_withdraws_a_proposal(client_for, live_area):
    provider = live_area.provider
    owner = client_for(provider.owner)
    owner.patch(f"{PROVIDERS}{provider.id}/", {"name": "Cheap Cabs", "currency": "EUR"}, format="json")
    body = owner.patch(f"{PROVIDERS}{provider.id}/", {"name": provider.name}, format="json").json()
    assert body["pending_review"] == {"currency": "EUR"}
    body = owner.patch(f"{PROVIDERS}{provider.id}/", {"currency": "USD"}, format="json").json()
    assert (body["pending_review"], body["review_requested_at"]) == ({}, None)


def test_other_fields_of_an_approved_provider_change_at_once(client_for, live_area):
    provider = live_area.provider
    body = client_for(provider.owner).patch(f"{PROVIDERS}{provider.id}/", {"language": "de"}, format="json").json()
    assert (body["language"], body["pending_review"]) == ("de", {})


def test_only_staff_accept_or_reject_and_others_do_not_see_proposals(client_for, make_user, live_area):
    provider = live_area.provider
    owner = client_for(provider.owner)
    owner.patch(f"{PROVIDERS}{provider.id}/", {"name": "Cheap Cabs"}, format="json")
    assert owner.post(f"{PROVIDERS}{provider.id}/accept-changes/").status_code == 403
    seen_by_other = client_for(make_user()).get(f"{PROVIDERS}{provider.id}/").json()
    assert "pending_review" not in seen_by_other and seen_by_other["name"] == provider.name


def test_staff_change_an_approved_providers_name_at_once(api, live_area, staff_client):
    provider = live_area.provider
    body = staff_client.patch(f"{PROVIDERS}{provider.id}/", {"name": "Checked Cabs"}, format="json").json()
    assert (body["name"], body["pending_review"]) == ("Checked Cabs", {})
    assert shown(api) == ("Checked Cabs", "USD")


def test_an_unapproved_providers_rename_applies_at_once(client_for, make_provider):
    provider = make_provider(approved=False)
    body = client_for(provider.owner).patch(f"{PROVIDERS}{provider.id}/", {"name": "New"}, format="json").json()
    assert (body["name"], body["pending_review"]) == ("New", {})


def test_approving_a_provider_applies_what_waited_for_review(api, client_for, live_area, staff_client):
    provider = live_area.provider
    client_for(provider.owner).patch(f"{PROVIDERS}{provider.id}/", {"name": "Cheap Cabs"}, format="json")
    assert staff_client.post(f"{PROVIDERS}{provider.id}/revoke/").status_code == 200
    approved = staff_client.post(f"{PROVIDERS}{provider.id}/approve/").json()
    assert (approved["name"], approved["pending_review"]) == ("Cheap Cabs", {})
    assert shown(api) == ("Cheap Cabs", "USD")
