"""manage.py import_areas: GeoJSON files in, bad features reported by line, good ones imported and indexed."""

import io
import json
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from areas.models import ServiceArea
from hexindex.models import indexed
from testing.geo import feature, square


def run(path, *args):
    out, err = StringIO(), StringIO()
    call_command("import_areas", str(path), "--no-progress", "--workers", "1", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def provider(make_provider):
    return make_provider(name="Acme")


def test_newline_delimited_features_with_bad_lines_reported(tmp_path, provider):
    lines = [
        feature(square(10, 50, 0.1), provider=provider.id, name="good one", price="10"),
        feature(
            {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]},
            provider=provider.id,
            name="bowtie",
            price="1",
        ),
        feature(square(11, 50, 0.1), provider=provider.id, name="negative", price="-3"),
        feature(square(12, 50, 0.1), provider=999999, name="unknown provider", price="1"),
        feature(square(13, 50, 0.1), provider=provider.id, name="good two", price="12.5"),
    ]
    path = tmp_path / "zones.ndjson"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n{not json\n")

    out, err = run(path)

    assert "Imported 2 service areas" in out and "rejected 4" in out
    assert f"{path}:2: geometry: Invalid geometry: Self-intersection[0.5 0.5]" in err
    assert f"{path}:3: price:" in err
    assert f"{path}:4: provider:" in err
    assert f"{path}:6: not JSON" in err
    assert sorted(ServiceArea.objects.values_list("name", flat=True)) == ["good one", "good two"]
    assert not ServiceArea.objects.exclude(indexed()).exists()  # indexed straight away
    assert "Indexed 2 areas" in out


def test_feature_collection(tmp_path, provider, api):
    collection = {
        "type": "FeatureCollection",
        "features": [
            feature(square(10, 50, 0.1), provider=provider.id, name="a", price="1"),
            feature(square(20, 50, 0.1), provider=provider.id, name="b", price="x"),
        ],
    }
    path = tmp_path / "zones.geojson"
    path.write_text(json.dumps(collection, indent=2))
    out, err = run(path, "--no-index")
    assert "Imported 1 service areas" in out
    assert "feature 2: price:" in err
    assert ServiceArea.objects.exclude(indexed()).count() == 1  # left to the worker
    assert api.get("/api/v1/lookup/", {"lat": 50, "lng": 10}).json()["count"] == 1  # and found meanwhile


def test_owner_may_only_import_their_own_providers(tmp_path, provider, make_provider):
    other = make_provider()
    path = tmp_path / "zones.ndjson"
    path.write_text(
        json.dumps(feature(square(10, 50, 0.1), provider=provider.id, name="mine", price="1"))
        + "\n"
        + json.dumps(feature(square(10, 50, 0.1), provider=other.id, name="theirs", price="1"))
        + "\n"
    )
    out, err = run(path, "--owner", provider.owner.username, "--no-index")
    assert "Imported 1 service areas" in out
    assert ":2: provider:" in err
    assert list(ServiceArea.objects.values_list("name", flat=True)) == ["mine"]


def test_standard_input(monkeypatch, provider):
    body = json.dumps(feature(square(10, 50, 0.1), provider=provider.id, name="piped", price="1")) + "\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(body))
    out, _ = run("-", "--no-index")
    assert "Imported 1 service areas from stdin" in out


def test_not_geojson_is_a_clear_error(tmp_path, db):
    path = tmp_path / "zones.csv"
    path.write_text("lat,lng\n1,2\n")
    with pytest.raises(CommandError, match="neither a GeoJSON FeatureCollection nor one Feature per line"):
        run(path)
    with pytest.raises(CommandError, match="cannot read"):
        run(tmp_path / "missing.geojson")


def _three_providers(tmp_path, make_provider, make_area):
    """A provider new to the service, one whose approval staff revoked (it keeps its areas) and an approved one,
    and a file naming all three."""
    new = make_provider(name="Newcomer", approved=False)
    revoked = make_provider(name="Revoked", approved=False)
    make_area(square(30, 10, 0.1), provider=revoked)
    approved = make_provider(name="Approved")
    path = tmp_path / "areas.ndjson"
    path.write_text(
        "\n".join(
            json.dumps(feature(square(30 + n, 20, 0.1), provider=p.id, name=f"area {n}", price="5"))
            for n, p in enumerate([new, new, revoked, approved])
        )
    )
    return new, revoked, approved, path


def test_approve_approves_only_providers_that_held_no_areas_and_says_which(tmp_path, make_provider, make_area):
    new, revoked, approved, path = _three_providers(tmp_path, make_provider, make_area)
    out, _ = run(path, "--approve", "--no-index")
    assert ServiceArea.objects.filter(provider__in=[new, revoked, approved]).count() == 5
    for provider in (new, revoked, approved):
        provider.refresh_from_db()
    assert (new.approved, revoked.approved, approved.approved) == (True, False, True)
    assert f"Approved 1 providers: {new.id} 'Newcomer'." in out
    assert "Left unapproved 1 providers that held areas before this import (--approve-existing approves them): " in out
    assert f"{revoked.id} 'Revoked'" in out


def test_approve_existing_approves_providers_that_held_areas_too(tmp_path, make_provider, make_area):
    new, revoked, _, path = _three_providers(tmp_path, make_provider, make_area)
    out, _ = run(path, "--approve", "--approve-existing", "--no-index")
    revoked.refresh_from_db()
    assert revoked.approved
    assert f"Approved 2 providers: {new.id} 'Newcomer', {revoked.id} 'Revoked'." in out


def test_approve_existing_alone_is_refused(tmp_path, provider):
    path = tmp_path / "areas.ndjson"
    path.write_text(json.dumps(feature(square(10, 50, 0.1), provider=provider.id, name="a", price="1")))
    with pytest.raises(CommandError, match="--approve-existing goes with --approve"):
        run(path, "--approve-existing")
    assert not ServiceArea.objects.exists()
