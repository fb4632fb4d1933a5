"""Connections to the Redis that serves the request path (HEXINDEX_REDIS_URL: the index, and the rate limits that
ride on its reads), and the per-process circuit breaker that keeps a failing Redis from slowing every request.

- `index_client()`: a redis-py client with its pool, for everything but the hot path.
- `send(commands)`: the hot path's round trip. One plain connection per thread: a pool's bookkeeping (locks,
  readiness polls, metrics) costs more than the read itself; hiredis packs the commands in C.
- `breaker`: after a failure, callers skip Redis for HEXINDEX_BREAKER_SECONDS, then one call tries again.
"""

from __future__ import annotations

import threading
import time
from functools import lru_cache

import hiredis
import redis
from django.conf import settings


@lru_cache(maxsize=4)
def _client_for(url: str, timeout: float) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout, health_check_interval=30)


def index_client() -> redis.Redis:
    """The index's Redis connection pool (per process, per URL: tests may point it elsewhere)."""
    return _client_for(settings.HEXINDEX_REDIS_URL, settings.REDIS_SOCKET_TIMEOUT)


class CircuitBreaker:
    """Per process. `allows()` is False for HEXINDEX_BREAKER_SECONDS after a failure; the first call after that is a
    trial: its success closes the circuit, its failure opens it again."""

    def __init__(self):
        self.open_until = 0.0
        self.failures = 0  # since the last success, for metrics and logs

    def allows(self) -> bool:
        return time.monotonic() >= self.open_until

    @property
    def state(self) -> str:
        return "closed" if self.failures == 0 else ("open" if not self.allows() else "half-open")

    def failed(self) -> None:
        self.failures += 1
        self.open_until = time.monotonic() + settings.HEXINDEX_BREAKER_SECONDS

    def succeeded(self) -> None:
        self.failures = 0
        self.open_until = 0.0


breaker = CircuitBreaker()


class CircuitOpen(redis.exceptions.ConnectionError):
    """Redis failed moments ago: not tried again until the breaker allows it."""


_local = threading.local()


def _lookup_connection() -> redis.connection.AbstractConnection:
    url = settings.HEXINDEX_REDIS_URL
    connection = getattr(_local, "connection", None)
    if connection is None or _local.url != url:
        timeout = settings.HEXINDEX_LOOKUP_TIMEOUT
        pool = redis.ConnectionPool.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        connection = pool.connection_class(**pool.connection_kwargs)
        _local.connection, _local.url = connection, url
    return connection


def send(commands: list[tuple]) -> list:
    """The commands in one round trip over this thread's lookup connection, their replies in order (for the request
    path: a client's pipeline bookkeeping would cost more than Redis itself). An error reply (e.g. OOM for a write
    to a full Redis) is returned in its place as a ResponseError, not raised: the other commands' replies stand."""
    connection = _lookup_connection()
    try:
        # hiredis packs each command in C; redis-py's own packing costs ~4x as much in Python per lookup.
        payload = b"".join([hiredis.pack_command(command) for command in commands])
        connection.send_packed_command([payload], check_health=False)
        return [_read_reply(connection) for _ in commands]
    except BaseException:
        connection.disconnect()  # whatever state it is in, the next lookup starts afresh
        raise


def _read_reply(connection) -> object:
    try:
        return connection.read_response()
    except redis.exceptions.ResponseError as error:  # raised once the reply was read: the connection is in step
        return error
