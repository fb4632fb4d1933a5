"""The index's Redis side: the only module that knows Redis key names. Derived data: it can always be rebuilt from
PostgreSQL (hexindex.maintenance.rebuild_redis).

Keys (logical database HEXINDEX_REDIS_URL):

    hx:gen                  the live generation G; absent = no usable index (lookups fall back to PostGIS)
    hx:G:c:<anchor hex>     hash: field <cell><kind> -> the records of the areas holding that cell (hexindex.codec)
    hx:G:a                  hash: area id -> its state (versions and the cells holding its records)
    hx:G:v                  hash: area id -> "<geometry version>:<payload version>" (for the sweep's reconcile)
    hx:G:pay                hash: area id -> <version><price in cents><its lookup result, serialised>
    hx:G:s                  hash: <area><cell> -> <version><outline segments near the cell>, shared between web
                            processes once one fetched them from PostgreSQL (capped: HEXINDEX_SHARED_SHAPES)
    hx:building             generation being rebuilt, while a rebuild runs (also its lock)
    hx:dirty:G              areas made live in the live generation while G was being built
    hx:pending              hash: area id -> change token, for areas whose records are not to be trusted
    hx:pcells               hash: area id -> the cells (8 bytes each) it is registered at as pending
    hx:p:<cell, 8 bytes>    set of pending area ids registered at that cell; hx:p:all for everywhere
    hx:po:<owner>           set of the areas an owner's writes registered as pending (its limit: mark_pending.lua)
    hx:pown                 hash: area id -> the owner it is counted for in hx:po:<owner>
    hx:seq                  counter for change tokens
    hx:gen:counter          last generation number handed out
    hx:rebuild:requested    set for a minute when a rebuild was requested

Every write that changes what a lookup would return registers the area as pending *before* its transaction
commits (hexindex.invalidation); a lookup ignores the records of areas pending at its point and checks those
areas in PostGIS. A build makes an area live again with a compare-and-set on its change token (apply.lua), so
a build that read the database before a later change can never hide that change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import redis
from django.conf import settings

from core import redis as core_redis
from core.redis import send
from hexindex import codec

GEN_KEY = "hx:gen"
BUILDING_KEY = "hx:building"
REBUILD_REQUESTED_KEY = "hx:rebuild:requested"
PENDING_KEY = "hx:pending"
PENDING_CELLS_KEY = "hx:pcells"
PENDING_EVERYWHERE_KEY = "hx:p:all"
EVERYWHERE = None  # a registration that covers the whole world

_LUA = Path(__file__).with_name("lua")


def _key(generation: int, part: str) -> str:
    return f"hx:{generation}:{part}"


def records_key(generation: int, anchor: str) -> str:
    return _key(generation, f"c:{anchor}")


def client() -> redis.Redis:
    """The index's Redis connection pool (per process, per URL: tests may point it elsewhere)."""
    return core_redis.index_client()


@lru_cache(maxsize=32)
def _script(redis_client: redis.Redis, name: str):
    return redis_client.register_script((_LUA / f"{name}.lua").read_text())


def _run(name: str, args: list, redis_client: redis.Redis | None = None):
    redis_client = redis_client or client()
    return _script(redis_client, name)(args=args, client=redis_client)


# The lookup's reads are MULTI/EXEC transactions of plain commands over core.redis's per-thread connection, not
# scripts: Redis answers them in C (a script would copy every record into Lua and back), and atomically, so the
# generation they name is the live one.
_lookup_local = threading.local()


def _read_live(command: Callable[[int], list[tuple]], also: Piggyback | None = None) -> tuple[int, list] | None:
    """Run `command(generation)` in a transaction with a read of the live generation, retrying once when the
    generation this thread last saw has been replaced. None when no generation is live. `also`: commands of
    another component sent in the same round trip, after the transaction (once, whatever happens next; their
    replies kept there): outside it, so that their failing (a full Redis refusing a counter's write) cannot abort
    the lookup's read."""
    if getattr(_lookup_local, "url", None) != settings.HEXINDEX_REDIS_URL:  # another Redis (tests): start afresh
        _lookup_local.url, _lookup_local.generation = settings.HEXINDEX_REDIS_URL, None
    for _ in range(3):
        known = _lookup_local.generation
        extra = also.commands if also is not None and also.replies is None else []
        reads = [("GET", GEN_KEY), *command(known if known is not None else 0)]
        replies = send([("MULTI",), *reads, ("EXEC",), *extra])
        reply = replies[len(reads) + 1]
        if extra:
            also.replies = replies[len(reads) + 2 :]
        if isinstance(reply, Exception):
            raise reply
        live = int(reply[0]) if reply[0] is not None else None
        if live is None:
            return None
        if live == known:
            return live, reply[1:]
        _lookup_local.generation = live
    raise redis.exceptions.RedisError("the live generation keeps changing")


