"""Health endpoint against the real stores, and with Redis unreachable."""

import socket


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def test_health_is_503_naming_redis_when_it_is_down(api, db, settings):
    settings.HEXINDEX_REDIS_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    response = api.get("/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["postgres"] == "ok"
    assert body["redis"].startswith("error: ConnectionError")
    assert body["index"]["lookups"] == "postgis"
    # Lookups still work, so the load balancer's probe stays green.
    assert api.get("/health/live/").json() == {"status": "ok"}


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
    assert {p["name"] for p in lookup["parameters"]} == {"lat", "lng"}
    components = schema["components"]["schemas"]
    feature = components["ServiceArea"]
    feature_type = feature["properties"]["type"]["$ref"].rsplit("/", 1)[-1]
    assert components[feature_type]["enum"] == ["Feature"]
    position = feature["properties"]["geometry"]["properties"]["coordinates"]["items"]["items"]["items"]
    assert (position["minItems"], position["maxItems"]) == (2, 3)
    assert "[longitude, latitude]" in position["description"]
    request_geometry = components["ServiceAreaRequest"]["properties"]["geometry"]["oneOf"]
    assert [g["properties"]["type"]["enum"] for g in request_geometry] == [["Polygon"], ["MultiPolygon"]]
