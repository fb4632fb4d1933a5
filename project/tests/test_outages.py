"""A PostgreSQL outage (or a query over the statement timeout) is a JSON 503 naming it on every path, never a
500 or an HTML page; and the service answers again as soon as the database does."""

import pytest
from django.db import OperationalError, connection

from testing.geo import square

LOOKUP = "/api/v1/lookup/"


def _refuse(execute, sql, params, many, context):
    raise OperationalError('connection to server at "db.internal" (10.0.0.5), port 5432 failed: Connection refused')


def assert_database_503(response):
    assert response.status_code == 503, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert (body["service"], body["code"]) == ("postgres", "database_unavailable")
    assert "db.internal" not in response.content.decode()
    assert int(response["Retry-After"]) > 0


def test_a_lookup_that_needs_the_database_is_a_503_naming_it(api, db):
    # No index in Redis at all: the lookup goes to PostGIS, which is down.
    from hexindex import redis_index

    redis_index.client().delete(redis_index.GEN_KEY)
    with connection.execute_wrapper(_refuse):
        assert_database_503(api.get(LOOKUP, {"lat": 40.6413, "lng": -73.7781}))


def test_a_lookup_answered_by_redis_alone_still_answers(api, make_area, index_all):
    area = make_area(square(-73.78, 40.64, 0.5))
    index_all()
    api.get(LOOKUP, {"lat": 40.6413, "lng": -73.7781})  # warms this process's cache of results
    with connection.execute_wrapper(_refuse):
        response = api.get(LOOKUP, {"lat": 40.6413, "lng": -73.7781})
    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == [area.id]


@pytest.mark.parametrize("debug", [False, True])
def test_api_endpoints_are_a_json_503_even_with_debug_on(client_for, make_user, settings, debug):
    settings.DEBUG = debug
    client = client_for(make_user())
    with connection.execute_wrapper(_refuse):
        assert_database_503(client.get("/api/v1/providers/"))
        assert_database_503(client.get("/api/v1/service-areas/"))
        assert_database_503(client.post("/api/v1/auth/token/", {"username": "a", "password": "b"}, format="json"))


def test_the_admin_is_a_json_503_too(client, db, make_user, settings):
    settings.DEBUG = True
    client.force_login(make_user(staff=True))
    with connection.execute_wrapper(_refuse):
        assert_database_503(client.get("/admin/providers/provider/"))


def test_a_write_during_an_outage_changes_nothing_and_works_after(client_for, make_user, make_provider):
    owner = make_user()
    provider = make_provider(owner=owner)
    client = client_for(owner)
    feature = {"type": "Feature", "geometry": square(1, 2, 0.1), "properties": {"provider": provider.id, "name": "a"}}
    feature["properties"]["price"] = "3.00"
    with connection.execute_wrapper(_refuse):
        assert_database_503(client.post("/api/v1/service-areas/", feature, format="json"))
    assert client.post("/api/v1/service-areas/", feature, format="json").status_code == 201


def test_any_other_unhandled_error_is_json_not_html(client, db, settings, monkeypatch):
    from project import errors

    response = errors.server_error(None)
    assert response.status_code == 500 and response["Content-Type"] == "application/json"


def test_a_query_over_the_statement_timeout_is_a_503(client_for, make_user):
    client = client_for(make_user())
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 50")

    def stuck(execute, sql, params, many, context):
        return execute("SELECT pg_sleep(1)", None, False, context)

    with connection.execute_wrapper(stuck):
        assert_database_503(client.get("/api/v1/providers/"))


def test_web_processes_get_a_statement_timeout(monkeypatch):
    import importlib
    import os

    monkeypatch.delenv("DB_STATEMENT_TIMEOUT_MS", raising=False)
    import project.wsgi

    importlib.reload(project.wsgi)
    assert int(os.environ["DB_STATEMENT_TIMEOUT_MS"]) > 0
