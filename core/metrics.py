"""Counters and histograms of the request path, updated by the web processes as they answer (exposed at /metrics
by project.metrics; under gunicorn shared between its workers through PROMETHEUS_MULTIPROC_DIR, gunicorn.conf.py).
"""

import logging
import time

import orjson
from django.conf import settings
from prometheus_client import Counter, Gauge, Histogram

from core.redis import breaker

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
    circuit_open = breaker.state == "open"
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
