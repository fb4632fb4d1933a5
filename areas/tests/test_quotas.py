"""Per-owner quotas and write rate limits: refused with a status that names the limit, and nothing stored."""

import pytest
from rest_framework.throttling import UserRateThrottle

from areas.models import ServiceArea
from testing.geo import feature, polygon, square

URL = "/api/v1/service-areas/"


@pytest.fixture
def owner(make_user):
    return make_user()


@pytest.fixture
def provider(make_provider, owner):
    return make_provider(owner=owner)


@pytest.fixture
def owner_client(client_for, owner):
    return client_for(owner)


def stored() -> list:
    return list(ServiceArea.objects.order_by("id").values_list("id", "name", "vertex_count"))


def test_an_area_wider_than_the_limit_is_refused_with_its_span(owner_client, provider, settings):
    settings.AREA_MAX_SPAN_KM = 2_000.0
    before = stored()
    # 25 degrees of longitude at the equator: ~2,780 km across.
    response = owner_client.post(URL, feature(square(10.0, 0.0, 12.5), provider=provider.id, name="x", price="1"))
    assert response.status_code == 400
    assert "2,000 km" in response.json()["geometry"][0] and "spans" in response.json()["geometry"][0]
    assert stored() == before


def test_an_area_across_the_antimeridian_is_measured_by_what_it_covers(owner_client, provider, settings):
    settings.AREA_MAX_SPAN_KM = 2_000.0
    fiji = polygon([(179.0, -18.0), (180.0, -18.0), (180.0, -16.0), (179.0, -16.0)])
    other_side = polygon([(-180.0, -18.0), (-179.0, -18.0), (-179.0, -16.0), (-180.0, -16.0)])
    both = {"type": "MultiPolygon", "coordinates": [fiji["coordinates"], other_side["coordinates"]]}
    assert owner_client.post(URL, feature(both, provider=provider.id, name="Fiji", price="1")).status_code == 201


def test_the_area_count_quota_is_refused_with_403_naming_it(owner_client, provider, settings):
    settings.QUOTA_AREAS_PER_OWNER = 2
    for n in range(2):
        assert (
            owner_client.post(URL, feature(square(n, 0.5, 0.1), provider=provider.id, name="a", price="1")).status_code
            == 201
        )
    before = stored()
    response = owner_client.post(URL, feature(square(5, 0.5, 0.1), provider=provider.id, name="b", price="1"))
    assert response.status_code == 403
    assert (response.json()["quota"], response.json()["limit"]) == ("areas", 2)
    assert stored() == before


def test_the_vertex_quota_counts_every_area_of_the_owner_and_a_geometry_change(owner_client, provider, settings):
    settings.QUOTA_VERTICES_PER_OWNER = 12  # a square is 5 positions
    first = owner_client.post(URL, feature(square(0, 0.5, 0.1), provider=provider.id, name="a", price="1")).json()
    assert (
        owner_client.post(URL, feature(square(1, 0.5, 0.1), provider=provider.id, name="b", price="1")).status_code
        == 201
    )
    before = stored()
    third = owner_client.post(URL, feature(square(2, 0.5, 0.1), provider=provider.id, name="c", price="1"))
    assert third.status_code == 403 and third.json()["quota"] == "vertices"
    # Replacing an area's geometry counts the new one instead of the old.
    octagon = polygon([(0, 0), (1, 0), (2, 1), (2, 2), (1, 3), (0, 3), (-1, 2), (-1, 1)])
    grown = owner_client.patch(f"{URL}{first['id']}/", {"type": "Feature", "geometry": octagon}, format="json")
    assert grown.status_code == 403
    assert stored() == before
    assert (
        owner_client.patch(f"{URL}{first['id']}/", {"type": "Feature", "properties": {"price": "2"}}).status_code == 200
    )


def test_staff_are_not_limited(client_for, make_user, make_provider, settings):
    settings.QUOTA_AREAS_PER_OWNER = 0
    settings.AREA_MAX_SPAN_KM = 100.0
    staff = make_user(staff=True)
    provider = make_provider(owner=staff)
    response = client_for(staff).post(URL, feature(square(0, 0, 20), provider=provider.id, name="big", price="1"))
    assert response.status_code == 201


def test_writes_are_rate_limited_per_user_with_retry_after(owner_client, provider, monkeypatch, client_for, make_user):
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"writes": "2/minute"})
    codes = [
        owner_client.post(URL, feature(square(n, 1, 0.1), provider=provider.id, name="a", price="1")).status_code
        for n in range(3)
    ]
    assert codes == [201, 201, 429]
    limited = owner_client.post(URL, feature(square(9, 1, 0.1), provider=provider.id, name="a", price="1"))
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert owner_client.get(URL).status_code == 200  # reads are not limited by it
    assert ServiceArea.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_creates_cannot_both_pass_the_last_place_in_a_quota(make_provider, settings):
    """One create holds its transaction open after passing the quota; the other, started meanwhile, must wait for it
    and then see its area. Without the owner's row lock the second would count without the first and pass too."""
    import threading
    import time

    from django.db import connection, transaction

    from areas.quotas import QuotaExceeded
    from areas.services import area_create
    from testing.index import geometry

    settings.QUOTA_AREAS_PER_OWNER = 1
    provider = make_provider()
    first_created, release = threading.Event(), threading.Event()
    outcomes = {}

    def create(name: str, hold: bool) -> None:
        data = {"provider": provider, "name": name, "price": "1.00", "geometry": geometry(square(10.0, 50.0, 0.1))}
        try:
            with transaction.atomic():
                area_create(data=data)
                if hold:
                    first_created.set()
                    release.wait(10)
            outcomes[name] = "created"
        except QuotaExceeded:
            outcomes[name] = "refused"
        finally:
            connection.close()

    first = threading.Thread(target=create, args=("first", True))
    first.start()
    assert first_created.wait(10)
    second = threading.Thread(target=create, args=("second", False))
    second.start()
    # Until the second waits for a lock the first holds (or, without one, has finished: already past the check).
    deadline = time.monotonic() + 30
    while second.is_alive() and not _a_backend_waits_for_a_lock():
        assert time.monotonic() < deadline, "the second create neither waited for a lock nor finished"
        time.sleep(0.02)
    release.set()
    first.join(10)
    second.join(10)
    assert outcomes == {"first": "created", "second": "refused"}
    assert list(ServiceArea.objects.values_list("name", flat=True)) == ["first"]


def _a_backend_waits_for_a_lock() -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0
