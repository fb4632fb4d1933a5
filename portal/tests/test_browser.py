"""The provider portal in a real browser (headless Chromium): what a provider does with the mouse and the keyboard,
and what they then read on the screen. The map shows the shipped country outlines only (no tiles here).

`PORTAL_SCREENSHOT_DIR=docs` saves the screenshots of the README (docs/portal-*.png)."""

import json
import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from areas.models import ServiceArea
from areas.services import area_update
from hexindex.build import index_areas
from portal.tests.browser import PASSWORD
from providers.fields import PHONE_NOT_INTERNATIONAL
from providers.models import Provider
from providers.services import provider_update
from testing.geo import feature, polygon, square

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BERLIN = (52.5, 13.4)
NEAR = 0.003  # degrees: a few pixels at the zoom levels used here


def panel(page, name):
    return page.get_by_role("tabpanel", name=name)


def rings_of(area) -> list[list[tuple[float, float]]]:
    """The stored area's rings, as (lat, lng) corners without the closing repeat."""
    return [[(lat, lng) for lng, lat in ring[:-1]] for part in area.geometry.coords for ring in part]


def same_corners(stored, drawn) -> bool:
    return len(stored) == len(drawn) and all(
        any(abs(lat - a) < NEAR and abs(lng - b) < NEAR for a, b in stored) for lat, lng in drawn
    )


def test_a_provider_draws_an_area_sees_it_indexed_and_finds_it_by_clicking(portal, make_provider, index_by_hand):
    make_provider(owner=portal.user, name="Acme Shuttles", currency="EUR", approved=False)
    page = portal.sign_in()
    areas = panel(page, "Areas")
    portal.look_at(*BERLIN, 11)

    areas.get_by_role("button", name="Draw a new area").click()
    corners = [(52.55, 13.3), (52.55, 13.5), (52.45, 13.5), (52.45, 13.3)]
    portal.draw(corners)
    areas.get_by_label("Name").fill("Berlin centre")
    areas.get_by_label("Price").fill("35.50")
    areas.get_by_role("button", name="Save").click()

    row = areas.get_by_role("row").filter(has_text="Berlin centre")
    expect(row).to_contain_text("35.50 EUR")
    expect(row).to_contain_text("pending")
    area = ServiceArea.objects.get(name="Berlin centre")
    assert same_corners(rings_of(area)[0], corners)

    index_areas([area.id])  # the worker's job
    expect(row).to_contain_text("ready")  # the page polled: no reload

    lookup = panel(page, "Lookup")
    portal.click_map(*BERLIN)
    expect(lookup).to_contain_text("no area in public lookups")
    expect(lookup).to_contain_text("not in public lookups: tick the box above")
    lookup.get_by_label("Include my unapproved providers").check()
    expect(lookup.get_by_role("listitem")).to_have_text(re.compile(r"Berlin centre — Acme Shuttles · 35\.50 EUR"))
    expect(lookup.get_by_role("listitem")).to_contain_text("not public yet")
    expect(lookup).not_to_contain_text("null")
    portal.screenshot("portal-map.png")

    portal.click_map(52.6, 13.4)  # outside
    expect(lookup).to_contain_text("no area.")


def test_an_area_with_a_hole_and_a_second_part_is_drawn_and_saved(portal, make_provider):
    make_provider(owner=portal.user)
    page = portal.sign_in()
    areas = panel(page, "Areas")
    portal.look_at(52.5, 13.5, 10)

    areas.get_by_role("button", name="Draw a new area").click()
    outer = [(52.6, 13.2), (52.6, 13.6), (52.4, 13.6), (52.4, 13.2)]
    portal.draw(outer)
    areas.get_by_role("button", name="Add a hole").click()
    hole = [(52.55, 13.35), (52.55, 13.45), (52.45, 13.45), (52.45, 13.35)]
    portal.draw(hole)
    areas.get_by_role("button", name="Add a part").click()
    part = [(52.6, 13.7), (52.6, 13.8), (52.5, 13.8), (52.5, 13.7)]
    portal.draw(part)
    expect(areas).to_contain_text("2 parts, 1 hole, 12 corners")
    areas.get_by_label("Name").fill("Ring and island")
    areas.get_by_label("Price").fill("12")
    areas.get_by_role("button", name="Save").click()

    expect(areas.get_by_role("row").filter(has_text="Ring and island")).to_contain_text("12.00")
    area = ServiceArea.objects.get(name="Ring and island")
    assert len(area.geometry) == 2
    (first_outer, first_hole), (second_outer,) = area.geometry.coords
    assert same_corners([(lat, lng) for lng, lat in first_outer[:-1]], outer)
    assert same_corners([(lat, lng) for lng, lat in first_hole[:-1]], hole)
    assert same_corners([(lat, lng) for lng, lat in second_outer[:-1]], part)


