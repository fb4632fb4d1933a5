"""The admin can be switched off, or limited to networks, by settings."""

import importlib

import pytest
from django.urls import clear_url_caches


@pytest.fixture
def reload_urls():
    def reload():
        import project.urls

        clear_url_caches()
        importlib.reload(project.urls)

    yield reload
    reload()


def test_the_admin_can_be_switched_off(client, db, settings, reload_urls):
    settings.ADMIN_ENABLED = False
    reload_urls()
    assert client.get("/admin/login/").status_code == 404
    settings.ADMIN_ENABLED = True
    reload_urls()
    assert client.get("/admin/login/").status_code == 200


def test_the_admin_answers_only_from_allowed_networks(client, db, settings):
    settings.ADMIN_ALLOWED_NETWORKS = ["10.8.0.0/16"]
    assert client.get("/admin/login/", REMOTE_ADDR="203.0.113.9").status_code == 404
    assert client.get("/admin/login/", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="10.8.0.1").status_code == 404
    assert client.get("/admin/login/", REMOTE_ADDR="10.8.3.4").status_code == 200
    assert client.get("/api/v1/lookup/", {"lat": 1, "lng": 2}, REMOTE_ADDR="203.0.113.9").status_code == 200
