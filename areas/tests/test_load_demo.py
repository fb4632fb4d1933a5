"""`make run` loads the demo data: it must pass every check a user's data passes (quotas, span), twice."""

from django.core.management import call_command

from areas.models import ServiceArea
from providers.models import Provider


def test_the_demo_data_loads_twice_and_is_public(db, settings, capsys):
    settings.AREA_MAX_SPAN_KM = 2_000.0  # production's limit, not the test settings' relaxed one
    call_command("load_demo")
    first = sorted(ServiceArea.objects.values_list("name", "price"))
    call_command("load_demo")
    assert sorted(ServiceArea.objects.values_list("name", "price")) == first and first
    assert not Provider.objects.filter(approved=False).exists()
    out = capsys.readouterr().out
    assert "Demo API token:" in out and "Demo staff token" in out and "Demo partner API key" in out


def test_the_printed_staff_token_and_partner_key_work(db, api, capsys, index_all):
    call_command("load_demo")
    index_all()
    printed = dict(line.rsplit(": ", 1) for line in capsys.readouterr().out.splitlines() if ": " in line)
    staff = next(value for label, value in printed.items() if label.startswith("Demo staff token"))
    key = next(value for label, value in printed.items() if label.startswith("Demo partner API key"))
    api.credentials(HTTP_AUTHORIZATION=f"Token {staff}")
    assert api.get("/api/v1/partners/").status_code == 200  # staff only
    api.credentials()
    answer = api.get("/api/v1/lookup/", {"lat": 40.6413, "lng": -73.7781}, HTTP_X_API_KEY=key)
    assert answer.status_code == 200 and answer["X-RateLimit-Limit"] == "600"
