"""The portal's pages and what it needs from the API: session sign-in (with the sign-in attempt limits), CSRF on
session writes, the owner's lookup, local map assets, and the admin's area map."""

import json
import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from testing.geo import feature, square

PASSWORD = "a long test passphrase"  # conftest's make_user
SCRIPT_OR_STYLE = re.compile(r'<(?:script[^>]*src|link[^>]*href)="([^"]+)"')


def page_config(response) -> dict:
    match = re.search(r'<script id="portal-config" type="application/json">(.*?)</script>', response.content.decode())
    return json.loads(match.group(1))


def sign_in(client, user, password=PASSWORD, **extra):
    return client.post("/portal/login/", {"username": user.username, "password": password}, **extra)


def test_anonymous_visitors_are_sent_to_sign_in(client, db):
    response = client.get("/portal/")
    assert response.status_code == 302
    assert response["Location"] == "/portal/login/?next=/portal/"


def test_signing_in_opens_the_portal_for_that_user(client, make_user):
    user = make_user()
    response = sign_in(client, user)
    assert response.status_code == 302
    assert response["Location"] == "/portal/"
    page = client.get("/portal/")
    assert page.status_code == 200
    config = page_config(page)
    assert config["user"] == {"id": user.id, "username": user.username}
    assert config["urls"]["areas"] == "/api/v1/service-areas/"
    assert config["csrfToken"]


def test_wrong_passwords_in_the_portal_delay_that_address_in_the_api_too_and_no_other(client, make_user, settings, api):
    settings.LOGIN_FAILURES_BEFORE_BACKOFF = 2
    user = make_user()
    for _ in range(2):
        refused = sign_in(client, user, password="wrong", REMOTE_ADDR="10.0.0.1")
        assert refused.status_code == 200
        assert "Please enter a correct username and password" in refused.content.decode()
    delayed = sign_in(client, user, REMOTE_ADDR="10.0.0.1")
    assert "Too many failed sign-in attempts" in delayed.content.decode()
    assert "_auth_user_id" not in client.session
    credentials = {"username": user.username, "password": PASSWORD}
    assert api.post("/api/v1/auth/token/", credentials, format="json", REMOTE_ADDR="10.0.0.1").status_code == 429
    assert sign_in(client, user, REMOTE_ADDR="10.0.0.2").status_code == 302


