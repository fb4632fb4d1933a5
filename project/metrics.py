"""Prometheus metrics at /metrics: what the lookup is doing, without reading logs.

Counters and histograms are updated by the web processes as they answer; under gunicorn they are shared between
its workers through PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py). The state of the index (pending areas and the
age of the oldest, unindexed and failed areas, recent build durations) and the memory of the index's Redis are
read from Redis and PostgreSQL when scraped, so every web process reports the same numbers and no worker has to
push anything.

/metrics answers clients on the loopback interface, or anyone sending `Authorization: Bearer $METRICS_TOKEN`
(set it, and scrape with it, in production).
"""

import hmac
import ipaddress
import logging
import os
import time
from functools import lru_cache

import orjson
import redis
from django.conf import settings
from django.db import connection
from django.http import HttpResponse, HttpResponseNotFound
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from redis.exceptions import RedisError

from accounts.security import client_address
from hexindex import api as index

log = logging.getLogger(__name__)

LOOKUPS = Counter(
    "servicearea_lookups_total",
    "Lookups answered, by path: indexed (the hexagon index), postgis (the exact query: Redis down, empty or "
    "rebuilding, or too many pending areas at the point) and error (a 503)",
    ["path"],
)
LOOKUP_SECONDS = Histogram(
    "servicearea_lookup_seconds",
    "Time to answer a lookup in the web process (parsing to body)",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
LOOKUP_CANDIDATES = Histogram(
    "servicearea_lookup_candidates",
    "Index records found for a point (indexed lookups)",
    buckets=(0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
LOOKUP_EXACT_CHECKS = Histogram(
    "servicearea_lookup_exact_checks",
    "Boundary candidates of a point that needed an exact check (indexed lookups)",
    buckets=(0, 1, 2, 5, 10, 20, 50, 100),
)
LOOKUP_POSTGRES_QUERIES = Counter(
    "servicearea_lookup_postgres_queries_total", "PostgreSQL queries made by lookups (indexed or not)"
)
BATCH_POINTS = Counter("servicearea_batch_points_total", "Points looked up in batches (POST /api/v1/lookup/batch/)")
BATCH_SECONDS = Histogram(
    "servicearea_batch_seconds",
    "Time to answer a batch lookup in the web process",
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RATE_LIMITED = Counter(
    "servicearea_rate_limited_total",
    "Requests refused with 429 by the lookup endpoints' rate limits, by caller: key (a partner key) or anonymous",
    ["caller"],
)
REDIS_CIRCUIT_OPEN = Gauge(
    "servicearea_redis_circuit_open",
    "1 while a web process's Redis circuit breaker is open (its lookups go straight to PostGIS)",
    multiprocess_mode="max",
)

_circuit_seen = {"open": None}


class CloudWatchLookups:
    """On AWS (CLOUDWATCH_METRICS_NAMESPACE set), each web process writes its lookup counts once a minute as one
    log line in CloudWatch's embedded metric format: the log driver turns it into metrics (LookupsIndexed,
    LookupsPostgis, LookupsError) that alarms read, with no API call on the request path."""

    INTERVAL = 60.0
    NAMES = {"indexed": "LookupsIndexed", "postgis": "LookupsPostgis", "error": "LookupsError"}

    def __init__(self):
        self.counts = dict.fromkeys(self.NAMES, 0)
        self.since = time.monotonic()

    def record(self, path: str) -> None:
        self.counts[path] += 1
        if time.monotonic() - self.since >= self.INTERVAL and settings.CLOUDWATCH_METRICS_NAMESPACE:
            self.flush()

    def flush(self) -> None:
        names = [{"Name": name, "Unit": "Count"} for name in self.NAMES.values()]
        document = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {"Namespace": settings.CLOUDWATCH_METRICS_NAMESPACE, "Dimensions": [[]], "Metrics": names}
                ],
            },
            **{self.NAMES[path]: count for path, count in self.counts.items()},
        }
        emf_log.info(orjson.dumps(document).decode())
        self.counts = dict.fromkeys(self.NAMES, 0)
        self.since = time.monotonic()


emf_log = logging.getLogger("servicearea.emf")  # production logs it as the bare JSON document
cloudwatch_lookups = CloudWatchLookups()


def lookup_answered(result, seconds: float) -> None:
    """Record a lookup (a hexindex LookupResult)."""
    path = "indexed" if result.source == "index" else "postgis"
    LOOKUPS.labels(path).inc()
    cloudwatch_lookups.record(path)
    LOOKUP_SECONDS.observe(seconds)
    if result.source == "index":
        LOOKUP_CANDIDATES.observe(result.candidates)
        LOOKUP_EXACT_CHECKS.observe(result.exact_checks)
    if result.postgres_queries:
        LOOKUP_POSTGRES_QUERIES.inc(result.postgres_queries)
    circuit_open = index.circuit_state() == "open"
    if circuit_open is not _circuit_seen["open"]:  # a gauge write only when the state changes
        _circuit_seen["open"] = circuit_open
        REDIS_CIRCUIT_OPEN.set(1 if circuit_open else 0)


def batch_answered(points: int, seconds: float) -> None:
    BATCH_POINTS.inc(points)
    BATCH_SECONDS.observe(seconds)


def rate_limited(*, with_key: bool) -> None:
    RATE_LIMITED.labels("key" if with_key else "anonymous").inc()


def lookup_failed(seconds: float) -> None:
    LOOKUPS.labels("error").inc()
    cloudwatch_lookups.record("error")
    LOOKUP_SECONDS.observe(seconds)


class IndexStateCollector:
    """The index as a whole, read at scrape time (a failure is reported as a missing value, never raised)."""

    def collect(self):
        stats = index.pending_stats()
        if stats is not None:
            yield GaugeMetricFamily("servicearea_index_pending_areas", "Areas pending in the index", stats[0])
            yield GaugeMetricFamily(
                "servicearea_index_oldest_pending_seconds", "Age of the oldest pending registration", stats[1]
            )
        try:
            with connection.cursor() as cursor:
                figures = index.build_stats(cursor)
        except Exception:  # the database is down: /health/ says so; metrics keep what they can
            log.warning("metrics: cannot read index figures from PostgreSQL", exc_info=True)
            return
        for name, help_text, value in (
            ("servicearea_index_unindexed_areas", "Areas whose current geometry is not indexed yet", "unindexed"),
            ("servicearea_index_failed_areas", "Areas whose current geometry could not be indexed", "failed"),
            ("servicearea_index_builds_last_hour", "Index builds finished in the last hour", "builds"),
            ("servicearea_index_build_seconds_mean", "Mean cover time of the last hour's builds", "mean_seconds"),
            ("servicearea_index_build_seconds_max", "Longest cover time of the last hour's builds", "max_seconds"),
        ):
            yield GaugeMetricFamily(name, help_text, figures[value])


# A scrape waits at most this long for the index's Redis (a frozen Redis must not hold up the scraper).
REDIS_MEMORY_TIMEOUT = 0.5


@lru_cache(maxsize=4)
def _memory_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=REDIS_MEMORY_TIMEOUT, socket_timeout=REDIS_MEMORY_TIMEOUT)


