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
    assert "Demo API token:" in capsys.readouterr().out