@dataclass(slots=True)
class Piggyback:
    """Commands another component (partners' rate limits) sends along with a lookup's first read, saving it a
    round trip of its own. `replies` stays None when they were not sent (no Redis, or no read at all)."""

    commands: list[tuple]
    replies: list | None = None


# --- reads -------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class PointRecords:
    """What Redis holds for one point: per chain resolution, the raw interior and boundary records (None where
    absent), and the ids of areas pending at the point (None: more than were worth listing)."""

    generation: int
    interior: list[bytes | None]
    boundary: list[bytes | None]
    pending: list[int] | None


def read_point(anchor: str, cells: list[bytes], max_pending: int, also: Piggyback | None = None) -> PointRecords | None:
    """One Redis round trip: the records of the point's chain cells (fields <cell>i and <cell>b of its anchor's
    hash), the areas registered as pending everywhere (at most max_pending + 1 of them) and at its cells. None when
    Redis holds no live index. Raises redis.RedisError when unreachable."""
    fields = [cell + kind for cell in cells for kind in (codec.KIND_INTERIOR, codec.KIND_BOUNDARY)]
    pending_keys = [b"hx:p:" + cell for cell in cells]

    def commands(generation: int) -> list[tuple]:
        return [
            ("HMGET", records_key(generation, anchor), *fields),
            ("SRANDMEMBER", PENDING_EVERYWHERE_KEY, max_pending + 1),
            ("SUNION", *pending_keys),
        ]

    found = _read_live(commands, also)
    if found is None:
        return None
    generation, (records, everywhere, here) = found
    pending = set(everywhere) | set(here)
    return PointRecords(
        generation, records[0::2], records[1::2], None if len(pending) > max_pending else [int(i) for i in pending]
    )


def read_points(points: list[tuple[str, list[bytes]]], max_pending: int) -> list[PointRecords] | None:
    """read_point for many points (anchor, chain cells) in one round trip, one transaction."""
    everywhere_at = 0

    def commands(generation: int) -> list[tuple]:
        listed = [("SRANDMEMBER", PENDING_EVERYWHERE_KEY, max_pending + 1)]
        for anchor, cells in points:
            fields = [cell + kind for cell in cells for kind in (codec.KIND_INTERIOR, codec.KIND_BOUNDARY)]
            listed.append(("HMGET", records_key(generation, anchor), *fields))
            listed.append(("SUNION", *(b"hx:p:" + cell for cell in cells)))
        return listed

    found = _read_live(commands)
    if found is None:
        return None
    generation, replies = found
    everywhere = set(replies[everywhere_at])
    answers = []
    for n in range(len(points)):
        records, here = replies[1 + 2 * n], replies[2 + 2 * n]
        pending = everywhere | set(here)
        answers.append(
            PointRecords(
                generation,
                records[0::2],
                records[1::2],
                None if len(pending) > max_pending else [int(i) for i in pending],
            )
        )
    return answers


def read_results_and_shapes(
    area_ids: list[int], shape_fields: list[bytes]
) -> tuple[int, list[bytes | None], list[bytes | None]] | None:
    """One round trip: the live generation, the cached results of the areas, and the shared outlines (None where
    absent). None without an index."""

    def commands(generation: int) -> list[tuple]:
        return [
            ("HMGET", _key(generation, "pay"), *area_ids) if area_ids else ("ECHO", b""),
            ("HMGET", _key(generation, "s"), *shape_fields) if shape_fields else ("ECHO", b""),
        ]

    found = _read_live(commands)
    if found is None:
        return None
    generation, (results, shapes) = found
    return generation, (results if area_ids else []), (shapes if shape_fields else [])


def share_shapes(generation: int, shapes: dict[bytes, bytes]) -> None:
    """Outlines fetched from PostgreSQL, for the other web processes (best effort)."""
    if shapes:
        args = [_key(generation, "s"), settings.HEXINDEX_SHARED_SHAPES]
        for name, value in shapes.items():
            args += (name, value)
        _run("put_shapes", args)


