"""Connections to the Redis that serves the request path (HEXINDEX_REDIS_URL: the index, and the rate limits that
ride on its reads), whether it is one server (with an optional replica behind HEXINDEX_REDIS_READER_URL) or a Redis
Cluster (HEXINDEX_REDIS_CLUSTER, as ElastiCache in cluster mode and ElastiCache Serverless speak it); and the
per-process circuit breaker that keeps a failing Redis from slowing every request.

- `index_client()`: a redis-py client (`Redis` or `RedisCluster`) with its pool, for everything but the hot path.
- `send(commands, tag=...)`: the hot path's round trip to the node that serves the hash tag `tag` (all keys of one
  call share it, so a cluster answers a MULTI/EXEC or a script on one node); `read=True` may go to a replica
  (HEXINDEX_REDIS_REPLICA_READS). One plain connection per node and thread: a pool's bookkeeping (locks, readiness
  polls, metrics) costs more than the read itself; hiredis packs the commands in C.
- `send_groups(groups)`: several such calls, to one or more nodes, in one round trip per node, written to every
  node before any answer is read.
- `breaker`: after a failure, callers skip Redis for HEXINDEX_BREAKER_SECONDS, then one call tries again.

In a cluster, slots move (resharding, failover): a MOVED or ASK answer refreshes the slot map and the call is sent
again, once.
"""

from __future__ import annotations

import threading
import time
from functools import lru_cache
from typing import Any, Literal

import hiredis
import redis
from django.conf import settings
from redis.cluster import LoadBalancingStrategy, RedisCluster, key_slot

Command = tuple[Any, ...]


@lru_cache(maxsize=8)
def _client_for(url: str, timeout: float, cluster: bool) -> redis.Redis | RedisCluster:
    options = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
    if cluster:
        return RedisCluster.from_url(url, **options)
    return redis.Redis.from_url(url, health_check_interval=30, **options)


def is_cluster() -> bool:
    return bool(settings.HEXINDEX_REDIS_CLUSTER)


def index_client() -> redis.Redis | RedisCluster:
    """The index's Redis connection pool (per process, per URL: tests may point it elsewhere)."""
    return _client_for(settings.HEXINDEX_REDIS_URL, settings.REDIS_SOCKET_TIMEOUT, is_cluster())


class CircuitBreaker:
    """Per process. `allows()` is False for HEXINDEX_BREAKER_SECONDS after a failure; the first call after that is a
    trial: its success closes the circuit, its failure opens it again."""

    def __init__(self) -> None:
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


# --- the hot path -------------------------------------------------------------------------------------------------

_local = threading.local()
Node = tuple[str, int, bool]  # host, port, replica


def _connections() -> dict[tuple[Node, str], redis.connection.AbstractConnection]:
    """This thread's connections, by node; forgotten when the settings point elsewhere (tests)."""
    key = (settings.HEXINDEX_REDIS_URL, settings.HEXINDEX_REDIS_READER_URL, is_cluster())
    if getattr(_local, "key", None) != key:
        for connection in getattr(_local, "connections", {}).values():
            connection.disconnect()
        _local.key, _local.connections = key, {}
    return _local.connections


Purpose = Literal["lookup", "write", "bulk"]


def _timeout(purpose: Purpose) -> float:
    """Lookups: HEXINDEX_LOOKUP_TIMEOUT (a slow Redis is skipped, PostGIS answers). Writes on a request: may wait for
    replicas (WAIT) on top of REDIS_SOCKET_TIMEOUT. Bulk writes of the worker (builds, rebuilds): scripts over
    thousands of areas, HEXINDEX_BULK_TIMEOUT."""
    if purpose == "lookup":
        return float(settings.HEXINDEX_LOOKUP_TIMEOUT)
    if purpose == "write":
        return float(settings.REDIS_SOCKET_TIMEOUT + settings.HEXINDEX_REDIS_WAIT_MS / 1000)
    return float(settings.HEXINDEX_BULK_TIMEOUT)


def _connection(node: Node, *, purpose: Purpose = "lookup") -> redis.connection.AbstractConnection:
    """This thread's connection to the node for that purpose (its timeout: _timeout)."""
    connections = _connections()
    connection = connections.get((node, purpose))
    if connection is None:
        host, port, replica = node
        url = settings.HEXINDEX_REDIS_READER_URL if replica and not is_cluster() else settings.HEXINDEX_REDIS_URL
        timeout = _timeout(purpose)
        pool = redis.ConnectionPool.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        kwargs = {**pool.connection_kwargs, "host": host, "port": port}
        if replica and is_cluster():
            # A cluster replica serves reads only to connections that asked for it.
            kwargs["redis_connect_func"] = _read_only
        connection = pool.connection_class(**kwargs)
        connections[(node, purpose)] = connection
    return connection


def _read_only(connection: redis.connection.AbstractConnection) -> None:
    connection.on_connect()
    connection.send_command("READONLY")
    if connection.read_response() != b"OK":
        raise redis.exceptions.ConnectionError("the replica refused READONLY")


def node_for(tag: str | None, *, read: bool = False) -> Node:
    """The node serving a hash tag: in a cluster, the primary of its slot (or, for a read with replica reads on, one
    of its replicas); otherwise the one server (or its reader endpoint)."""
    replica = read and settings.HEXINDEX_REDIS_REPLICA_READS
    if is_cluster():
        slot = key_slot((tag or "").encode())
        cluster_node = index_client().nodes_manager.get_node_from_slot(  # type: ignore[union-attr]
            slot, load_balancing_strategy=LoadBalancingStrategy.ROUND_ROBIN_REPLICAS if replica else None
        )
        return cluster_node.host, int(cluster_node.port), cluster_node.server_type == "replica"
    if replica and settings.HEXINDEX_REDIS_READER_URL:
        return (*_address(settings.HEXINDEX_REDIS_READER_URL), True)
    return (*_address(settings.HEXINDEX_REDIS_URL), False)