def test_a_bow_tie_is_refused_and_marked_where_it_crosses_itself(portal, make_provider):
    make_provider(owner=portal.user)
    page = portal.sign_in()
    areas = panel(page, "Areas")
    portal.look_at(48.85, 2.35, 11)

    areas.get_by_role("button", name="Draw a new area").click()
    portal.draw([(48.9, 2.25), (48.8, 2.45), (48.9, 2.45), (48.8, 2.25)])  # its edges cross at (48.85, 2.35)
    areas.get_by_label("Name").fill("Bow tie")
    areas.get_by_label("Price").fill("10.00")
    portal.expect_refusal(400)
    areas.get_by_role("button", name="Save").click()

    expect(areas).to_contain_text("Invalid geometry: Self-intersection[")
    marker = page.get_by_text("Self-intersection", exact=True)
    expect(marker).to_be_visible()
    box = marker.bounding_box()
    x, y = portal.on_screen(48.85, 2.35)
    assert abs(box["x"] + box["width"] / 2 - x) < 6  # the label stands right above the crossing
    assert 0 < y - (box["y"] + box["height"]) < 30
    assert not ServiceArea.objects.exists()
    portal.screenshot("portal-draw.png")


def test_a_hole_outside_the_area_is_refused_moving_is_toggled_and_escape_abandons_a_new_area(portal, make_provider):
    make_provider(owner=portal.user)
    page = portal.sign_in()
    areas = panel(page, "Areas")
    portal.look_at(52.5, 13.4, 10)

    areas.get_by_role("button", name="Draw a new area").click()
    portal.draw([(52.6, 13.2), (52.6, 13.4), (52.4, 13.4), (52.4, 13.2)])
    expect(areas.get_by_label("Name")).to_be_focused()  # the shape is there: now its name
    areas.get_by_role("button", name="Add a hole").click()
    portal.draw([(52.55, 13.5), (52.55, 13.6), (52.45, 13.6), (52.45, 13.5)])  # beside the area, not in it
    expect(areas).to_contain_text("A hole must lie inside a part of the area")
    expect(areas).to_contain_text("1 part, 0 holes, 4 corners")

    areas.get_by_role("button", name="Move").click()
    expect(areas.get_by_role("button", name="Move", pressed=True)).to_be_visible()
    expect(areas).to_contain_text("Drag the area to where it belongs")
    areas.get_by_role("button", name="Move").click()
    expect(areas.get_by_role("button", name="Move", pressed=False)).to_be_visible()
    expect(areas).to_contain_text("Drag a corner to move it")
    areas.get_by_role("button", name="Cancel").click()
    expect(areas.get_by_role("heading", name="New area")).to_be_hidden()

    areas.get_by_role("button", name="Draw a new area").click()
    expect(areas.get_by_role("heading", name="New area")).to_be_visible()
    page.keyboard.press("Escape")  # before any corner: the new area is abandoned
    expect(areas.get_by_role("heading", name="New area")).to_be_hidden()
    expect(areas.get_by_role("button", name="Draw a new area")).to_be_enabled()
    portal.click_map(52.5, 13.3)  # the map answers clicks with lookups again
    expect(panel(page, "Lookup")).to_contain_text("no area")
    assert not ServiceArea.objects.exists()


