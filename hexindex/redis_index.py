"""The index's Redis side: the only module that knows Redis key names. Derived data: it can always be rebuilt from
PostgreSQL (hexindex.maintenance.rebuild_redis). The same layout runs on one Redis server and on a Redis Cluster.

Everything a lookup reads is grouped in *buckets* by the point's anchor cell (HEXINDEX_BUCKETS of them; bucket =
CRC32 of the anchor's name): a bucket's keys share one hash tag, `{hx17}`, so a cluster keeps them in one slot
and a lookup is one transaction on one node, and the lookups of a city spread over the cluster with the buckets.
Keys (P is HEXINDEX_KEY_PREFIX, `hx`; G a generation):

    P:{P<b>}:gen                the generation lookups in bucket b read; absent: no usable index there
    P:{P<b>}:G:c:<anchor>       hash: field <cell><kind> -> the records of the areas holding that cell (codec)
    P:{P<b>}:G:af               hash: area -> where its records are in this bucket (anchor and field, 24 bytes each)
    P:{P<b>}:G:pay              hash: area -> <version><price in cents><its lookup result, serialised>
    P:{P<b>}:G:s                hash: <area><cell> -> <version><outline segments near the cell>, shared between web
                                processes once one fetched them from PostgreSQL (capped: HEXINDEX_SHARED_SHAPES)
    P:{P<b>}:pending            hash: area -> change token, for areas whose records here are not to be trusted
    P:{P<b>}:pcells             hash: area -> the cells (8 bytes each) it is registered at here
    P:{P<b>}:p:<cell, 8 bytes>  set of pending areas registered at that cell; P:{P<b>}:p:all for everywhere
    P:{P<b>}:dirty:G            areas made live while G was being built, to be copied into it here
    P:{Pa<s>}:tok, :pb, :own    per area shard (area id mod buckets): its change token, the buckets it is registered
                                in, the owner whose limit it counts against (writers only)
    P:{Pa<s>}:G:rb, :G:v        the buckets holding its records, its versions (the sweep's reconcile)
    P:{Po<owner>}:po            set: the owner's areas waiting to be indexed (its limit: HEXINDEX_PENDING_*)
    P:{Pg}:gen, :building,      the generation writers write to, the rebuild lock, the generation counter, the
    :counter, :seq, :requested  change-token counter, a rebuild asked for within the last minute

Every write that changes what a lookup would return registers the area as pending in every bucket a lookup could
meet it in, *before* its transaction commits (hexindex.invalidation), waiting for replicas to hold the
registration when lookups read replicas; a lookup ignores the records of areas pending at its point and checks
those areas in PostGIS. A build makes an area live bucket by bucket (apply_bucket.lua), each bucket only while
the area's token there is the one read before the build read the database, so a build that read old data can
never hide a later change; every bucket is consistent on its own, so nothing needs a transaction across slots.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import secrets
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import redis
from django.conf import settings

from core import redis as core_redis
from core.redis import Command, Purpose, breaker, node_for, send, send_groups
from hexindex import codec

EVERYWHERE = None  # a registration that covers the whole world
APPLIED, TOKEN_MOVED = 1, 0

_LUA = Path(__file__).with_name("lua")
_BUCKET_BYTES = 2  # bucket numbers in packed lists: little-endian u16


# --- keys ----------------------------------------------------------------------------------------------------------


def buckets() -> int:
    return settings.HEXINDEX_BUCKETS


def _prefix() -> str:
    return settings.HEXINDEX_KEY_PREFIX


def bucket_of(anchor: str) -> int:
    return zlib.crc32(anchor.encode()) % buckets()


def bucket_tag(bucket: int) -> str:
    return f"{{{_prefix()}{bucket}}}"


def bucket_tags() -> list[str]:
    return [bucket_tag(bucket) for bucket in range(buckets())]


def bucket_tag_for(text: str) -> str:
    """A bucket's hash tag chosen by `text` (keys of another component spread over the buckets' slots)."""
    return bucket_tag(zlib.crc32(text.encode()) % buckets())


def bucket_prefix(bucket: int) -> str:
    return f"{_prefix()}:{bucket_tag(bucket)}:"


def shard_of(area_id: int) -> int:
    return area_id % buckets()


def shard_tag(shard: int) -> str:
    return f"{{{_prefix()}a{shard}}}"


def shard_prefix(shard: int) -> str:
    return f"{_prefix()}:{shard_tag(shard)}:"


def _globals() -> str:
    return f"{_prefix()}:{{{_prefix()}g}}:"


def gen_key() -> str:
    """The generation writers write to (lookups read their bucket's own: bucket_prefix(b) + 'gen')."""
    return _globals() + "gen"


def building_key() -> str:
    return _globals() + "building"


def records_key(bucket: int, generation: int, anchor: str) -> str:
    return f"{bucket_prefix(bucket)}{generation}:c:{anchor}"


def _owner_key(owner_id: int) -> str:
    return f"{_prefix()}:{{{_prefix()}o{owner_id}}}:po"


def pack_buckets(numbers: Iterable[int]) -> bytes:
    return b"".join(number.to_bytes(_BUCKET_BYTES, "little") for number in sorted(set(numbers)))


def unpack_buckets(raw: bytes | None) -> set[int]:
    raw = raw or b""
    return {int.from_bytes(raw[i : i + _BUCKET_BYTES], "little") for i in range(0, len(raw), _BUCKET_BYTES)}


def client() -> redis.Redis:
    """The index's Redis connection pool (a cluster client in cluster mode)."""
    return core_redis.index_client()


# --- scripts: run over the routed connections, by SHA (loaded on the node the first time it asks) -----------------


@lru_cache(maxsize=32)
def _script_source(name: str) -> bytes:
    return (_LUA / f"{name}.lua").read_bytes()


@lru_cache(maxsize=32)
def _sha(name: str) -> str:
    import hashlib

    return hashlib.sha1(_script_source(name)).hexdigest()


def _evalsha(name: str, key: str, args: list[Any]) -> Command:
    return ("EVALSHA", _sha(name), 1, key, *args)


# Writes of the worker's bulk jobs (builds, rebuilds, the sweep): a longer timeout, and calls sent in chunks of
# bounded size, so that Redis never holds a huge request while it runs the scripts before it.
_bulk = contextvars.ContextVar("hexindex_bulk_writes", default=False)
P = ParamSpec("P")
R = TypeVar("R")
BULK_ARGUMENTS_PER_EXCHANGE = 20_000


@contextlib.contextmanager
def bulk_writes() -> Iterator[None]:
    """Within it, this thread's index writes are bulk writes (see _bulk)."""
    token = _bulk.set(True)
    try:
        yield
    finally:
        _bulk.reset(token)


def bulk(function: Callable[P, R]) -> Callable[P, R]:
    """A worker's bulk job: its index writes are bulk writes (bulk_writes)."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with bulk_writes():
            return function(*args, **kwargs)

    return wrapper


def _run_groups(groups: list[tuple[str, list[Command]]], *, on_lookup_path: bool = False) -> list[list[Any]]:
    """Script calls (and other writes) per hash tag, to the primaries, one round trip per node (per chunk, for bulk
    writes); a node that does not know a script yet is sent it and asked again. `on_lookup_path`: with the lookups'
    short timeout."""
    purpose: Purpose = "lookup" if on_lookup_path else "bulk" if _bulk.get() else "write"
    if purpose != "bulk":
        return _run_chunk(groups, purpose)
    replies: list[list[Any]] = []
    chunk: list[tuple[str, list[Command]]] = []
    size = 0
    for group in groups:
        group_size = sum(len(command) for command in group[1])
        if chunk and size + group_size > BULK_ARGUMENTS_PER_EXCHANGE:
            replies += _run_chunk(chunk, purpose)
            chunk, size = [], 0
        chunk.append(group)
        size += group_size
    return replies + (_run_chunk(chunk, purpose) if chunk else [])


def _run_chunk(groups: list[tuple[str, list[Command]]], purpose: Purpose) -> list[list[Any]]:
    replies = send_groups([(tag, commands, False) for tag, commands in groups], purpose=purpose)
    missing = [
        i for i, group in enumerate(replies) if any(isinstance(r, redis.exceptions.NoScriptError) for r in group)
    ]
    if missing:
        send_groups(
            [
                (groups[i][0], [("SCRIPT", "LOAD", _script_source(name)) for name in _script_names()], False)
                for i in missing
            ],
            purpose=purpose,
        )
        again = send_groups([(groups[i][0], groups[i][1], False) for i in missing], purpose=purpose)
        for i, group in zip(missing, again, strict=True):
            replies[i] = group
    return replies


@lru_cache(maxsize=1)
def _script_names() -> tuple[str, ...]:
    return tuple(sorted(path.stem for path in _LUA.glob("*.lua")))


def _raise_errors(replies: Iterable[Any]) -> None:
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply


def _run(name: str, tag: str, key: str, args: list[Any]) -> Any:
    reply = _run_groups([(tag, [_evalsha(name, key, args)])])[0][0]
    _raise_errors([reply])
    return reply


def _wait_for_replicas(groups: list[tuple[str, list[Command]]]) -> list[tuple[str, list[Command]]]:
    """With lookups on replicas, a write waits until the replicas hold it (WAIT, on the same connection): the next
    lookup, on any replica, sees it (read-your-writes). One WAIT per node, after the last of its calls: it covers
    every write sent before it on that connection."""
    if not settings.HEXINDEX_REDIS_REPLICA_READS:
        return groups
    wait = ("WAIT", settings.HEXINDEX_REDIS_REPLICAS, settings.HEXINDEX_REDIS_WAIT_MS)
    last_on_node = {node_for(tag): i for i, (tag, _) in enumerate(groups)}
    waiting = set(last_on_node.values())
    return [(tag, [*commands, wait] if i in waiting else commands) for i, (tag, commands) in enumerate(groups)]


def _check_replicas_acknowledged(reply: list[Any], sent: list[Command]) -> None:
    """A WAIT that _wait_for_replicas appended answered how many replicas hold the writes: all of them, or refuse."""
    if sent and sent[-1][0] == "WAIT" and int(reply[-1]) < settings.HEXINDEX_REDIS_REPLICAS:
        raise ReplicasBehind(
            f"{reply[-1]} of {settings.HEXINDEX_REDIS_REPLICAS} Redis replicas acknowledged the registration "
            f"within {settings.HEXINDEX_REDIS_WAIT_MS} ms"
        )


# --- reads (the lookup's path) ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Piggyback:
    """Commands another component (partners' rate limits) sends with a lookup's first read, saving it a round trip
    of its own: `commands` to their own key (`tag`: its hash tag), sent beside the lookup's transaction, and
    `in_bucket(tag)`: commands on keys of the lookup's own bucket, run inside its transaction. Their replies are
    kept in `replies` and `bucket_replies` (None when they were not sent: no Redis, or no read at all)."""

    commands: list[Command]
    tag: str | None = None
    in_bucket: Callable[[str], list[Command]] | None = None
    replies: list[Any] | None = None
    bucket_replies: list[Any] | None = None


@dataclass(slots=True)
class PointRecords:
    """What Redis holds for one point: per chain resolution, the raw interior and boundary records (None where
    absent), and the ids of areas pending at the point (None: more than were worth listing)."""

    bucket: int
    generation: int
    interior: list[bytes | None]
    boundary: list[bytes | None]
    pending: list[int] | None


_lookup_local = threading.local()


def _known_generations() -> dict[int, int]:
    """The generation this thread last saw per bucket (reset when the settings point elsewhere: tests)."""
    key = (settings.HEXINDEX_REDIS_URL, _prefix())
    if getattr(_lookup_local, "key", None) != key:
        _lookup_local.key, _lookup_local.generations = key, {}
    return _lookup_local.generations


class GenerationMoved(Exception):
    """A bucket's generation changed between reads (a rebuild switching): read again."""


def _read_buckets(
    requests: dict[int, Callable[[int], list[Command]]], also: Piggyback | None = None
) -> dict[int, tuple[int, list[Any]] | None]:
    """Per bucket, `commands(generation)` in a transaction with a read of the bucket's generation, all buckets (and
    `also`) in one round trip per node; a bucket whose generation changed since this thread last read it is read
    again. bucket -> (generation, replies), or None where the bucket has no index."""
    known = _known_generations()
    answers: dict[int, tuple[int, list[Any]] | None] = {}
    todo = dict(requests)
    for _ in range(3):
        if not todo:
            return answers
        order = list(todo)
        groups, extras = [], []
        for bucket in order:
            prefix = bucket_prefix(bucket)
            # A bucket not read yet is most likely at the generation the others are at.
            guess = known.get(bucket, next(iter(known.values()), 0))
            commands = [("GET", prefix + "gen"), *todo[bucket](guess)]
            extra = (
                also.in_bucket(bucket_tag(bucket)) if also and also.in_bucket and also.bucket_replies is None else []
            )
            extras.append(len(extra))
            groups.append((bucket_tag(bucket), [("MULTI",), *commands, *extra, ("EXEC",)], True))
        send_also = also is not None and also.replies is None and also.commands
        if send_also:
            groups.append((also.tag, also.commands, False))
        replies = send_groups(groups)
        if send_also:
            also.replies = replies[-1]
        for bucket, extra, reply in zip(order, extras, replies, strict=False):
            executed = reply[-1]
            if isinstance(executed, Exception):
                raise executed
            if extra:
                also.bucket_replies, executed = executed[len(executed) - extra :], executed[: len(executed) - extra]
            live = int(executed[0]) if executed[0] is not None else None
            if live is None:
                answers[bucket] = None
                del todo[bucket]
            elif live == known.get(bucket, next(iter(known.values()), 0)):
                known[bucket] = live
                answers[bucket] = (live, executed[1:])
                del todo[bucket]
            else:
                known[bucket] = live
    raise GenerationMoved("the generation keeps changing")


def _point_commands(bucket: int, anchor: str, cells: list[bytes], max_pending: int) -> Callable[[int], list[Command]]:
    fields = [cell + kind for cell in cells for kind in (codec.KIND_INTERIOR, codec.KIND_BOUNDARY)]
    prefix = bucket_prefix(bucket).encode()
    pending_keys = [prefix + b"p:" + cell for cell in cells]

    def commands(generation: int) -> list[Command]:
        return [
            ("HMGET", records_key(bucket, generation, anchor), *fields),
            ("SRANDMEMBER", prefix + b"p:all", max_pending + 1),
            ("SUNION", *pending_keys),
        ]

    return commands


def _point(bucket: int, generation: int, records: list, everywhere: list, here: list, max_pending: int) -> PointRecords:
    pending = set(everywhere) | set(here)
    return PointRecords(
        bucket,
        generation,
        records[0::2],
        records[1::2],
        None if len(pending) > max_pending else [int(i) for i in pending],
    )


def read_point(anchor: str, cells: list[bytes], max_pending: int, also: Piggyback | None = None) -> PointRecords | None:
    """One round trip: the records of the point's chain cells (fields <cell>i and <cell>b of its anchor's hash),
    the areas registered as pending everywhere (at most max_pending + 1 of them) and at its cells. None when Redis
    holds no live index for the point. Raises redis.RedisError when unreachable."""
    bucket = bucket_of(anchor)
    found = _read_buckets({bucket: _point_commands(bucket, anchor, cells, max_pending)}, also)[bucket]
    if found is None:
        return None
    generation, (records, everywhere, here) = found
    return _point(bucket, generation, records, everywhere, here, max_pending)


def read_points(points: list[tuple[str, list[bytes]]], max_pending: int) -> list[PointRecords] | None:
    """read_point for many points (anchor, chain cells): one transaction per bucket, one round trip per node. None
    when any of their buckets has no live index."""
    by_bucket: dict[int, list[int]] = defaultdict(list)
    for n, (anchor, _) in enumerate(points):
        by_bucket[bucket_of(anchor)].append(n)

    def commands_for(bucket: int) -> Callable[[int], list[Command]]:
        def commands(generation: int) -> list[Command]:
            prefix = bucket_prefix(bucket).encode()
            listed: list[Command] = [("SRANDMEMBER", prefix + b"p:all", max_pending + 1)]
            for n in by_bucket[bucket]:
                anchor, cells = points[n]
                fields = [cell + kind for cell in cells for kind in (codec.KIND_INTERIOR, codec.KIND_BOUNDARY)]
                listed.append(("HMGET", records_key(bucket, generation, anchor), *fields))
                listed.append(("SUNION", *(prefix + b"p:" + cell for cell in cells)))
            return listed

        return commands

    found = _read_buckets({bucket: commands_for(bucket) for bucket in by_bucket})
    answers: list[PointRecords | None] = [None] * len(points)
    for bucket, indexes in by_bucket.items():
        if found[bucket] is None:
            return None
        generation, replies = found[bucket]
        everywhere = replies[0]
        for k, n in enumerate(indexes):
            answers[n] = _point(bucket, generation, replies[1 + 2 * k], everywhere, replies[2 + 2 * k], max_pending)
    return answers  # type: ignore[return-value]


def read_results_and_shapes(
    wanted: dict[int, tuple[int, list[int], list[bytes]]],
) -> dict[int, tuple[list[bytes | None], list[bytes | None]]]:
    """Per bucket (its generation, area ids, shape fields): the cached results of the areas and the shared outlines
    (None where absent), all in one round trip per node. Raises GenerationMoved when a bucket's generation is no
    longer the one given."""
    groups, order = [], []
    for bucket, (generation, area_ids, shape_fields) in wanted.items():
        prefix = f"{bucket_prefix(bucket)}{generation}:"
        commands: list[Command] = [("GET", bucket_prefix(bucket) + "gen")]
        commands.append(("HMGET", prefix + "pay", *area_ids) if area_ids else ("ECHO", b""))
        commands.append(("HMGET", prefix + "s", *shape_fields) if shape_fields else ("ECHO", b""))
        groups.append((bucket_tag(bucket), [("MULTI",), *commands, ("EXEC",)], True))
        order.append(bucket)
    answers = {}
    for bucket, reply in zip(order, send_groups(groups), strict=True):
        executed = reply[-1]
        if isinstance(executed, Exception):
            raise executed
        generation, area_ids, shape_fields = wanted[bucket]
        if executed[0] is None or int(executed[0]) != generation:
            raise GenerationMoved("a bucket switched generation between the lookup's reads")
        answers[bucket] = (executed[1] if area_ids else [], executed[2] if shape_fields else [])
    return answers


def share_shapes(generation: int, shapes_by_bucket: dict[int, dict[bytes, bytes]]) -> None:
    """Outlines fetched from PostgreSQL, by bucket, for the other web processes (best effort): one round trip per
    node, however many buckets."""
    groups = []
    for bucket, shapes in shapes_by_bucket.items():
        if shapes:
            args: list[Any] = [settings.HEXINDEX_SHARED_SHAPES]
            for name, value in shapes.items():
                args += (name, value)
            key = f"{bucket_prefix(bucket)}{generation}:s"
            groups.append((bucket_tag(bucket), [_evalsha("put_shapes", key, args)]))
    if groups:
        for reply in _run_groups(groups, on_lookup_path=True):
            _raise_errors(reply)


# --- generations ---------------------------------------------------------------------------------------------------


def live_generation() -> int | None:
    value = client().get(gen_key())
    return int(value) if value is not None else None


def generations() -> tuple[int | None, int | None]:
    """(the generation writers write to, the one being built)."""
    live, building = client().get(gen_key()), client().get(building_key())
    return (int(live) if live is not None else None), (int(building.split(b":")[0]) if building else None)


def set_live_generation(generation: int) -> None:
    """Make `generation` the one writers write to and every bucket's lookups read (a fresh, empty index)."""
    pipe = client().pipeline(transaction=False)
    for bucket in range(buckets()):
        pipe.set(bucket_prefix(bucket) + "gen", generation)
    pipe.set(gen_key(), generation)
    pipe.execute()


def request_rebuild() -> bool:
    """Ask for a Redis rebuild at most once a minute, from however many processes notice it is missing."""
    return bool(client().set(_globals() + "requested", 1, nx=True, ex=60))


@dataclass(slots=True)
class RebuildLock:
    generation: int
    value: str


def begin_rebuild(lock_seconds: int) -> RebuildLock | None:
    """Claim the rebuild lock and a fresh generation number, or None when another rebuild holds it."""
    owner = secrets.token_hex(8)
    generation = _run("begin_rebuild", f"{{{_prefix()}g}}", gen_key(), [_globals(), lock_seconds, owner])
    return RebuildLock(int(generation), f"{int(generation)}:{owner}") if generation else None


def extend_rebuild(lock: RebuildLock, lock_seconds: int) -> bool:
    """Keep the lock while working, atomically; False when it was lost (expired and taken by another rebuild)."""
    return bool(_run("extend_rebuild", f"{{{_prefix()}g}}", building_key(), [lock.value, lock_seconds]))


def take_dirty(generation: int, count: int = 1000) -> list[int]:
    """Areas made live in the live generation while `generation` was built: to be copied into it."""
    found: set[int] = set()
    pipe = client().pipeline(transaction=False)
    for bucket in range(buckets()):
        pipe.spop(f"{bucket_prefix(bucket)}dirty:{generation}", count)
    for popped in pipe.execute():
        found.update(int(i) for i in popped or [])
    return sorted(found)


def switch_buckets(lock: RebuildLock) -> bool:
    """Switch every bucket's lookups to the rebuilt generation, then the writers. False while areas changed
    meanwhile are still to be copied into it (some buckets may have switched already: each is consistent)."""
    generation = lock.generation
    groups = [
        (bucket_tag(b), [_evalsha("switch_bucket", bucket_prefix(b) + "gen", [bucket_prefix(b), generation])])
        for b in range(buckets())
    ]
    results = [group[0] for group in _run_groups(groups)]
    _raise_errors(results)
    if not all(int(result) == 1 for result in results):
        return False
    if not extend_rebuild(lock, 60):
        raise RuntimeError(f"the rebuild of generation {generation} lost its lock")
    pipe = client().pipeline(transaction=False)
    pipe.set(gen_key(), generation)
    pipe.delete(building_key())
    pipe.execute()
    return True


def abandon_rebuild(lock: RebuildLock) -> None:
    if client().get(building_key()) == lock.value.encode():
        client().delete(building_key())
    drop_generation(lock.generation)


def drop_generation(generation: int) -> int:
    """Delete every key of a generation nobody reads any more (on every node of a cluster)."""
    redis_client = client()
    nodes = redis_client.get_primaries() if core_redis.is_cluster() else [None]  # type: ignore[attr-defined]
    deleted = 0
    for node in nodes:
        scan = (
            redis_client.scan_iter(match=f"{_prefix()}:*:{generation}:*", count=5000, target_nodes=node)
            if node is not None
            else redis_client.scan_iter(match=f"{_prefix()}:*:{generation}:*", count=5000)
        )
        batch: list[bytes] = []
        for key in scan:
            batch.append(key)
            if len(batch) >= 1000:
                deleted += _unlink(redis_client, batch)
                batch = []
        deleted += _unlink(redis_client, batch)
    return deleted


def _unlink(redis_client, keys: list[bytes]) -> int:
    if not keys:
        return 0
    if not core_redis.is_cluster():
        return int(redis_client.unlink(*keys))
    pipe = redis_client.pipeline(transaction=False)  # one key per command: any slot
    for key in keys:
        pipe.unlink(key)
    return sum(int(n) for n in pipe.execute())


def live_versions(generation: int) -> dict[int, tuple[int, int]]:
    """area id -> (geometry version, payload version) of every area live in the generation."""
    found = {}
    for shard in range(buckets()):
        for area_id, value in client().hscan_iter(f"{shard_prefix(shard)}{generation}:v", count=10_000):
            found[int(area_id)] = codec.decode_versions(value)
    return found


def memory_bytes() -> int:
    if core_redis.is_cluster():
        return sum(int(info["used_memory"]) for info in client().info("memory", target_nodes="primaries").values())
    return int(client().info("memory")["used_memory"])


# --- pending registrations -----------------------------------------------------------------------------------------


class OwnerBusy(redis.exceptions.ResponseError):
    """The owner's write would take it past its limits on pending registrations (owner_claim.lua, mark_bucket.lua)."""


class ReplicasBehind(redis.exceptions.RedisError):
    """Lookups read replicas, and not all of them acknowledged a registration within HEXINDEX_REDIS_WAIT_MS (WAIT):
    a lookup there could still use the records the write makes stale, so the write must not commit. Redis itself
    answers; only the replicas lag (or one is down)."""


@lru_cache(maxsize=65_536)
def _cell_buckets(cell: int) -> frozenset[int]:
    """The buckets a lookup could meet a registration at this cell in: its anchor's, or for a cell coarser than the
    anchors, those of every anchor below it."""
    return frozenset(bucket_of(codec.anchor_name(anchor)) for anchor in codec.anchors(cell))


def registration_buckets(cells: bytes | None) -> dict[int, bytes]:
    """bucket -> the packed cells of a registration that belong there (EVERYWHERE: every bucket, `b"all"`)."""
    if cells is EVERYWHERE:
        return dict.fromkeys(range(buckets()), b"all")
    by_bucket: dict[int, list[bytes]] = defaultdict(list)
    for i in range(0, len(cells), 8):
        packed = cells[i : i + 8]
        for bucket in _cell_buckets(int.from_bytes(packed, "big")):
            by_bucket[bucket].append(packed)
    return {bucket: b"".join(parts) for bucket, parts in by_bucket.items()}


def mark_pending(registrations: dict[int, bytes | None], owner_id: int | None = None) -> str:
    """Register areas as pending at cells (packed, see codec.pack_cells) or EVERYWHERE, in every bucket concerned.
    Returns the change token. With `owner_id`, the write is an owner's and held to its limits (OwnerBusy, and
    nothing registered). Raises redis.RedisError when Redis cannot be reached (the caller's transaction must not
    commit then)."""
    if not registrations:
        return ""
    token = f"{client().incr(_globals() + 'seq')}:{int(time.time())}"
    claimed: list[bytes] = []
    if owner_id is not None:
        if len(registrations) > settings.HEXINDEX_PENDING_AREAS_PER_OWNER:
            raise OwnerBusy("too many areas at once")
        try:
            claimed = _run(
                "owner_claim",
                f"{{{_prefix()}o{owner_id}}}",
                _owner_key(owner_id),
                [settings.HEXINDEX_PENDING_AREAS_PER_OWNER, *registrations],
            )
        except redis.exceptions.ResponseError as exc:
            raise OwnerBusy(str(exc).removeprefix("INDEXBUSY ")) from exc
    try:
        _register(registrations, token, owner_id)
    except BaseException:
        if claimed:
            client().srem(_owner_key(owner_id), *claimed)  # type: ignore[arg-type]
        raise
    return token


def _register(registrations: dict[int, bytes | None], token: str, owner_id: int | None) -> None:
    max_cells = settings.HEXINDEX_PENDING_CELLS_PER_AREA if owner_id is not None else 0
    per_bucket: dict[int, list[Any]] = defaultdict(list)
    per_shard: dict[int, list[Any]] = defaultdict(list)
    for area_id, cells in registrations.items():
        placed = registration_buckets(cells)
        for bucket, bucket_cells in placed.items():
            per_bucket[bucket] += (area_id, bucket_cells)
        per_shard[shard_of(area_id)] += (area_id, token, pack_buckets(placed), "" if owner_id is None else owner_id)
    # The shards first (the owner's cells limit is checked there, before anything is registered), then the
    # buckets: lookups ignore the areas' records from then on.
    shard_groups = [
        (
            shard_tag(shard),
            [_evalsha("mark_shard", shard_prefix(shard) + "tok", [shard_prefix(shard), max_cells, *args])],
        )
        for shard, args in per_shard.items()
    ]
    for reply in _run_groups(shard_groups):
        if isinstance(reply[0], redis.exceptions.ResponseError) and str(reply[0]).startswith("INDEXBUSY"):
            raise OwnerBusy(str(reply[0]).removeprefix("INDEXBUSY "))
        _raise_errors(reply)
    groups = [
        (
            bucket_tag(bucket),
            [_evalsha("mark_bucket", bucket_prefix(bucket) + "pending", [bucket_prefix(bucket), token, *args])],
        )
        for bucket, args in per_bucket.items()
    ]
    added: dict[int, int] = defaultdict(int)
    waiting = _wait_for_replicas(groups)
    for reply, (_, sent) in zip(_run_groups(waiting), waiting, strict=True):
        _raise_errors(reply)
        _check_replicas_acknowledged(reply, sent)
        counts = reply[0]
        for i in range(0, len(counts), 2):
            added[int(counts[i])] += int(counts[i + 1])
    # Cells newly registered, per area, for the owner's cells limit (an area registered everywhere adds none).
    pipe = client().pipeline(transaction=False)
    for area_id, count in added.items():
        if count:
            pipe.hincrby(shard_prefix(shard_of(area_id)) + "pn", area_id, count)
    pipe.execute()


def _shard_hashes(area_ids: list[int], part: str) -> dict[int, bytes | None]:
    """area id -> its value in its shard's hash `part` (tok, pb, own, G:rb, G:v)."""
    by_shard: dict[int, list[int]] = defaultdict(list)
    for area_id in area_ids:
        by_shard[shard_of(area_id)].append(area_id)
    pipe = client().pipeline(transaction=False)
    order = list(by_shard)
    for shard in order:
        pipe.hmget(shard_prefix(shard) + part, by_shard[shard])
    found: dict[int, bytes | None] = {}
    for shard, values in zip(order, pipe.execute(), strict=True):
        found.update(zip(by_shard[shard], values, strict=True))
    return found


def pending_tokens(area_ids: Iterable[int]) -> dict[int, str]:
    """area_id -> current change token ("" when not pending). Read before reading the database for a build."""
    area_ids = list(area_ids)
    if not area_ids:
        return {}
    return {area_id: (value.decode() if value else "") for area_id, value in _shard_hashes(area_ids, "tok").items()}


def pending_tokens_all() -> dict[int, str]:
    found = {}
    for shard in range(buckets()):
        for area_id, token in client().hscan_iter(shard_prefix(shard) + "tok", count=10_000):
            found[int(area_id)] = token.decode()
    return found


def pending_since() -> dict[int, float]:
    """area_id -> unix time it was last registered as pending."""
    return {area_id: float(token.rsplit(":", 1)[1]) for area_id, token in pending_tokens_all().items()}


def unpend(tokens: dict[int, str]) -> set[int]:
    """Clear the pending registrations of areas whose token is still the given one ('*': whatever it is). Returns
    the ids cleared."""
    if not tokens:
        return set()
    registered = _shard_hashes(list(tokens), "pb")
    per_bucket: dict[int, list[Any]] = defaultdict(list)
    for area_id, token in tokens.items():
        for bucket in unpack_buckets(registered[area_id]):
            per_bucket[bucket] += (area_id, token)
    cleared_in: dict[int, set[int]] = defaultdict(set)
    groups = [
        (bucket_tag(b), [_evalsha("unpend_bucket", bucket_prefix(b) + "pending", [bucket_prefix(b), *args])])
        for b, args in per_bucket.items()
    ]
    for bucket, reply in zip(list(per_bucket), _run_groups(groups), strict=True):
        _raise_errors(reply)
        for area_id in reply[0]:
            cleared_in[int(area_id)].add(bucket)
    return _finish_shards(
        None, {area_id: (token, None, cleared_in.get(area_id, set())) for area_id, token in tokens.items()}
    )


def _finish_shards(
    generation: int | None, outcomes: dict[int, tuple[str, tuple[bytes, bytes] | None, set[int]]]
) -> set[int]:
    """Per area (expected token, (record buckets, versions) to record in `generation`, or None to leave them,
    buckets where its registration was cleared): the shard's record; areas no longer pending anywhere leave their
    owner's count. Returns those."""
    per_shard: dict[int, list[Any]] = defaultdict(list)
    for area_id, (token, live, cleared) in outcomes.items():
        record_buckets, versions = live if live is not None else (b"-", b"-")
        per_shard[shard_of(area_id)] += (area_id, token, record_buckets, versions, pack_buckets(cleared))
    groups = [
        (
            shard_tag(shard),
            [_evalsha("finish_shard", shard_prefix(shard) + "tok", [shard_prefix(shard), generation or "", *args])],
        )
        for shard, args in per_shard.items()
    ]
    done: set[int] = set()
    owners: dict[int, list[int]] = defaultdict(list)
    for reply in _run_groups(groups):
        _raise_errors(reply)
        pairs = reply[0]
        for i in range(0, len(pairs), 2):
            area_id = int(pairs[i])
            done.add(area_id)
            if pairs[i + 1]:
                owners[int(pairs[i + 1])].append(area_id)
    if owners:
        pipe = client().pipeline(transaction=False)
        for owner_id, area_ids in owners.items():
            pipe.srem(_owner_key(owner_id), *area_ids)
        pipe.execute()
    return done


# --- making areas live, or forgetting them ---------------------------------------------------------------------


@dataclass(slots=True)
class AreaUpdate:
    """One area's change to one generation: its records by bucket (none: forget it), its cached result and
    versions; `token` the change token read before the build read the database ('*': do not check)."""

    area_id: int
    token: str
    records: dict[int, list[tuple[str, bytes, bytes]]] = field(default_factory=dict)  # bucket -> (anchor, field, rec)
    payload: bytes = b""
    versions: bytes = b""
    clear_pending: bool = True


def records_by_bucket(edits: Iterable[tuple[str, bytes, bytes]]) -> dict[int, list[tuple[str, bytes, bytes]]]:
    grouped: dict[int, list[tuple[str, bytes, bytes]]] = defaultdict(list)
    for anchor, name, record in edits:
        grouped[bucket_of(anchor)].append((anchor, name, record))
    return dict(grouped)


def apply(generation: int, updates: list[AreaUpdate]) -> list[int]:
    """Apply each update in every bucket it concerns (those of its new records, of its records in the generation,
    of its pending registrations), bucket by bucket atomically, then record the result in its shard. Returns
    APPLIED, or TOKEN_MOVED for an area registered again since its token was read (left as it is)."""
    if not updates:
        return []
    area_ids = [update.area_id for update in updates]
    tokens = _shard_hashes(area_ids, "tok")
    registered = _shard_hashes(area_ids, "pb")
    recorded = _shard_hashes(area_ids, f"{generation}:rb")
    _, building = generations()
    results = {}
    groups, owners_of_group = [], []
    for update in updates:
        current = (tokens[update.area_id] or b"").decode()
        if update.token != "*" and current != update.token:
            results[update.area_id] = TOKEN_MOVED
            continue
        visit = (
            set(update.records) | unpack_buckets(registered[update.area_id]) | unpack_buckets(recorded[update.area_id])
        )
        for bucket in sorted(visit):
            args: list[Any] = [
                bucket_prefix(bucket),
                generation,
                building if building not in (None, generation) else "",
                update.area_id,
                update.token,
                "p" if update.clear_pending else "",
                update.payload if update.records.get(bucket) else b"",
            ]
            for anchor, name, record in update.records.get(bucket, []):
                args += (anchor, name, record)
            key = f"{bucket_prefix(bucket)}{generation}:af"
            groups.append((bucket_tag(bucket), [_evalsha("apply_bucket", key, args)]))
            owners_of_group.append((update.area_id, bucket))
    outcomes: dict[int, tuple[str, tuple[bytes, bytes] | None, set[int]]] = {}
    moved: set[int] = set()
    held: dict[int, set[int]] = defaultdict(set)
    cleared: dict[int, set[int]] = defaultdict(set)
    for (area_id, bucket), reply in zip(owners_of_group, _run_groups(groups), strict=True):
        _raise_errors(reply)
        applied, was_cleared = (int(value) for value in reply[0])
        if not applied:
            moved.add(area_id)
            held[area_id].add(bucket)  # its old records may still be there
        if was_cleared:
            cleared[area_id].add(bucket)
    for update in updates:
        if update.area_id in results:
            continue
        refused = held[update.area_id]
        with_records = {b for b, records in update.records.items() if records and b not in refused} | refused
        live = (pack_buckets(with_records), update.versions if with_records else b"")
        expected = update.token if update.clear_pending else "\x00never"
        outcomes[update.area_id] = (expected, live, cleared[update.area_id])
        results[update.area_id] = TOKEN_MOVED if update.area_id in moved else APPLIED
    if outcomes:
        _finish_shards(generation, outcomes)
    return [results[area_id] for area_id in area_ids]


# --- bulk writes (a rebuild) -----------------------------------------------------------------------------------


def write_records(generation: int, fields_by_anchor: dict[str, dict[bytes, bytes]], chunk: int = 5000) -> None:
    """Write whole record fields of a generation nobody reads yet."""
    pipe = client().pipeline(transaction=False)
    queued = 0
    for anchor, fields in fields_by_anchor.items():
        key = records_key(bucket_of(anchor), generation, anchor)
        items = list(fields.items())
        for start in range(0, len(items), chunk):
            pipe.hset(key, mapping=dict(items[start : start + chunk]))
            queued += 1
        if queued >= 200:
            pipe.execute()
            queued = 0
    pipe.execute()


def write_placements(generation: int, placements: dict[int, dict[int, bytes]], payloads: dict[int, bytes]) -> None:
    """Per bucket, area -> where its records are there (24-byte units), and the areas' cached results there."""
    pipe = client().pipeline(transaction=False)
    for bucket, by_area in placements.items():
        prefix = f"{bucket_prefix(bucket)}{generation}:"
        items = list(by_area.items())
        for start in range(0, len(items), 5000):
            part = dict(items[start : start + 5000])
            pipe.hset(prefix + "af", mapping=part)
            pipe.hset(prefix + "pay", mapping={area_id: payloads[area_id] for area_id in part})
    pipe.execute()


def write_areas(generation: int, record_buckets: dict[int, bytes], versions: dict[int, bytes]) -> None:
    """Per area shard: the buckets holding each area's records, and its versions."""
    by_shard: dict[int, list[int]] = defaultdict(list)
    for area_id in versions:
        by_shard[shard_of(area_id)].append(area_id)
    pipe = client().pipeline(transaction=False)
    for shard, area_ids in by_shard.items():
        prefix = f"{shard_prefix(shard)}{generation}:"
        pipe.hset(prefix + "rb", mapping={area_id: record_buckets.get(area_id, b"") for area_id in area_ids})
        pipe.hset(prefix + "v", mapping={area_id: versions[area_id] for area_id in area_ids})
    pipe.execute()


__all__ = ["Command", "breaker", "send"]