@lru_cache(maxsize=8)
def _address(url: str) -> tuple[str, int]:
    """A Redis URL's host and port (parsed once: this is on every lookup's path)."""
    kwargs = redis.ConnectionPool.from_url(url).connection_kwargs
    return kwargs.get("host", "127.0.0.1"), int(kwargs.get("port", 6379))


def send(commands: list[Command], *, tag: str | None = None, read: bool = False) -> list[Any]:
    """The commands in one round trip to the node serving `tag`, their replies in order. An error reply (e.g. OOM
    for a write to a full Redis) is returned in its place as a ResponseError, not raised: the other commands'
    replies stand."""
    return send_groups([(tag, commands, read)])[0]


_round_trips = [0]


def round_trips() -> int:
    """Reads this process has sent on the hot path (each one round trip to one or more nodes, answered together):
    what the lookup's budgets count, whatever else shares the server."""
    return _round_trips[0]


def send_groups(
    groups: list[tuple[str | None, list[Command], bool]], *, purpose: Purpose = "lookup"
) -> list[list[Any]]:
    """Several (tag, commands, read) calls: one round trip per node, every node written to before any is read.
    `purpose`: which connections (and timeout) to use, see _timeout.

    In a cluster a call may meet its slot moving: MOVED (moved for good: the slot map is read again), ASK (being
    migrated: the call goes to the node named, after ASKING, which lets it run there for a transaction or a script
    too) or TRYAGAIN (its keys are split between the two nodes for a moment). Only the calls that met one are sent
    again, so a write that ran is never repeated; still meeting one after that raises SlotMoving."""
    if any(read for _, _, read in groups):
        _round_trips[0] += 1
    replies: list[list[Any]] = [[] for _ in groups]
    todo = {i: (None, groups[i]) for i in range(len(groups))}  # index -> (node to send it to, or None: its slot's)
    for attempt in range(3):
        routed = [
            (
                i,
                _connection(node or node_for(tag, read=read), purpose=purpose),
                [("ASKING",), *commands] if node else commands,
            )
            for i, (node, (tag, commands, read)) in todo.items()
        ]
        sent = _exchange([(connection, commands) for _, connection, commands in routed])
        for (i, _, commands), answer in zip(routed, sent, strict=True):
            replies[i] = answer[len(commands) - len(groups[i][1]) :]  # without ASKING's OK
        rerouted = {i: replies[i] for i, _, _ in routed if is_cluster() and any(_moved(r) for r in replies[i])}
        if not rerouted:
            return replies
        if attempt == 2:
            raise SlotMoving(f"slots still moving after {attempt + 1} attempts: {_first_reroute(rerouted)}")
        asked = {i: _ask_target(answer) for i, answer in rerouted.items()}
        if any(target is None for target in asked.values()):
            index_client().nodes_manager.initialize()  # type: ignore[union-attr]  # MOVED: read the slot map again
        todo = {i: (asked[i], groups[i]) for i in rerouted}
    return replies


def _exchange(routed: list[tuple[redis.connection.AbstractConnection, list[Command]]]) -> list[list[Any]]:
    try:
        # One write per connection (node), however many calls go there; hiredis packs each command in C (redis-py's
        # own packing costs ~4x as much in Python per lookup).
        payloads: dict[int, tuple[redis.connection.AbstractConnection, list[bytes]]] = {}
        for connection, commands in routed:
            packed = payloads.setdefault(id(connection), (connection, []))[1]
            packed += [hiredis.pack_command(command) for command in commands]
        for connection, packed in payloads.values():
            connection.send_packed_command([b"".join(packed)], check_health=False)
        return [[_read_reply(connection) for _ in commands] for connection, commands in routed]
    except BaseException:
        for connection, _ in routed:
            connection.disconnect()  # whatever state it is in, the next call starts afresh
        raise


class SlotMoving(redis.exceptions.RedisError):
    """A cluster slot was still moving after the call was sent where it moved: Redis itself is fine, so callers
    answer this one request another way and keep using Redis (no breaker)."""


_REROUTED = (redis.exceptions.MovedError, redis.exceptions.AskError, redis.exceptions.TryAgainError)


def _moved(reply: Any) -> bool:
    if isinstance(reply, list):
        return any(_moved(item) for item in reply)
    return isinstance(reply, _REROUTED) or (
        isinstance(reply, redis.exceptions.ResponseError) and str(reply).startswith(("MOVED", "ASK", "TRYAGAIN"))
    )


def _ask_target(replies: list[Any]) -> Node | None:
    """The node an ASK reply names (the slot is being migrated there), or None for MOVED / TRYAGAIN."""
    for reply in replies:
        if isinstance(reply, list):
            if (found := _ask_target(reply)) is not None:
                return found
        elif isinstance(reply, Exception) and str(reply).startswith("ASK "):
            host, _, port = str(reply).split()[2].rpartition(":")
            return host, int(port), False
    return None


def _first_reroute(rerouted: dict[int, list[Any]]) -> str:
    return next(str(reply) for answer in rerouted.values() for reply in answer if _moved(reply))


def _read_reply(connection: redis.connection.AbstractConnection) -> Any:
    try:
        return connection.read_response()
    except redis.exceptions.ResponseError as error:  # raised once the reply was read: the connection is in step
        return error