def live_generation() -> int | None:
    value = client().get(GEN_KEY)
    return int(value) if value is not None else None


def generations() -> tuple[int | None, int | None]:
    """(live, being built)."""
    live, building = client().mget(GEN_KEY, BUILDING_KEY)
    return (int(live) if live is not None else None), (int(building) if building is not None else None)


def area_states(generation: int, area_ids: list[int]) -> dict[int, bytes | None]:
    if not area_ids:
        return {}
    values = client().hmget(_key(generation, "a"), area_ids)
    return dict(zip(area_ids, values, strict=True))


def live_versions(generation: int) -> dict[int, tuple[int, int]]:
    """area id -> (geometry version, payload version) of every area live in the generation."""
    return {
        int(area_id): codec.decode_versions(value)
        for area_id, value in client().hscan_iter(_key(generation, "v"), count=10_000)
    }


def memory_bytes() -> int:
    return int(client().info("memory")["used_memory"])


# --- pending registrations ------------------------------------------------------------------------------------


class OwnerBusy(redis.exceptions.ResponseError):
    """The owner's write would take it past its limits on pending registrations (mark_pending.lua)."""


def mark_pending(registrations: dict[int, bytes | None], owner_id: int | None = None) -> str:
    """Register areas as pending at cells (packed, see codec.pack_cells) or EVERYWHERE. Returns the change token.
    With `owner_id`, the write is an owner's and held to its limits (OwnerBusy, and nothing registered). Raises
    redis.RedisError when Redis cannot be reached (the caller's transaction must not commit then)."""
    token = ""
    items = list(registrations.items())
    limits = (
        [owner_id, settings.HEXINDEX_PENDING_AREAS_PER_OWNER, settings.HEXINDEX_PENDING_CELLS_PER_AREA]
        if owner_id is not None
        else ["", 0, 0]
    )
    if owner_id is not None and len(items) > 500:
        raise OwnerBusy("INDEXBUSY too many areas at once")  # one script call decides for all of them
    for start in range(0, len(items), 500):  # each call blocks Redis: keep them short
        args: list = [int(time.time()), *limits]
        for area_id, cells in items[start : start + 500]:
            args += (area_id, b"all" if cells is EVERYWHERE else cells)
        try:
            token = _run("mark_pending", args).decode()
        except redis.exceptions.ResponseError as exc:
            if str(exc).startswith("INDEXBUSY"):
                raise OwnerBusy(str(exc).removeprefix("INDEXBUSY ")) from exc
            raise
    return token


def pending_tokens(area_ids: Iterable[int]) -> dict[int, str]:
    """area_id -> current change token ("" when not pending). Read before reading the database for a build."""
    area_ids = list(area_ids)
    if not area_ids:
        return {}
    values = client().hmget(PENDING_KEY, area_ids)
    return {area_id: (value.decode() if value else "") for area_id, value in zip(area_ids, values, strict=True)}


def pending_tokens_all() -> dict[int, str]:
    return {int(area_id): token.decode() for area_id, token in client().hscan_iter(PENDING_KEY, count=10_000)}


def pending_since() -> dict[int, float]:
    """area_id -> unix time it was last registered as pending."""
    return {area_id: float(token.rsplit(":", 1)[1]) for area_id, token in pending_tokens_all().items()}


def unpend(tokens: dict[int, str], chunk: int = 1000) -> set[int]:
    """Clear the pending registrations of areas whose token is still the given one. Returns the ids cleared."""
    cleared: set[int] = set()
    items = list(tokens.items())
    for start in range(0, len(items), chunk):
        args = [value for pair in items[start : start + chunk] for value in pair]
        cleared.update(int(i) for i in _run("unpend", args))
    return cleared


# --- making areas live, or forgetting them -------------------------------------------------------------------


APPLIED, TOKEN_MOVED, STATE_MOVED = 1, 0, -1


