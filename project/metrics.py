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
from functools import lru_cache

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpResponse, HttpResponseNotFound
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from redis.exceptions import RedisError

from core.networks import client_address
from hexindex import api as index

log = logging.getLogger(__name__)


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
