"""manage.py reindex: bulk builds that resume, and the Redis rebuild."""

from io import StringIO

from django.core.management import call_command

from areas.models import ServiceArea
from hexindex.models import indexed
from testing.geo import square
from testing.index import is_indexed, live_at


def run(*args) -> str:
    out = StringIO()
    call_command("reindex", *args, "--no-progress", "--workers", "2", stdout=out, stderr=StringIO())
    return out.getvalue()


def test_reindex_builds_what_is_pending_and_reports(make_area):
    areas = [make_area(square(10.0 + i, 50.0, 0.3)) for i in range(5)]
    output = run()
    assert "Indexed 5 areas, 5 live (0 skipped, 0 failed)" in output
    assert "cells (" in output and "Cell table:" in output and "Redis:" in output
    assert not ServiceArea.objects.exclude(indexed()).exists()
    assert areas[2].id in live_at(50.0, 12.0)


def test_reindex_resumes_and_can_be_limited_to_ids(make_area):
    first, second = make_area(square(10.0, 50.0, 0.3)), make_area(square(12.0, 50.0, 0.3))
    assert "Indexed 1 areas" in run(str(first.id))
    assert "Indexed 1 areas" in run()  # only what is left
    assert "Nothing to index" in run()
    assert "Indexed 2 areas" in run("--force")
    assert is_indexed(second)


def test_reindex_redis_only_restores_an_empty_redis(make_area, index_redis):
    area = make_area(square(10.0, 50.0, 0.3))
    run()
    index_redis.flushdb()
    output = run("--redis-only")
    assert "is live" in output
    assert live_at(50.0, 10.0) == {area.id}