@dataclass(slots=True)
class AreaUpdate:
    """One area's change to one generation (see apply.lua). `state` b"" forgets the area."""

    area_id: int
    token: str  # expected change token; "*" skips the check
    expected_state: bytes  # b"" when the area has no state in the generation
    state: bytes
    versions: bytes
    payload: bytes
    edits: list[tuple[str, bytes, bytes]]  # (anchor, field, record or b"" to remove)
    clear_pending: bool
    note_for_rebuild: bool

    def args(self, generation: int) -> list:
        flags = ("p" if self.clear_pending else "") + ("d" if self.note_for_rebuild else "")
        args = [generation, self.area_id, self.token, self.expected_state, self.state, self.versions, self.payload]
        args.append(flags)
        for edit in self.edits:
            args.extend(edit)
        return args


def apply(generation: int, updates: list[AreaUpdate]) -> list[int]:
    """Apply the updates in one round trip (each atomically). Returns APPLIED, TOKEN_MOVED or STATE_MOVED per
    update."""
    redis_client = client()
    script = _script(redis_client, "apply")
    pipe = redis_client.pipeline(transaction=False)
    for update in updates:
        script(args=update.args(generation), client=pipe)
    return [int(result) for result in pipe.execute()]


# --- generations ---------------------------------------------------------------------------------------------


def request_rebuild() -> bool:
    """Ask for a Redis rebuild at most once a minute, from however many processes notice it is missing."""
    return bool(client().set(REBUILD_REQUESTED_KEY, 1, nx=True, ex=60))


def begin_rebuild(lock_seconds: int) -> int | None:
    """Claim the rebuild lock and return a fresh generation number, or None when another rebuild holds it."""
    generation = _run("begin_rebuild", [lock_seconds])
    return int(generation) if generation else None


def extend_rebuild(generation: int, lock_seconds: int) -> bool:
    """Keep the lock while working; False when it was lost (expired and taken by another rebuild)."""
    redis_client = client()
    if int(redis_client.get(BUILDING_KEY) or 0) != generation:
        return False
    redis_client.expire(BUILDING_KEY, lock_seconds)
    return True


def take_dirty(generation: int, count: int = 1000) -> list[int]:
    """Areas made live in the live generation while `generation` was built: to be copied into it."""
    return [int(i) for i in client().spop(f"hx:dirty:{generation}", count) or []]


def finish_rebuild(generation: int) -> tuple[int, int | None]:
    """Switch lookups to `generation`. Returns (1, replaced generation) when switched, (0, None) while areas
    changed meanwhile still have to be copied into it, (-1, None) when the rebuild lost its lock."""
    reply = _run("finish_rebuild", [generation])
    status = int(reply[0])
    previous = reply[1] if status == 1 and len(reply) > 1 else b""
    return status, (int(previous) if previous else None)


def abandon_rebuild(generation: int) -> None:
    redis_client = client()
    if int(redis_client.get(BUILDING_KEY) or 0) == generation:
        redis_client.delete(BUILDING_KEY)
    drop_generation(generation)


def drop_generation(generation: int) -> int:
    """Delete every key of a generation nobody reads any more. A lookup reads the live generation number and its
    keys in one atomic script, so it never sees a generation half-deleted."""
    redis_client = client()
    deleted = 0
    batch: list[bytes] = []
    for key in redis_client.scan_iter(match=f"hx:{generation}:*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            deleted += redis_client.unlink(*batch)
            batch.clear()
    if batch:
        deleted += redis_client.unlink(*batch)
    redis_client.unlink(f"hx:dirty:{generation}")
    return deleted


# --- bulk writes (a rebuild) -----------------------------------------------------------------------------------


def write_records(generation: int, fields_by_anchor: dict[str, dict[bytes, bytes]], chunk: int = 5000) -> None:
    """Write whole record fields of a generation nobody reads yet."""
    redis_client = client()
    pipe = redis_client.pipeline(transaction=False)
    pending = 0
    for anchor, fields in fields_by_anchor.items():
        items = list(fields.items())
        for start in range(0, len(items), chunk):
            pipe.hset(records_key(generation, anchor), mapping=dict(items[start : start + chunk]))
            pending += 1
        if pending >= 200:
            pipe.execute()
            pending = 0
    pipe.execute()


def write_areas(generation: int, states: dict[int, bytes], versions: dict[int, bytes], payloads: dict[int, bytes]):
    redis_client = client()
    pipe = redis_client.pipeline(transaction=False)
    for part, values in (("a", states), ("v", versions), ("pay", payloads)):
        items = list(values.items())
        for start in range(0, len(items), 10_000):
            pipe.hset(_key(generation, part), mapping=dict(items[start : start + 10_000]))
    pipe.execute()
