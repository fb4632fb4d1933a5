"""Fixtures for the webhook tests: a partner with an API key, a receiver, webhooks and area changes."""

import itertools

import pytest
from rest_framework.test import APIClient

from partners.models import Partner, PartnerKey
from testing.geo import square
from webhooks.services import webhook_create
from webhooks.tests.helpers import Receiver

_serial = itertools.count(1)


@pytest.fixture
def make_partner(db):
    def make(name: str | None = None) -> Partner:
        return Partner.objects.create(name=name or f"Partner {next(_serial)}", contact_email="ops@partner.example")

    return make


@pytest.fixture
def partner(make_partner):
    return make_partner()


@pytest.fixture
def key_client():
    """An API client sending the given partner's (new) API key as X-API-Key."""

    def make(partner: Partner, **key_fields) -> APIClient:
        _, key = PartnerKey.objects.create_key(name="test", partner=partner, **key_fields)
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=key)
        return client

    return make


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


@pytest.fixture
def make_webhook(partner):
    def make(url: str, *, owner: Partner | None = None, secret: str | None = None):
        return webhook_create(partner=owner or partner, url=url, secret=secret)

    return make


@pytest.fixture
def change_areas(make_provider, make_area):
    """Make n changes the feed lists (areas of an approved provider created); their area ids, in order."""

    def make(n: int) -> list[int]:
        provider = make_provider()
        return [make_area(square(10.0 + i * 0.5, 50.0, 0.1), provider=provider).id for i in range(n)]

    return make
