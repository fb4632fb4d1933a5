"""Health endpoint against the real stores, and with PostgreSQL or Redis unreachable."""

import logging

import pytest
from django.db import OperationalError, connection

from testing.net import closed_port

# What a failing PostgreSQL connection says: host names and addresses the public must not see.
POSTGRES_ERROR = 'could not connect to server: Connection refused\n\tIs the server running on host "db.internal"?'


def test_health_is_ok_when_postgres_and_redis_answer(api, db, make_area, index_all):
    make_area({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]})
    response = api.get("/health/")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "postgres": "ok",
        "redis": "ok",
        "index": {"redis": "live", "lookups": "indexed", "unindexed_areas": 1},
    }
    index_all()
    assert api.get("/health/").json()["index"]["unindexed_areas"] == 0


def _refuse_queries(execute, sql, params, many, context):
    raise OperationalError(POSTGRES_ERROR)


def test_health_is_503_naming_redis_when_it_is_down_and_logs_why(api, db, settings, caplog):
    port = closed_port()
    settings.HEXINDEX_REDIS_URL = f"redis://127.0.0.1:{port}/0"
    with caplog.at_level(logging.WARNING, logger="project.health"):
        response = api.get("/health/")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "postgres": "ok",
        "redis": "unavailable",
        "index": {"redis": "unavailable", "lookups": "postgis", "unindexed_areas": 0},
    }
    assert "ConnectionError" in caplog.text
    assert str(port) in caplog.text
    # Lookups still work, so the load balancer's probe stays green.
    assert api.get("/health/live/").json() == {"status": "ok"}


def test_health_is_503_naming_postgres_when_it_is_down_without_its_error(api, db, caplog):
    with caplog.at_level(logging.WARNING, logger="project.health"), connection.execute_wrapper(_refuse_queries):
        response = api.get("/health/")
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["postgres"], body["redis"]) == ("unavailable", "unavailable", "ok")
    assert body["index"]["unindexed_areas"] is None
    assert "db.internal" not in response.content.decode()
    assert "OperationalError" in caplog.text
    assert "db.internal" in caplog.text


def test_liveness_is_503_without_postgres_error_text(api, db, caplog):
    with caplog.at_level(logging.WARNING, logger="project.health"), connection.execute_wrapper(_refuse_queries):
        response = api.get("/health/live/")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}
    assert "db.internal" in caplog.text


@pytest.mark.parametrize("path", ["/health/", "/health/live/"])
def test_health_schema_examples_show_no_error_text(api, db, path):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    examples = schema["paths"][path]["get"]["responses"]["503"]["content"]["application/json"]["examples"]
    assert examples
    for example in examples.values():
        assert "error" not in str(example["value"]).lower()


def test_health_is_degraded_when_redis_lost_the_index(api, db, index_redis):
    index_redis.flushdb()
    response = api.get("/health/")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["index"] == {"redis": "missing", "lookups": "postgis", "unindexed_areas": 0}


def test_docs_are_served_without_a_cdn(api, db):
    for url in ("/api/docs/", "/api/redoc/"):
        page = api.get(url)
        assert page.status_code == 200
        html = page.content.decode()
        assert "cdn" not in html.lower()
        assert "/static/drf_spectacular_sidecar/" in html
    assert api.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js").status_code == 200


def test_schema_describes_lookup_and_geojson_features(api, db):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert schema["openapi"].startswith("3.")
    lookup = schema["paths"]["/api/v1/lookup/"]["get"]
    assert {p["name"] for p in lookup["parameters"]} == {
        "lat",
        "lng",
        "include_mine",
        "provider",
        "currency",
        "language",
        "max_price",
        "limit",
        "per_provider",
    }
    components = schema["components"]["schemas"]
    feature = components["ServiceArea"]
    feature_type = feature["properties"]["type"]["$ref"].rsplit("/", 1)[-1]
    assert components[feature_type]["enum"] == ["Feature"]
    position = feature["properties"]["geometry"]["properties"]["coordinates"]["items"]["items"]["items"]
    assert (position["minItems"], position["maxItems"]) == (2, 3)
    assert "[longitude, latitude]" in position["description"]
    request_geometry = components["ServiceAreaRequest"]["properties"]["geometry"]["oneOf"]
    assert [g["properties"]["type"]["enum"] for g in request_geometry] == [["Polygon"], ["MultiPolygon"]]


OUTSIDE = "203.0.113.9"  # neither loopback nor in HEALTH_DETAIL_ALLOWED_NETWORKS


def test_health_tells_anyone_the_status_and_which_dependency_fails_but_no_figures(api, db, settings, make_area):
    make_area({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]})
    assert api.get("/health/", REMOTE_ADDR=OUTSIDE).json() == {"status": "ok", "postgres": "ok", "redis": "ok"}
    settings.HEXINDEX_REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    response = api.get("/health/", REMOTE_ADDR=OUTSIDE)
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "postgres": "ok", "redis": "unavailable"}


def test_health_figures_for_staff_by_token_or_session_and_for_allowed_networks(
    api, db, settings, make_area, make_user, client_for, client
):
    make_area({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]})
    figures = {"redis": "live", "lookups": "indexed", "unindexed_areas": 1}
    staff = make_user(staff=True)
    assert client_for(staff).get("/health/", REMOTE_ADDR=OUTSIDE).json()["index"] == figures
    client.force_login(staff)
    assert client.get("/health/", REMOTE_ADDR=OUTSIDE).json()["index"] == figures
    assert "index" not in client_for(make_user()).get("/health/", REMOTE_ADDR=OUTSIDE).json()
    settings.HEALTH_DETAIL_ALLOWED_NETWORKS = ["203.0.113.0/24"]
    assert api.get("/health/", REMOTE_ADDR=OUTSIDE).json()["index"] == figures
    assert "index" not in api.get("/health/", REMOTE_ADDR="127.0.0.1").json()


def test_health_with_a_bad_token_is_the_public_answer_not_a_401(api, db):
    response = api.get("/health/", REMOTE_ADDR=OUTSIDE, HTTP_AUTHORIZATION="Token not-a-real-token")
    assert (response.status_code, response.json()) == (200, {"status": "ok", "postgres": "ok", "redis": "ok"})
