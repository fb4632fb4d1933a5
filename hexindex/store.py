"""Where the index lives: the cell table in PostgreSQL (the source of truth) and its Redis mirror. This is the only
module that knows Redis key names or writes the cell table.

Redis layout (logical database HEXINDEX_REDIS_URL):

    hx:gen                    the live generation G; absent = no usable index (lookups fall back to PostGIS)
    hx:building               generation being rebuilt, while a rebuild runs (also its lock)
    hx:G:i:<cell hex>         set of members whose area holds <cell> entirely (interior)
    hx:G:b:<cell hex>         set of members whose area crosses <cell> (boundary: check exactly)
    hx:p:<area id>            "<payload_version>|<json>": the area's lookup result, pre-serialised

A member is `area_id << 16 | (version & 0xFFFF)`, where version is the geometry version the cell was computed
from. A lookup only trusts a member whose version matches the area's live index in PostgreSQL, so entries left
behind by an old geometry (a failed cleanup, a crash) are harmless, and a rebuild never races an update.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterable, Iterator
from functools import lru_cache

import h3.api.basic_int as h3
import redis
from django.conf import settings
from django.db import connection

AREA_SHIFT = 16  # the Lua script divides by 2**16 to find the area
RES_SHIFT = 12
VERSION_MASK = (1 << RES_SHIFT) - 1
GEN_KEY = "hx:gen"
BUILDING_KEY = "hx:building"
GEN_COUNTER_KEY = "hx:gen:counter"
REBUILD_REQUESTED_KEY = "hx:rebuild:requested"
PAYLOAD_PREFIX = "hx:p:"
MGET_CHUNK = 1000

# One round trip for a lookup: the live generation, the interior and boundary members of the point's cells, and
# the cached payloads of every candidate. Returns false when there is no live generation.
_LOOKUP_LUA = """
local gen = redis.call('GET', KEYS[1])
if not gen then return false end
local interior_keys, boundary_keys = {}, {}
for i = 1, #ARGV do
  interior_keys[i] = 'hx:' .. gen .. ':i:' .. ARGV[i]
  boundary_keys[i] = 'hx:' .. gen .. ':b:' .. ARGV[i]