def test_a_provider_is_renamed_despite_a_stale_save_shows_its_areas_and_one_opens_from_the_lookup(
    portal, make_provider, make_area
):
    acme = make_provider(owner=portal.user, name="Acme", currency="EUR", approved=False)  # renamed without review
    other = make_provider(owner=portal.user, name="Other")
    make_area(square(13.4, 52.5, 0.05), provider=acme, name="Mitte", price="20.00")
    make_area(square(2.35, 48.85, 0.05), provider=other, name="Paris", price="30.00")
    page = portal.sign_in()

    page.get_by_role("tab", name="Areas").focus()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="Providers")).to_be_focused()
    providers = panel(page, "Providers")
    providers.get_by_role("listitem").filter(has_text="Acme").get_by_role("button", name="Edit").click()
    expect(providers.get_by_role("heading", name="Edit Acme")).to_be_visible()
    provider_update(provider=Provider.objects.get(pk=acme.pk), data={"email": "ops@acme.example"})  # someone else
    providers.get_by_label("Name").fill("Acme Shuttles")
    portal.expect_refusal(412)
    providers.get_by_role("button", name="Save").click()
    expect(providers.get_by_role("alert")).to_contain_text("changed elsewhere")
    providers.get_by_role("button", name="Cancel").click()
    providers.get_by_role("listitem").filter(has_text="Acme").get_by_role("button", name="Edit").click()
    expect(providers.get_by_label("Email")).to_have_value("ops@acme.example")
    providers.get_by_label("Name").fill("Acme Shuttles")
    providers.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Saved Acme Shuttles. It is not approved yet")
    assert Provider.objects.get(pk=acme.pk).name == "Acme Shuttles"

    acme_item = providers.get_by_role("listitem").filter(has_text="Acme Shuttles")
    acme_item.get_by_role("button", name="Show its areas").click()
    areas = panel(page, "Areas")
    expect(areas.get_by_role("row").filter(has_text="Mitte")).to_contain_text("Acme Shuttles")
    expect(areas.get_by_role("row").filter(has_text="Paris")).to_have_count(0)

    lookup = panel(page, "Lookup")
    portal.click_map(52.5, 13.4)  # in the middle of the map: the areas shown are Acme's
    lookup.get_by_label("Include my unapproved providers").check()
    found = lookup.get_by_role("listitem").filter(has_text="Mitte")
    expect(found).to_contain_text("yours")
    found.get_by_role("button", name="Edit").click()
    expect(areas.get_by_role("heading", name="Edit Mitte")).to_be_visible()
    expect(areas.get_by_label("Price")).to_have_value("20.00")


def test_an_uploaded_file_is_imported_feature_by_feature_and_downloaded_again(portal, make_provider, tmp_path):
    make_provider(owner=portal.user, currency="EUR")
    bow_tie = polygon([(13.2, 52.4), (13.3, 52.5), (13.3, 52.4), (13.2, 52.5)])
    upload = tmp_path / "zones.geojson"
    upload.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    feature(square(13.4, 52.5, 0.05), name="Mitte", price="20.00"),
                    feature(bow_tie, name="Crossed", price="5.00"),
                    feature(square(13.6, 52.45, 0.05), name="Köpenick", price="25.00"),
                ],
            }
        )
    )
    page = portal.sign_in()
    areas = panel(page, "Areas")

    areas.get_by_label("FeatureCollection file").set_input_files(upload)
    portal.expect_refusal(400)
    areas.get_by_role("button", name="Import", exact=True).click()

    expect(areas).to_contain_text("Imported 2 of 3 features; 1 refused.")
    report = areas.get_by_role("listitem")
    expect(report.filter(has_text="Feature 1 “Mitte”")).to_contain_text("imported")
    expect(report.filter(has_text="Feature 2 “Crossed”")).to_contain_text(
        "refused — geometry: Invalid geometry: Self-intersection[13.25"
    )
    expect(report.filter(has_text="Feature 3 “Köpenick”")).to_contain_text("imported")
    expect(areas.get_by_role("row").filter(has_text="Köpenick")).to_contain_text("25.00 EUR")
    assert sorted(ServiceArea.objects.values_list("name", flat=True)) == ["Köpenick", "Mitte"]

    with page.expect_download() as download:
        areas.get_by_role("button", name="Download my areas").click()
    collection = json.loads(download.value.path().read_text())
    assert collection["type"] == "FeatureCollection"
    assert sorted(item["properties"]["name"] for item in collection["features"]) == ["Köpenick", "Mitte"]
    assert all(item["geometry"]["type"] == "MultiPolygon" for item in collection["features"])


