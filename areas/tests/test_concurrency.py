"""Concurrent writers: a write changes only the fields it sends, and If-Match turns a stale write into a 412."""

import pytest

from areas.models import ServiceArea
from areas.services import area_update
from providers.models import Provider
from providers.services import provider_update
from testing.geo import square
from testing.index import geometry

AREAS = "/api/v1/service-areas/"
PROVIDERS = "/api/v1/providers/"


@pytest.fixture
def owner(make_user):
    return make_user()


@pytest.fixture
def owner_client(client_for, owner):
    return client_for(owner)


@pytest.fixture
def area(make_area, make_provider, owner):
    return make_area(square(10.0, 50.0, 0.2), provider=make_provider(owner=owner), price="10.00")


def test_a_price_patch_on_a_stale_copy_does_not_undo_a_geometry_change(area, index_all):
    stale = ServiceArea.objects.get(pk=area.pk)  # read before the geometry change commits
    area_update(area=ServiceArea.objects.get(pk=area.pk), data={"geometry": geometry(square(20.0, 45.0, 0.2))})
    area_update(area=stale, data={"price": "12.00"})
    stored = ServiceArea.objects.get(pk=area.pk)
    assert (stored.geometry.centroid.x, str(stored.price)) == (pytest.approx(20.0), "12.00")
    index_all()
    from hexindex.api import lookup

    assert b'"price":"12.00"' in lookup(lat=45.0, lng=20.0).body  # the index heard of both changes
    assert b'"results":[]' in lookup(lat=50.0, lng=10.0).body


def test_a_name_patch_on_a_stale_provider_does_not_undo_a_currency_change(make_provider, make_user):
    provider = make_provider(currency="USD")
    stale = Provider.objects.get(pk=provider.pk)
    staff = make_user(staff=True)  # applied at once (an owner's change to an approved provider waits for review)
    provider_update(provider=Provider.objects.get(pk=provider.pk), data={"currency": "EUR"}, by=staff)
    provider_update(provider=stale, data={"name": "Renamed"}, by=staff)
    stored = Provider.objects.get(pk=provider.pk)
    assert (stored.name, stored.currency) == ("Renamed", "EUR")


def test_area_reads_and_writes_carry_an_etag_and_a_stale_if_match_is_a_412(owner_client, area):
    read = owner_client.get(f"{AREAS}{area.id}/")
    etag = read["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    changed = owner_client.patch(
        f"{AREAS}{area.id}/", {"type": "Feature", "properties": {"price": "11"}}, HTTP_IF_MATCH=etag
    )
    assert changed.status_code == 200 and changed["ETag"] != etag
    stale = owner_client.patch(
        f"{AREAS}{area.id}/", {"type": "Feature", "properties": {"name": "x"}}, HTTP_IF_MATCH=etag
    )
    assert stale.status_code == 412
    assert changed["ETag"] in stale.json()["detail"]
    assert ServiceArea.objects.get(pk=area.pk).name == area.name  # nothing changed
    assert owner_client.delete(f"{AREAS}{area.id}/", HTTP_IF_MATCH=etag).status_code == 412
    assert ServiceArea.objects.filter(pk=area.pk).exists()
    assert owner_client.delete(f"{AREAS}{area.id}/", HTTP_IF_MATCH=changed["ETag"]).status_code == 204


def test_if_match_star_and_no_if_match_always_apply(owner_client, area):
    starred = owner_client.patch(
        f"{AREAS}{area.id}/", {"type": "Feature", "properties": {"price": "3"}}, HTTP_IF_MATCH="*"
    )
    assert starred.status_code == 200 and starred.json()["properties"]["price"] == "3.00"
    assert str(ServiceArea.objects.get(pk=area.pk).price) == "3.00"
    response = owner_client.patch(f"{AREAS}{area.id}/", {"type": "Feature", "properties": {"price": "4"}})
    assert response.status_code == 200 and response.json()["properties"]["price"] == "4.00"
    assert str(ServiceArea.objects.get(pk=area.pk).price) == "4.00"


# If-Match as sent: {etag} is the area's current ETag ("..."), {bare} the same without its quotes.
IF_MATCH_APPLIES = {
    "the current tag": "{etag}",
    "star": "*",
    "a list naming it": '"0123", {etag}',
    "a list without spaces": '"0123",{etag},"4567"',
}
IF_MATCH_REFUSED = {
    "its weak form (compared strongly: never matches)": "W/{etag}",
    "a list of other tags": '"0123", "4567"',
    "a list of weak forms": 'W/"0123", W/{etag}',
    "the tag without quotes (malformed)": "{bare}",
    "an unterminated tag (malformed)": '"{bare}',
    "an empty header": "",
}


@pytest.mark.parametrize("sent", IF_MATCH_APPLIES.values(), ids=IF_MATCH_APPLIES.keys())
def test_if_match_applies_a_write_for_the_current_tag_star_or_a_list_naming_it(owner_client, area, sent):
    etag = owner_client.get(f"{AREAS}{area.id}/")["ETag"]
    header = sent.format(etag=etag, bare=etag.strip('"'))
    response = owner_client.patch(
        f"{AREAS}{area.id}/", {"type": "Feature", "properties": {"price": "7"}}, HTTP_IF_MATCH=header
    )
    assert response.status_code == 200, response.content
    assert str(ServiceArea.objects.get(pk=area.pk).price) == "7.00"
    deleted = owner_client.delete(f"{AREAS}{area.id}/", HTTP_IF_MATCH=sent.format(etag=response["ETag"], bare=""))
    assert deleted.status_code == 204 and not ServiceArea.objects.filter(pk=area.pk).exists()


@pytest.mark.parametrize("sent", IF_MATCH_REFUSED.values(), ids=IF_MATCH_REFUSED.keys())
def test_if_match_refuses_a_weak_tag_other_tags_and_malformed_values_with_a_412(owner_client, area, sent):
    etag = owner_client.get(f"{AREAS}{area.id}/")["ETag"]
    header = sent.format(etag=etag, bare=etag.strip('"'))
    refused = owner_client.patch(
        f"{AREAS}{area.id}/", {"type": "Feature", "properties": {"price": "7"}}, HTTP_IF_MATCH=header
    )
    assert refused.status_code == 412, refused.content
    assert refused["ETag"] == etag and etag in refused.json()["detail"]  # what to read again
    assert str(ServiceArea.objects.get(pk=area.pk).price) == "10.00"  # nothing changed
    assert owner_client.delete(f"{AREAS}{area.id}/", HTTP_IF_MATCH=header).status_code == 412
    assert ServiceArea.objects.filter(pk=area.pk).exists()


def test_provider_etags_and_if_match(owner_client, owner, make_provider):
    provider = make_provider(owner=owner, approved=False)  # its name changes at once (no review before approval)
    etag = owner_client.get(f"{PROVIDERS}{provider.id}/")["ETag"]
    assert owner_client.patch(f"{PROVIDERS}{provider.id}/", {"name": "A"}, HTTP_IF_MATCH=etag).status_code == 200
    stale = owner_client.patch(f"{PROVIDERS}{provider.id}/", {"name": "B"}, HTTP_IF_MATCH=etag)
    assert stale.status_code == 412
    assert Provider.objects.get(pk=provider.pk).name == "A"
    assert owner_client.delete(f"{PROVIDERS}{provider.id}/", HTTP_IF_MATCH=etag).status_code == 412
