"""Shared fixtures: API clients and small factories. Tests run against the real PostGIS test database and a
real Redis (`make test` starts a PostgreSQL cluster and a Redis server of its own: ops/test.sh). Helpers that are
not fixtures (GeoJSON builders, network doubles, a real worker...) are in the `testing` package."""

import itertools

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.models import ApiToken
from areas.models import ServiceArea
from areas.services import area_create
from core.redis import breaker
from hexindex import redis_index
from hexindex.build import index_areas
from partners import keys, limits, usage
from providers.models import Provider
from testing.clock import WindowClock
from testing.redis import RoundTrips

_serial = itertools.count(1)


@pytest.fixture
def make_user(db):
    def make(*, staff: bool = False, username: str | None = None):
        username = username or f"user{next(_serial)}"
        return get_user_model().objects.create_user(
            username=username, email=f"{username}@example.com", password="a long test passphrase", is_staff=staff
        )

    return make


@pytest.fixture
def make_provider(db, make_user):
    def make(*, owner=None, **fields):
        n = next(_serial)
        values = {
            "name": f"Provider {n}",
            "email": f"dispatch{n}@provider.example",
            "phone_number": "+12125550123",
            "language": "en",
            "currency": "USD",
            "approved": True,  # most tests are about lookups, which show approved providers only
        }
        values.update(fields)
        return Provider.objects.create(owner=owner or make_user(), **values)

    return make


@pytest.fixture
def make_area(db, make_provider):
    """Creates an area through the service layer, as the API does."""
    from areas.serializers import AreaGeometryField

    def make(geometry: dict, *, provider=None, price="10.00", name=None) -> ServiceArea:
        return area_create(
            data={
                "provider": provider or make_provider(),
                "name": name or f"Area {next(_serial)}",
                "price": price,
                "geometry": AreaGeometryField().to_internal_value(geometry),
            }
        )

    return make


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def client_for():
    """An API client authenticated as the given user."""

    def make(user) -> APIClient:
        client = APIClient()
        _, secret = ApiToken.objects.create(user=user, expiry=None)
        client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
        return client

    return make


@pytest.fixture(autouse=True)
def clean_cache():
    """Throttle and failed-login counters live in the cache: every test starts without any."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def index_redis(settings):
    """A clean Redis index (generation 1, empty) for every test; the test Redis databases are private to tests."""
    client = redis_index.client()
    client.flushdb()
    redis_index.set_live_generation(1)
    breaker.succeeded()  # a test that broke Redis leaves no open circuit behind
    keys.forget_all()  # ... nor keys remembered by this process,
    limits.forget_all()  # ... nor paused rate limits, nor callers blocked
    usage.forget_unwritten()  # ... nor usage counted by another test
    yield client
    client.flushdb()
    usage.forget_unwritten()


@pytest.fixture
def index_all(db):
    """Bring the index up to date for every area, as the worker would; returns the build report."""

    def build():
        return index_areas(ServiceArea.objects.order_by("id").values_list("id", flat=True))

    return build


@pytest.fixture
def index_round_trips(monkeypatch, settings):
    """The round trips this process sends to the index's Redis database from now on (testing.redis.RoundTrips):
    counted on the client side, so nothing else on the server changes them."""
    return RoundTrips(settings.HEXINDEX_REDIS_URL).install(monkeypatch)


@pytest.fixture
def rate_clock(monkeypatch):
    """The partner rate limits' wall clock, pinned to the start of a one-minute window (testing.clock): every test
    whose counts must fall in one window uses it. Only partners.limits reads it (partners.keys gets its `now` from
    there; key expiry stays on the real clock)."""
    clock = WindowClock()
    monkeypatch.setattr(limits, "time", clock)
    return clock
