"""The Django admin changes and deletes areas and providers through the services, so lookups hear of it."""

import orjson
import pytest
from django.urls import reverse

from hexindex.api import lookup
from testing.index import WEST, live_at


def ids(lat, lng):
    return [item["id"] for item in orjson.loads(lookup(lat=lat, lng=lng).body)["results"]]


@pytest.fixture
def admin_client_logged_in(client, make_user):
    client.force_login(_superuser(make_user))
    return client


def _superuser(make_user):
    user = make_user(staff=True)
    user.is_superuser = True
    user.save()
    return user


def test_admin_bulk_delete_of_areas_removes_them_from_lookups(admin_client_logged_in, make_area, index_all):
    area = make_area(WEST)
    index_all()
    assert ids(50.0, 10.0) == [area.id]
    response = admin_client_logged_in.post(
        reverse("admin:areas_servicearea_changelist"),
        {"action": "delete_selected", "_selected_action": [area.id], "post": "yes"},
    )
    assert response.status_code == 302
    assert ids(50.0, 10.0) == []


def test_admin_price_change_shows_in_lookups_at_once(admin_client_logged_in, make_area, index_all):
    area = make_area(WEST, price="10.00")
    index_all()
    assert b'"price":"10.00"' in lookup(lat=50.0, lng=10.0).body
    url = reverse("admin:areas_servicearea_change", args=[area.id])
    response = admin_client_logged_in.post(
        url, {"provider": area.provider_id, "name": area.name, "price": "7.25", "_save": "Save"}
    )
    assert response.status_code == 302
    assert b'"price":"7.25"' in lookup(lat=50.0, lng=10.0).body


def test_admin_provider_delete_removes_its_areas_from_lookups(admin_client_logged_in, make_area, index_all):
    area = make_area(WEST)
    index_all()
    assert area.id in live_at(50.0, 10.0)
    response = admin_client_logged_in.post(
        reverse("admin:providers_provider_delete", args=[area.provider_id]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert ids(50.0, 10.0) == []