def test_signing_out_ends_the_session(client, make_user):
    sign_in(client, make_user())
    response = client.post("/portal/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/portal/login/"
    assert client.get("/portal/").status_code == 302


def test_session_writes_to_the_api_need_the_csrf_header(make_user):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(make_user())
    token = page_config(browser.get("/portal/"))["csrfToken"]
    provider = {"name": "Acme", "email": "ops@acme.example", "phone_number": "+12125550123", "language": "en"}
    provider["currency"] = "USD"

    forged = browser.post("/api/v1/providers/", provider, content_type="application/json")
    assert forged.status_code == 403
    assert "CSRF" in forged.json()["detail"]

    created = browser.post("/api/v1/providers/", provider, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert created.status_code == 201
    assert created.json()["approved"] is False


def test_api_tokens_still_work_without_csrf(client_for, make_user):
    api = client_for(make_user())
    api.enforce_csrf_checks = True
    provider = {"name": "Acme", "email": "ops@acme.example", "phone_number": "+12125550123", "language": "en"}
    assert api.post("/api/v1/providers/", {**provider, "currency": "USD"}, format="json").status_code == 201


def test_the_owners_lookup_shows_their_unapproved_areas_with_the_session(client, make_provider, make_area, api):
    provider = make_provider(approved=False)
    area = make_area(square(10.0, 50.0, 0.2), provider=provider)
    client.force_login(provider.owner)

    mine = client.get("/portal/lookup/", {"lat": 50.0, "lng": 10.0, "include_mine": "true"})
    assert mine.status_code == 200
    assert [result["id"] for result in mine.json()["results"]] == [area.id]
    public = api.get("/api/v1/lookup/", {"lat": 50.0, "lng": 10.0})
    assert public.json()["results"] == []


def test_the_owners_lookup_needs_a_session(client, db):
    response = client.get("/portal/lookup/", {"lat": 50.0, "lng": 10.0, "include_mine": "true"})
    assert response.status_code == 401


def test_the_page_loads_only_local_assets_which_exist(client, make_user):
    client.force_login(make_user())
    page = client.get("/portal/").content.decode()
    assets = SCRIPT_OR_STYLE.findall(page)
    assert any(url.endswith("leaflet-geoman.min.js") for url in assets)
    for url in assets:
        if url.startswith("data:"):
            continue
        assert url.startswith("/static/"), url
        assert finders.find(url.removeprefix("/static/")), f"{url} is not a static file (run npm ci)"
    outlines = page_config(client.get("/portal/"))["basemap"]["outlines"]
    assert finders.find(outlines.removeprefix("/static/"))


def test_the_tile_layer_comes_from_settings_and_can_be_switched_off(client, make_user, settings):
    client.force_login(make_user())
    settings.PORTAL_TILE_URL = "https://tiles.example/{z}/{x}/{y}.png"
    settings.PORTAL_TILE_ATTRIBUTION = "Example tiles"
    basemap = page_config(client.get("/portal/"))["basemap"]
    assert basemap["tileUrl"] == "https://tiles.example/{z}/{x}/{y}.png"
    assert basemap["attribution"] == "Example tiles"
    settings.PORTAL_TILE_URL = ""
    assert page_config(client.get("/portal/"))["basemap"]["tileUrl"] == ""


# A static import or re-export of an ES module, as ManifestStaticFilesStorage rewrites them to hashed names (with
# support_js_module_import_aggregation): one statement, ending in a semicolon.
MODULE_IMPORT = re.compile(r"""^(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["'];""", re.MULTILINE | re.DOTALL)


def test_the_page_modules_import_only_each_other_which_exist_and_no_module_imports_itself_back(client, make_user):
    """No bundler: a module's imports are files beside it, served by this site; and the graph has no cycle (a
    module imported back cannot be fingerprinted by the manifest storage, whose hashes include the imports')."""
    client.force_login(make_user())
    page = client.get("/portal/").content.decode()
    entry = re.search(r'<script type="module" src="/static/([^"]+)"', page).group(1)
    imports = {}
    pending = [entry, "portal/admin-area-map.js"]
    while pending:
        name = pending.pop()
        if name in imports:
            continue
        path = finders.find(name)
        assert path, f"{name} is not a static file"
        source = Path(path).read_text()
        assert not re.search(r"^\s*import\s*\(", source, re.MULTILINE), f"{name}: no dynamic import"
        specifiers = MODULE_IMPORT.findall(source)
        assert len(specifiers) == len(re.findall(r"^import\b", source, re.MULTILINE)), f"{name}: an import unread"
        assert all(re.fullmatch(r"\./[a-z-]+\.js", spec) for spec in specifiers), (name, specifiers)
        imports[name] = [f"portal/{spec.removeprefix('./')}" for spec in specifiers]
        pending.extend(imports[name])
    assert {"portal/api.js", "portal/map.js", "portal/draw.js", "portal/basemap.js"} <= imports.keys()

    def below(name, chain):
        for imported in imports[name]:
            assert imported not in chain, f"an import cycle: {' -> '.join([*chain, imported])}"
            below(imported, [*chain, imported])

    below(entry, [entry])
    below("portal/admin-area-map.js", ["portal/admin-area-map.js"])


@pytest.fixture
def superuser_client(client, make_user):
    user = make_user(staff=True)
    user.is_superuser = True
    user.save()
    client.force_login(user)
    return client


def test_the_admin_shows_an_area_on_a_map_served_locally(superuser_client, make_area):
    area = make_area(square(10.0, 50.0, 0.2))
    page = superuser_client.get(f"/admin/areas/servicearea/{area.id}/change/").content.decode()
    assert 'class="admin-area-map"' in page
    geometry = re.search(rf'<script id="area-geometry-{area.id}" type="application/json">(.*?)</script>', page)
    assert json.loads(geometry.group(1))["type"] == "MultiPolygon"
    scripts = re.findall(r'<script src="([^"]+)"', page)
    assert "/static/vendor/leaflet/leaflet.js" in scripts
    assert all(src.startswith("/") and not src.startswith("//") for src in scripts), scripts  # nothing from a CDN


def test_the_admin_area_form_still_saves_through_the_services(superuser_client, make_area):
    area = make_area(square(10.0, 50.0, 0.2), price="10.00")
    response = superuser_client.post(
        f"/admin/areas/servicearea/{area.id}/change/",
        {"provider": area.provider_id, "name": area.name, "price": "7.25", "_save": "Save"},
    )
    assert response.status_code == 302
    area.refresh_from_db()
    assert str(area.price) == "7.25"
    assert area.geometry.num_coords == 5  # untouched: the map is read-only


def test_a_feature_posted_with_the_session_is_validated_like_any_other(client, make_provider):
    provider = make_provider(approved=False)
    client.force_login(provider.owner)
    bow_tie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    response = client.post(
        "/api/v1/service-areas/",
        feature(bow_tie, provider=provider.id, name="Bow tie", price="5.00"),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["geometry"] == ["Invalid geometry: Self-intersection[0.5 0.5]."]


def test_portal_pages_carry_a_strict_content_security_policy(client, make_user, settings):
    page = client.get("/portal/login/")
    directives = dict(d.strip().split(" ", 1) for d in page["Content-Security-Policy"].split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"  # no inline script, no eval
    assert directives["style-src"] == "'self'"
    assert directives["img-src"] == "'self' data: https://tile.openstreetmap.org"  # PORTAL_TILE_URL's server
    assert (directives["object-src"], directives["frame-ancestors"]) == ("'none'", "'none'")
    sign_in(client, make_user())
    assert client.get("/portal/")["Content-Security-Policy"] == page["Content-Security-Policy"]


def test_the_policy_allows_the_tile_server_of_any_tile_url():
    from project.settings.base import _tile_origins

    assert _tile_origins("https://{s}.tile.example.org/{z}/{x}/{y}{r}.png") == ["https://*.tile.example.org"]
    assert _tile_origins("http://127.0.0.1:8080/tiles/{z}/{x}/{y}.png") == ["http://127.0.0.1:8080"]
    assert _tile_origins("") == []