class RedisMemoryCollector:
    """Memory of the index's Redis server, read at scrape time (INFO memory). It also holds the Celery queues and
    the rate limits, and evicts nothing: full, it refuses every write (index builds, task publishing, counts).
    Nothing is reported while Redis does not answer; the scrape goes on."""

    def collect(self):
        try:
            memory = _memory_client(settings.HEXINDEX_REDIS_URL).info("memory")
        except (RedisError, OSError):
            log.warning("metrics: cannot read the memory of the index's Redis", exc_info=True)
            return
        yield GaugeMetricFamily(
            "servicearea_redis_used_memory_bytes", "Memory used by the index's Redis server", memory["used_memory"]
        )
        yield GaugeMetricFamily(
            "servicearea_redis_maxmemory_bytes",
            "Memory limit of the index's Redis server (maxmemory; 0: none, the machine's memory is the limit)",
            memory["maxmemory"],
        )


_INDEX_REGISTRY = CollectorRegistry()
_INDEX_REGISTRY.register(IndexStateCollector())
_INDEX_REGISTRY.register(RedisMemoryCollector())


def exposition() -> bytes:
    """The metrics text: the web processes' counters (all gunicorn workers' when shared), then the index's state."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        processes = generate_latest(registry)
    else:
        processes = generate_latest(REGISTRY)
    return processes + generate_latest(_INDEX_REGISTRY)


def _allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    sent = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        return True
    try:
        return ipaddress.ip_address(client_address(request)).is_loopback
    except ValueError:
        return False


def metrics_view(request):
    if not _allowed(request):
        return HttpResponseNotFound(b"Not Found", content_type="text/plain")
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
