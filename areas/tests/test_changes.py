"""The change feed lists exactly what changed in public lookups, in commit-safe order, and resumes from a cursor."""

import pytest
from django.db import connection

from areas.services import area_create, area_delete, area_update
from providers.services import provider_review, provider_set_approval, provider_update
from testing.feed import feed_settled
from testing.geo import square
from testing.index import geometry

URL = "/api/v1/changes/"
pytestmark = pytest.mark.django_db(transaction=True)  # the feed only lists committed transactions


def feed(api, since=None, **params):
    feed_settled()
    response = api.get(URL, {**({"since": since} if since else {}), **params})
    assert response.status_code == 200, response.content
    return response.json()


def kinds(body) -> list[tuple]:
    return [(c["area"], c["kind"], sorted(c["fields"])) for c in body["changes"]]


def new_area(provider, lng=10.0, price="10.00"):
    return area_create(
        data={"provider": provider, "name": "a", "price": price, "geometry": geometry(square(lng, 50, 0.1))}
    )


def test_creates_updates_and_deletes_of_public_areas_are_listed_in_order(api, make_provider):
    provider = make_provider()
    start = feed(api)["cursor"]
    area = new_area(provider)
    area_update(area=area, data={"price": "12.00"})
    area_update(area=area, data={"geometry": geometry(square(11.0, 50.0, 0.1)), "name": "b"})
    area_id = area.id
    area_delete(area=area)
    body = feed(api, start)
    assert kinds(body) == [
        (area_id, "created", ["geometry", "name", "price", "provider"]),
        (area_id, "updated", ["price"]),
        (area_id, "updated", ["geometry", "name"]),
        (area_id, "deleted", []),
    ]
    assert body["more"] is False
    assert feed(api, body["cursor"])["changes"] == []  # nothing new since


def test_unapproved_providers_are_absent_until_approved_and_leave_when_revoked(api, make_provider):
    hidden = make_provider(approved=False)
    start = feed(api)["cursor"]
    area = new_area(hidden)
    area_update(area=area, data={"price": "3.00"})
    assert feed(api, start)["changes"] == []
    provider_set_approval(provider=hidden, approved=True)
    provider_set_approval(provider=hidden, approved=False)
    assert [c[:2] for c in kinds(feed(api, start))] == [(area.id, "created"), (area.id, "deleted")]


def test_a_provider_rename_lists_its_areas_as_updated_once_staff_accept_it(api, make_provider):
    provider = make_provider()
    areas = [new_area(provider, lng) for lng in (1.0, 2.0)]
    start = feed(api)["cursor"]
    provider_update(provider=provider, data={"name": "Renamed"})
    assert feed(api, start)["changes"] == []  # waiting for review: public lookups still show the old name
    provider_review(provider=provider, accept=True)
    assert sorted(kinds(feed(api, start))) == sorted((a.id, "updated", ["provider"]) for a in areas)


def test_raw_sql_writes_are_listed_too(api, make_provider):
    area = new_area(make_provider())
    start = feed(api)["cursor"]
    with connection.cursor() as cursor:
        cursor.execute("UPDATE areas_servicearea SET price = 99 WHERE id = %s", [area.id])
    assert kinds(feed(api, start)) == [(area.id, "updated", ["price"])]


def test_pages_resume_from_the_cursor(api, make_provider):
    provider = make_provider()
    start = feed(api)["cursor"]
    created = [new_area(provider, lng).id for lng in (1.0, 2.0, 3.0)]
    first = feed(api, start, limit=2)
    second = feed(api, first["cursor"], limit=2)
    assert first["more"] is True and second["more"] is False
    assert [c["area"] for c in first["changes"] + second["changes"]] == created


@pytest.mark.parametrize(
    "params",
    [{"since": "abc"}, {"since": "1-"}, {"limit": "0"}, {"limit": "1001"}, {"since": "99999999999999999999-1"}],
)
def test_bad_cursor_or_limit_is_a_400(api, params):
    assert api.get(URL, params).status_code == 400


def test_a_cursor_the_feed_never_issued_is_refused_not_silently_empty(api, make_provider):
    provider = make_provider()
    new_area(provider)
    issued = feed(api)["cursor"]
    xid, change_id = (int(part) for part in issued.split("-"))
    for never in (f"{xid + 10**6}-{change_id}", f"{xid}-{change_id + 1000}", "7340-2209"):  # made up, the README's
        response = api.get(URL, {"since": never})
        assert response.status_code == 400, never
        assert "never issued" in response.json()["since"][0]
    assert feed(api, issued)["changes"] == []  # the cursor it handed out is fine


def test_since_now_starts_after_the_newest_change_without_the_history(api, make_provider):
    provider = make_provider()
    for lng in (1.0, 2.0):
        new_area(provider, lng)
    now = feed(api, "now")
    assert now["changes"] == [] and now["more"] is False
    later = new_area(provider, 3.0)
    assert [c["area"] for c in feed(api, now["cursor"])["changes"]] == [later.id]