end
local interior = redis.call('SUNION', unpack(interior_keys))
local boundary = redis.call('SUNION', unpack(boundary_keys))
local payload_keys = {}
for _, members in ipairs({interior, boundary}) do
  for _, member in ipairs(members) do
    payload_keys[#payload_keys + 1] = 'hx:p:' .. string.format('%d', math.floor(tonumber(member) / 65536))
  end
end
local payloads = {}
for first = 1, #payload_keys, 1000 do
  local chunk = redis.call('MGET', unpack(payload_keys, first, math.min(first + 999, #payload_keys)))
  for _, value in ipairs(chunk) do payloads[#payloads + 1] = value end
end
return {interior, boundary, payloads}
"""


def member(area_id: int, version: int, res: int = 0) -> int:
    return (area_id << AREA_SHIFT) | (res << RES_SHIFT) | (version & VERSION_MASK)


def split_member(value: int) -> tuple[int, int, int]:
    """(area_id, version % 4096, resolution of the area's boundary cells)."""
    return value >> AREA_SHIFT, value & VERSION_MASK, (value >> RES_SHIFT) & 0xF


def cell_key(generation: int, kind: str, cell: int) -> str:
    return f"hx:{generation}:{kind}:{cell:x}"


def payload_key(area_id: int) -> str:
    return f"{PAYLOAD_PREFIX}{area_id}"


@lru_cache(maxsize=4)
def _client_for(url: str, timeout: float) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout, health_check_interval=30)


def client() -> redis.Redis:
    """The index's Redis connection pool (per process, per URL: tests may point it elsewhere)."""
    return _client_for(settings.HEXINDEX_REDIS_URL, settings.REDIS_SOCKET_TIMEOUT)


@lru_cache(maxsize=4)
def _lookup_script(redis_client: redis.Redis):
    return redis_client.register_script(_LOOKUP_LUA)


# --- reads ---------------------------------------------------------------------------------------------------


class Candidates:
    """What Redis knows about a point: candidate members and the cached payloads of their areas."""

    __slots__ = ("boundary", "interior", "payloads")

    def __init__(self, interior: list[int], boundary: list[int], payloads: dict[int, bytes]):
        self.interior = interior
        self.boundary = boundary
        self.payloads = payloads


def candidates(cells: list[int]) -> Candidates | None:
    """One Redis round trip. None when Redis holds no live index. Raises redis.RedisError when unreachable."""
    redis_client = client()
    reply = _lookup_script(redis_client)(keys=[GEN_KEY], args=[f"{cell:x}" for cell in cells], client=redis_client)
    if not reply:
        return None
    interior_raw, boundary_raw, payload_raw = reply
    interior = [int(m) for m in interior_raw]
    boundary = [int(m) for m in boundary_raw]
    payloads = {}
    for value, blob in zip(interior + boundary, payload_raw, strict=True):
        if blob is not None:
            payloads[value >> AREA_SHIFT] = blob
    return Candidates(interior, boundary, payloads)


def split_payload(blob: bytes) -> tuple[int, bytes]:
    version, _, body = blob.partition(b"|")
    return int(version), body


def store_payloads(payloads: dict[int, tuple[int, bytes]]) -> None:
    """Cache area_id -> (payload_version, json). Best effort: the lookup has already answered."""
    pipe = client().pipeline(transaction=False)
    for area_id, (version, body) in payloads.items():
        pipe.set(payload_key(area_id), b"%d|%s" % (version, body))
    pipe.execute()


def live_generation() -> int | None:
    value = client().get(GEN_KEY)
    return int(value) if value is not None else None


def request_rebuild() -> bool:
    """Ask for a Redis rebuild at most once a minute, from however many processes notice it is missing."""
    return bool(client().set(REBUILD_REQUESTED_KEY, 1, nx=True, ex=60))


# --- Redis writes --------------------------------------------------------------------------------------------


def _generations(redis_client: redis.Redis) -> list[int]:
    """Where writes go: the live generation and, during a rebuild, the one being built."""
    live, building = redis_client.mget(GEN_KEY, BUILDING_KEY)
    return sorted({int(g) for g in (live, building) if g is not None})


# Bulk writes: (key, member) pairs as arguments, one command per chunk instead of one per member.
_SADD_PAIRS_LUA = "for i = 1, #ARGV, 2 do redis.call('SADD', ARGV[i], ARGV[i + 1]) end"
_SREM_PAIRS_LUA = "for i = 1, #ARGV, 2 do redis.call('SREM', ARGV[i], ARGV[i + 1]) end"
PAIRS_PER_CALL = 20_000


def _apply_pairs(redis_client: redis.Redis, script: str, pairs: list) -> None:
    run = redis_client.register_script(script)
    pipe = redis_client.pipeline(transaction=False)
    for start in range(0, len(pairs), 2 * PAIRS_PER_CALL):
        run(args=pairs[start : start + 2 * PAIRS_PER_CALL], client=pipe)
    pipe.execute()


def _pairs(generations: list[int], entries) -> list:
    pairs = []
    for area_id, version, interior, boundary in entries:
        for kind, cell, value in _members(area_id, version, interior, boundary):
            for generation in generations:
                pairs += (cell_key(generation, kind, cell), value)
    return pairs


def add_members(entries: Iterable[tuple[int, int, list[int], list[int]]]) -> None:
    """SADD each (area_id, version, interior cells, boundary cells) to every generation being served or built."""
    redis_client = client()
    generations = _generations(redis_client)
    if not generations:
        return  # no index in Redis at all: the next rebuild reads everything from PostgreSQL
    _apply_pairs(redis_client, _SADD_PAIRS_LUA, _pairs(generations, entries))


def _members(area_id: int, version: int, interior: list[int], boundary: list[int]):
    value = member(area_id, version)
    for cell in interior:
        yield "i", cell, value
    if boundary:
        value = member(area_id, version, h3.get_resolution(boundary[0]))
        for cell in boundary:
            yield "b", cell, value


def remove_members(entries: Iterable[tuple[int, int, list[int], list[int]]]) -> None:
    """SREM members that an area no longer has. Tidiness only: stale members are never trusted."""
    redis_client = client()
    generations = _generations(redis_client)
    if generations:
        _apply_pairs(redis_client, _SREM_PAIRS_LUA, _pairs(generations, entries))


def drop_payloads(area_ids: Iterable[int]) -> None:
    keys = [payload_key(area_id) for area_id in area_ids]
    if keys:
        client().unlink(*keys)


# A generation number never used before (above the live one even if the counter was lost), and the lock.
_BEGIN_REBUILD_LUA = """
local live = tonumber(redis.call('GET', KEYS[1]) or '0')
local generation = redis.call('INCR', KEYS[2])
if generation <= live then
  generation = live + 1
  redis.call('SET', KEYS[2], generation)
end
if redis.call('SET', KEYS[3], generation, 'NX', 'EX', ARGV[1]) then return generation end
return false
"""


def begin_rebuild(lock_seconds: int) -> int | None:
    """Claim the rebuild lock and return a fresh generation number, or None when another rebuild holds it."""
    redis_client = client()
    keys = [GEN_KEY, GEN_COUNTER_KEY, BUILDING_KEY]
    generation = redis_client.eval(_BEGIN_REBUILD_LUA, len(keys), *keys, lock_seconds)
    return int(generation) if generation else None


def extend_rebuild(generation: int, lock_seconds: int) -> None:
    redis_client = client()
    if int(redis_client.get(BUILDING_KEY) or 0) == generation:
        redis_client.expire(BUILDING_KEY, lock_seconds)


def write_generation(generation: int, members_by_key: dict[tuple[str, int], list[int]]) -> None:
    pipe = client().pipeline(transaction=False)
    for (kind, cell), values in members_by_key.items():
        pipe.sadd(cell_key(generation, kind, cell), *values)
    pipe.execute()


def finish_rebuild(generation: int) -> int | None:
    """Make `generation` live; return the generation it replaced."""
    redis_client = client()
    previous = redis_client.get(GEN_KEY)
    pipe = redis_client.pipeline(transaction=True)
    pipe.set(GEN_KEY, generation)
    pipe.delete(BUILDING_KEY)
    pipe.execute()
    return int(previous) if previous is not None else None


def abandon_rebuild(generation: int) -> None:
    redis_client = client()
    if int(redis_client.get(BUILDING_KEY) or 0) == generation:
        redis_client.delete(BUILDING_KEY)
    drop_generation(generation)


def drop_generation(generation: int) -> int:
    """Delete every key of a generation nobody reads any more. A lookup reads the live generation number and
    its keys in one atomic script, so it never sees a generation half-deleted."""
    redis_client = client()
    deleted = 0
    batch = []
    for key in redis_client.scan_iter(match=f"hx:{generation}:*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            deleted += redis_client.unlink(*batch)
            batch.clear()
    if batch:
        deleted += redis_client.unlink(*batch)
    return deleted


def memory_bytes() -> int:
    return int(client().info("memory")["used_memory"])


# --- the cell table ------------------------------------------------------------------------------------------


def cell_rows(area_ids: list[int]) -> dict[int, tuple[list[int], list[int]]]:
    """area_id -> (interior cells, boundary cells) currently in the cell table."""
    result: dict[int, tuple[list[int], list[int]]] = {area_id: ([], []) for area_id in area_ids}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT area_id, cell, boundary FROM hexindex_areacell WHERE area_id = ANY(%s)", [list(area_ids)]
        )
        for area_id, cell, boundary in cursor.fetchall():
            result[area_id][1 if boundary else 0].append(cell)
    return result


def replace_cell_rows(rows_by_area: dict[int, str]) -> None:
    """Delete the areas' rows and write their new ones (COPY text from `cells.copy_rows`). Call inside a
    transaction."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM hexindex_areacell WHERE area_id = ANY(%s)", [list(rows_by_area)])
        cursor.cursor.copy_expert(
            "COPY hexindex_areacell (cell, area_id, boundary, clip) FROM STDIN",
            io.StringIO("".join(rows_by_area.values())),
        )


def stream_all_cells(chunk_rows: int = 50_000) -> Iterator[list[tuple[int, int, int, bool]]]:
    """Every (area_id, version, cell, boundary) in the cell table, in chunks, from one consistent snapshot."""
    with connection.cursor() as plain:
        raw = plain.connection
    with raw.cursor(name="hexindex_stream_cells") as cursor:
        cursor.itersize = chunk_rows
        cursor.execute(
            "SELECT c.area_id, s.version, c.cell, c.boundary FROM hexindex_areacell c "
            "JOIN hexindex_areaindex s ON s.area_id = c.area_id"
        )
        while rows := cursor.fetchmany(chunk_rows):
            yield rows


def group_members(rows: Iterable[tuple[int, int, int, bool]]) -> dict[tuple[str, int], list[int]]:
    grouped: dict[tuple[str, int], list[int]] = defaultdict(list)
    for area_id, version, cell, boundary in rows:
        res = h3.get_resolution(cell) if boundary else 0
        grouped[("b" if boundary else "i", cell)].append(member(area_id, version, res))
    return grouped
