"""A PostgreSQL outage (or a query over the statement timeout) is a JSON 503 naming it on every path, never a
500 or an HTML page; and the service answers again as soon as the database does."""

import psycopg2
import pytest
from django.db import OperationalError, connection

from testing.geo import square
from testing.index import drop_index
from testing.net import closed_port

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

    drop_index(redis_index.client())
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


@pytest.mark.django_db(transaction=True)  # the test's own connection is closed and reopened: no test transaction
def test_a_database_that_refuses_connections_is_a_503_and_the_service_answers_when_it_is_back(
    api, client_for, make_user, make_area
):
    """A real refused connection (the database's address, with nothing listening there), not a wrapper: every path
    answers the JSON 503 without naming the address, and the next requests after it is back are answered."""
    from hexindex import redis_index

    client = client_for(make_user())
    area = make_area(square(-73.78, 40.64, 0.5))
    drop_index(redis_index.client())  # no index in Redis: the lookup needs PostGIS
    real_port = connection.settings_dict["PORT"]
    refused_port = closed_port()
    connection.close()
    connection.settings_dict["PORT"] = refused_port
    try:
        for response in (
            client.get("/api/v1/providers/"),
            client.get("/api/v1/service-areas/"),
            api.get(LOOKUP, {"lat": 40.6413, "lng": -73.7781}),
            api.post("/api/v1/auth/token/", {"username": "a", "password": "b"}, format="json"),
        ):
            assert_database_503(response)
            assert str(refused_port) not in response.content.decode()
        with pytest.raises(OperationalError, match="refused"):
            connection.ensure_connection()  # it was a refused connection
    finally:
        connection.close()
        connection.settings_dict["PORT"] = real_port
    assert [p["id"] for p in client.get("/api/v1/providers/").json()["results"]] == [area.provider_id]
    found = api.get(LOOKUP, {"lat": 40.6413, "lng": -73.7781})
    assert found.status_code == 200 and [r["id"] for r in found.json()["results"]] == [area.id]


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_database_drops_mid_session_is_a_503_then_a_new_one_is_made(api, client_for, make_user):
    """What a database restart does to the connections it had: the request that finds its connection dropped is a
    JSON 503; the connection is then discarded (as the WSGI handler does at the end of every request) and the next
    request connects again."""
    from django.db import close_old_connections

    client = client_for(make_user())
    assert client.get("/api/v1/providers/").status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with psycopg2.connect(**connection.get_connection_params()) as other, other.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        assert cursor.fetchone()[0] is True
    assert_database_503(client.get("/api/v1/providers/"))
    close_old_connections()  # request_finished: a connection that failed is closed
    assert client.get("/api/v1/providers/").status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid


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


def test_web_processes_get_a_statement_timeout_and_pass_on_no_setting():
    """project.wsgi gives the web process's database connections a statement timeout, and leaves the environment
    as it found it: a process started from one that imported it (a test's worker, which runs long index builds)
    inherits no timeout. Checked in a fresh interpreter, whose environment holds none to begin with."""
    import json
    import os
    import subprocess
    import sys

    from django.conf import settings

    environment = {name: value for name, value in os.environ.items() if name != "DB_STATEMENT_TIMEOUT_MS"}
    environment["DJANGO_SETTINGS_MODULE"] = "project.settings.test"
    code = (
        "import json, os, project.wsgi; from django.conf import settings; "
        "print(json.dumps([settings.DATABASES['default']['OPTIONS'].get('options'), "
        "os.environ.get('DB_STATEMENT_TIMEOUT_MS')]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=environment, cwd=settings.BASE_DIR, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    options, left_in_environment = json.loads(result.stdout.splitlines()[-1])
    assert options == "-c statement_timeout=10000"
    assert left_in_environment is None