def test_editing_an_area_a_stale_save_is_refused_then_corners_and_position_change_and_it_is_deleted(
    portal, make_provider, make_area
):
    provider = make_provider(owner=portal.user, currency="EUR")
    area = make_area(square(13.4, 52.5, 0.05), provider=provider, name="Mitte", price="20.00")
    page = portal.sign_in()
    areas = panel(page, "Areas")

    areas.get_by_role("button", name="Mitte").click()
    expect(areas.get_by_role("heading", name="Edit Mitte")).to_be_visible()
    area_update(area=ServiceArea.objects.get(pk=area.id), data={"price": Decimal("22.00")})  # someone else
    areas.get_by_label("Price").fill("19.00")
    portal.expect_refusal(412)
    areas.get_by_role("button", name="Save").click()
    expect(areas.get_by_role("alert").filter(has_text="changed elsewhere")).to_be_visible()
    areas.get_by_role("button", name="Reload the area").click()
    expect(areas.get_by_label("Price")).to_have_value("22.00")

    portal.drag((52.55, 13.45), (52.57, 13.47))  # the north-east corner, outwards
    expect(areas).to_contain_text("(changed)")
    areas.get_by_role("button", name="Move").click()
    portal.drag((52.5, 13.4), (52.5, 13.45))  # the whole area, east
    areas.get_by_label("Price").fill("19.00")
    areas.get_by_role("button", name="Save").click()
    expect(areas.get_by_role("row").filter(has_text="Mitte")).to_contain_text("19.00 EUR")

    area.refresh_from_db()
    assert area.price == Decimal("19.00")
    (ring,) = rings_of(area)
    shifted = [(52.45, 13.40), (52.45, 13.50), (52.57, 13.52), (52.55, 13.40)]
    assert same_corners(ring, shifted), ring

    areas.get_by_role("button", name="Mitte").click()
    areas.get_by_role("button", name="Delete…").click()
    areas.get_by_role("button", name="Delete", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Deleted “Mitte”")
    expect(areas.get_by_role("row").filter(has_text="Mitte")).to_have_count(0)
    assert not ServiceArea.objects.exists()


def test_on_a_phone_a_provider_is_created_with_the_keyboard_and_errors_show_at_the_field(portal):
    page = portal.page
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{portal.base_url}/portal/")
    page.get_by_label("Username").focus()
    page.keyboard.type(portal.user.username)
    page.keyboard.press("Tab")
    page.keyboard.type("a long test passphrase")
    page.keyboard.press("Enter")

    providers = panel(page, "Providers")  # a new user starts there
    expect(providers.get_by_role("button", name="New provider")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the phone
    assert page.get_by_role("application").bounding_box()["width"] > 350
    portal.screenshot("portal-phone.png")

    providers.get_by_role("button", name="New provider").focus()
    page.keyboard.press("Enter")
    expect(providers.get_by_label("Name")).to_be_focused()
    page.keyboard.type("Acme Shuttles")
    page.keyboard.press("Tab")
    page.keyboard.type("dispatch@acme.example")
    page.keyboard.press("Tab")
    page.keyboard.type("212 555 0123")  # no country code
    for _ in range(3):  # language, currency, Save
        page.keyboard.press("Tab")
    portal.expect_refusal(400)
    page.keyboard.press("Enter")

    phone = providers.get_by_label("Phone, with country code")
    expect(phone).to_be_focused()
    expect(phone).to_have_accessible_description(PHONE_NOT_INTERNATIONAL)
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type("+1 212 555 0123")
    page.keyboard.press("Enter")

    expect(providers.get_by_role("listitem").filter(has_text="Acme Shuttles")).to_contain_text("Not approved yet")
    expect(providers).to_contain_text("not in public lookups until staff approve it")
    assert Provider.objects.get(owner=portal.user).phone_number == "+12125550123"


def test_the_admin_area_map_and_the_api_docs_work_under_the_content_security_policy(portal, make_area):
    """The Content-Security-Policy blocks anything inline or from elsewhere, and the browser logs each block as an
    error (which fails this test): these pages must need nothing of the kind."""
    user = portal.user
    user.is_staff = user.is_superuser = True
    user.save()
    area = make_area(square(13.4, 52.5, 0.1), name="Berlin centre")
    page = portal.page
    portal.expect_refusal(404)  # the admin's pages ask for /favicon.ico
    page.goto(f"{portal.base_url}/admin/login/?next=/admin/areas/servicearea/{area.id}/change/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("img", name=re.compile(r"^Map of this service area"))).to_be_visible()
    expect(page.locator(".admin-area-map path.leaflet-interactive")).to_have_count(1)  # the area, drawn by Leaflet

    page.goto(f"{portal.base_url}/api/docs/")
    expect(page.get_by_role("heading", name=re.compile("Service Area Lookup API"))).to_be_visible()
    expect(page.get_by_text("/api/v1/lookup/", exact=True)).to_be_visible()
