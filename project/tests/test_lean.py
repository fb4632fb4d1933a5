"""The WSGI application's lean path (project/lean.py), called as a WSGI server would call it."""

import json
import logging
from wsgiref.headers import Headers

import pytest
from django.core.signals import got_request_exception, request_finished, request_started
from django.db import close_old_connections
from django.http import HttpResponse
from django.middleware.csrf import get_token
from django.test import RequestFactory
from django.urls import path

from project.lean import LeanDispatcher
from project.wsgi import application


def call(app, url: str, data: dict | None = None) -> tuple[str, Headers, bytes]:
    """GET `url` through a WSGI app; the status line, the headers and the body."""
    environ = RequestFactory().get(url, data).environ
    started = {}

    def start_response(status, headers, exc_info=None):
        started.update(status=status, headers=headers)

    # As Django's test client does: the test's database connection must survive the request signals.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        response = app(environ, start_response)
        body = b"".join(response)
        response.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return started["status"], Headers(started["headers"]), body


# A URLconf of its own for the tests below that build their own dispatcher.
def _csrf_page(request):
    get_token(request)  # what any form page does: the CSRF middleware answers with a cookie (and Vary: Cookie)
    return HttpResponse(b"page")


def _boom(request):
    raise RuntimeError("boom")


def _sets_own_nosniff(request):
    response = HttpResponse(b"{}", content_type="application/json")
    response["X-Content-Type-Options"] = "nosniff"
    return response


urlpatterns = [
    path("lean/", _csrf_page),
    path("full/", _csrf_page),
    path("boom/", _boom),
    path("api/boom/", _boom),
    path("own-nosniff/", _sets_own_nosniff),
]


@pytest.fixture
def dispatcher(settings):
    settings.ROOT_URLCONF = __name__
    return LeanDispatcher(lean_paths=["/lean/", "/boom/", "/missing/", "/own-nosniff/"])


def test_lookup_is_answered_on_the_lean_path_without_middleware_headers(db, make_area):
    area = make_area(
        {"type": "Polygon", "coordinates": [[[2.0, 48.0], [3.0, 48.0], [3.0, 49.0], [2.0, 49.0], [2.0, 48.0]]]},
        price="12.50",
        name="Paris",
    )
    status, headers, body = call(application, "/api/v1/lookup/", {"lat": "48.5", "lng": "2.5"})
    assert status == "200 OK"
    assert json.loads(body) == {
        "count": 1,
        "results": [
            {
                "id": area.id,
                "name": "Paris",
                "price": "12.50",
                "currency": "USD",
                "provider": {"id": area.provider_id, "name": area.provider.name},
            }
        ],
    }
    assert headers["Content-Type"] == "application/json"
    assert headers.get_all("X-Content-Type-Options") == ["nosniff"]
    for added_by_middleware in ("Set-Cookie", "Vary", "X-Frame-Options", "Referrer-Policy"):
        assert added_by_middleware not in headers


def test_lookup_on_the_lean_path_still_refuses_bad_coordinates(db):
    status, headers, body = call(application, "/api/v1/lookup/", {"lat": "91", "lng": "abc"})
    assert status == "400 Bad Request"
    assert json.loads(body) == {
        "lat": ["Must be between -90.0 and 90.0."],
        "lng": ["Must be a decimal number, e.g. -73.7781."],
    }
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_other_paths_keep_the_middleware(db):
    status, headers, body = call(application, "/health/live/")
    assert status == "200 OK"
    assert json.loads(body) == {"status": "ok"}
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers.get_all("X-Content-Type-Options") == ["nosniff"]


def test_path_only_starting_like_a_lean_path_goes_to_the_full_handler(db):
    status, headers, _ = call(application, "/api/v1/lookup/x")
    assert status == "404 Not Found"
    assert headers["X-Frame-Options"] == "DENY"
    # CommonMiddleware's APPEND_SLASH: only the full handler redirects a missing slash.
    status, headers, _ = call(application, "/api/v1/lookup", {"lat": "1", "lng": "2"})
    assert status == "301 Moved Permanently"
    assert headers["Location"] == "/api/v1/lookup/?lat=1&lng=2"


def test_same_view_sets_cookies_only_on_the_full_path(dispatcher):
    status, lean, body = call(dispatcher, "/lean/")
    assert (status, body) == ("200 OK", b"page")
    assert "Set-Cookie" not in lean
    assert "Vary" not in lean
    assert "X-Frame-Options" not in lean
    assert lean.get_all("X-Content-Type-Options") == ["nosniff"]

    status, full, body = call(dispatcher, "/full/")
    assert (status, body) == ("200 OK", b"page")
    assert full["Set-Cookie"].strip().startswith("csrftoken=")
    assert "Cookie" in full["Vary"]
    assert full["X-Frame-Options"] == "DENY"


def test_lean_path_sends_the_request_signals(dispatcher):
    sent = []

    def record(sender, **kwargs):
        sent.append(kwargs["signal"])

    request_started.connect(record)
    request_finished.connect(record)
    try:
        call(dispatcher, "/lean/")
    finally:
        request_started.disconnect(record)
        request_finished.disconnect(record)
    assert sent == [request_started, request_finished]


@pytest.mark.parametrize("debug", [False, True])
def test_lean_path_errors_are_a_404_and_a_json_500_debug_or_not(dispatcher, caplog, settings, debug):
    settings.DEBUG = debug
    status, headers, body = call(dispatcher, "/missing/")
    assert status == "404 Not Found"
    assert headers["X-Content-Type-Options"] == "nosniff"

    exceptions = []

    def record(sender, request, **kwargs):
        exceptions.append(request.path)

    got_request_exception.connect(record)
    try:
        with caplog.at_level(logging.ERROR, logger="django.request"):
            status, headers, body = call(dispatcher, "/boom/")
    finally:
        got_request_exception.disconnect(record)
    assert status == "500 Internal Server Error"
    assert json.loads(body) == {"detail": "Internal server error.", "code": "server_error"}  # never a debug page
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert exceptions == ["/boom/"]
    assert "Internal Server Error: /boom/" in caplog.text


def test_lean_path_keeps_a_nosniff_header_the_view_set(dispatcher):
    status, headers, _ = call(dispatcher, "/own-nosniff/")
    assert status == "200 OK"
    assert headers.get_all("X-Content-Type-Options") == ["nosniff"]


def test_an_unknown_api_path_is_a_json_404_and_other_paths_keep_djangos_page(client, db):
    api = client.get("/api/v1/no-such-thing/")
    assert api.status_code == 404 and api.json() == {"detail": "Not found.", "code": "not_found"}
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("debug", [False, True])
def test_an_unexpected_error_under_api_on_the_full_path_is_a_json_500(settings, db, debug):
    from django.test import Client

    settings.ROOT_URLCONF = __name__
    settings.DEBUG = debug
    response = Client(raise_request_exception=False).get("/api/boom/")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error.", "code": "server_error"}
