"""/metrics: lookups by path, their latency, candidates and checks, the index's state; loopback or token only."""

import re

import pytest
from prometheus_client import CONTENT_TYPE_LATEST

from hexindex import redis_index
from testing.geo import square
from testing.index import drop_index
from testing.net import SilentServer, closed_port

LOOKUP = "/api/v1/lookup/"


def scrape(client, **extra) -> dict[str, float]:
    response = client.get("/metrics", **extra)
    assert response.status_code == 200
    assert response["Content-Type"] == CONTENT_TYPE_LATEST
    values = {}
    for line in response.content.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_lookups_are_counted_by_path_with_their_work(api, client, make_area, index_all):
    make_area(square(10.0, 50.0, 0.5))
    index_all()
    before = scrape(client)
    for _ in range(3):
        api.get(LOOKUP, {"lat": 50.0, "lng": 10.0})
    drop_index(redis_index.client())  # no index: the next lookup is answered by PostGIS
    api.get(LOOKUP, {"lat": 50.0, "lng": 10.0})
    after = scrape(client)

    def grew(name):
        return after.get(name, 0) - before.get(name, 0)

    assert grew('servicearea_lookups_total{path="indexed"}') == 3
    assert grew('servicearea_lookups_total{path="postgis"}') == 1
    assert grew("servicearea_lookup_seconds_count") == 4
    assert grew("servicearea_lookup_candidates_count") == 3 and grew("servicearea_lookup_candidates_sum") == 3
    assert grew("servicearea_lookup_exact_checks_count") == 3


def test_the_index_state_is_reported(client, make_area, index_all):
    make_area(square(10.0, 50.0, 0.5))  # registered as pending, not indexed yet
    values = scrape(client)
    assert values["servicearea_index_pending_areas"] == 1
    assert values["servicearea_index_unindexed_areas"] == 1
    assert values["servicearea_index_oldest_pending_seconds"] >= 0
    index_all()
    values = scrape(client)
    assert (values["servicearea_index_pending_areas"], values["servicearea_index_unindexed_areas"]) == (0, 0)
    assert values["servicearea_index_builds_last_hour"] == 1


def test_the_circuit_state_is_reported(api, client, db, settings):
    settings.HEXINDEX_REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"  # refused
    api.get(LOOKUP, {"lat": 1.0, "lng": 2.0})
    assert scrape(client)["servicearea_redis_circuit_open"] == 1


@pytest.mark.parametrize(
    ("token", "sent", "status"), [("", "", 404), ("s3cret", "Bearer wrong", 404), ("s3cret", "Bearer s3cret", 200)]
)
def test_metrics_are_for_loopback_or_the_token_holder(client, db, settings, token, sent, status):
    settings.METRICS_TOKEN = token
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.7", HTTP_AUTHORIZATION=sent)
    assert response.status_code == status
    assert not re.search(rb"servicearea_", response.content) or status == 200


def test_lookup_counts_go_to_cloudwatch_as_embedded_metrics_once_a_minute(settings, caplog, monkeypatch):
    import orjson

    from core.metrics import CloudWatchLookups

    settings.CLOUDWATCH_METRICS_NAMESPACE = "stack/Celery"
    counter = CloudWatchLookups()
    with caplog.at_level("INFO", logger="servicearea.emf"):
        counter.record("indexed")
        counter.record("postgis")
        assert not caplog.records  # not a minute yet
        monkeypatch.setattr(counter, "since", counter.since - 61)
        counter.record("indexed")
    (record,) = caplog.records
    document = orjson.loads(record.getMessage())
    assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "stack/Celery"
    assert (document["LookupsIndexed"], document["LookupsPostgis"], document["LookupsError"]) == (2, 1, 0)
    assert counter.counts == {"indexed": 0, "postgis": 0, "error": 0}


def test_rate_limited_requests_and_batch_points_are_counted(api, client, make_area, index_all, settings, rate_clock):
    make_area(square(10.0, 50.0, 0.5))
    index_all()
    settings.LOOKUP_ANONYMOUS_RATE_PER_MINUTE = 3
    before = scrape(client)
    api.post("/api/v1/lookup/batch/", {"points": [{"lat": 50.0, "lng": 10.0}] * 3}, format="json")
    assert api.get(LOOKUP, {"lat": 50.0, "lng": 10.0}).status_code == 429
    after = scrape(client)
    assert (
        after['servicearea_rate_limited_total{caller="anonymous"}']
        - before.get('servicearea_rate_limited_total{caller="anonymous"}', 0)
        == 1
    )
    assert after["servicearea_batch_points_total"] - before.get("servicearea_batch_points_total", 0) == 3


@pytest.fixture
def redis_limit():
    """A memory limit on the test Redis server for the test's duration (the previous one restored)."""
    server = redis_index.client()
    previous = server.config_get("maxmemory")["maxmemory"]
    # Well above what it uses, so nothing is refused meanwhile (it evicts nothing).
    limit = server.info("memory")["used_memory"] + 256 * 2**20
    server.config_set("maxmemory", limit)
    yield limit
    server.config_set("maxmemory", previous)


def test_the_memory_of_the_index_redis_is_reported(client, db, redis_limit):
    values = scrape(client)
    used = redis_index.client().info("memory")["used_memory"]
    assert values["servicearea_redis_maxmemory_bytes"] == redis_limit
    assert 0.5 * used < values["servicearea_redis_used_memory_bytes"] < 2 * used


def test_metrics_answer_without_the_redis_memory_while_redis_is_down(client, db, settings):
    settings.HEXINDEX_REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"  # refused
    values = scrape(client)
    assert "servicearea_redis_used_memory_bytes" not in values
    assert "servicearea_redis_maxmemory_bytes" not in values
    assert "servicearea_index_unindexed_areas" in values  # what PostgreSQL says is still there


def test_a_silent_redis_holds_the_memory_reading_for_a_short_timeout_only(db, settings):
    import threading

    from project.metrics import REDIS_MEMORY_TIMEOUT, RedisMemoryCollector

    settings.REDIS_SOCKET_TIMEOUT = 30.0  # what the process's other Redis clients would wait
    read = []
    with SilentServer() as silent:  # accepts connections (the kernel does) and never answers
        settings.HEXINDEX_REDIS_URL = silent.url()
        reader = threading.Thread(target=lambda: read.append(list(RedisMemoryCollector().collect())), daemon=True)
        reader.start()
        # The behaviour is a time bound: REDIS_MEMORY_TIMEOUT (0.5 s), where the other clients would wait 30 s and a
        # client without a timeout forever. Generous, for a loaded machine, and far below those.
        reader.join(timeout=REDIS_MEMORY_TIMEOUT + 5.0)
        assert not reader.is_alive(), "the memory reading waited on a silent Redis"
        assert read == [[]]  # nothing reported; the scrape goes on
        assert silent.connections() == 1  # one attempt, so one timeout
