"""Where the index lives: the cell table in PostgreSQL (the source of truth) and its Redis mirror. This is the only
module that knows Redis key names or writes the cell table.

Redis layout (logical database HEXINDEX_REDIS_URL):

    hx:gen                    the live generation G; absent = no usable index (lookups fall back to PostGIS)
    hx:building               generation being rebuilt, while a rebuild runs (also its lock)
    hx:G:i:<cell hex>         set of members whose area holds <cell> entirely (interior)
    hx:G:b:<cell hex>         set of members whose area crosses <cell> (boundary: check exactly)
    hx:live                   hash area id -> "<version % 4096, 4 digits>|<sort key>|<json>": the version whose
                              members are live, and the area's lookup result, pre-serialised
    hx:pending                hash area id -> change token, for areas whose live entry is out of date
    hx:pbox                   hash area id -> "minLng minLat maxLng maxLat" of each pending area
    hx:seq                    counter for change tokens

A member is `area_id << 16 | resolution << 12 | version % 4096`: the area, the resolution of its boundary cells
(so that confirming a boundary candidate is one primary-key probe), and the geometry version the cell was
computed from. A lookup trusts a member only when it is the area's live version, so entries left behind by an
old geometry (a failed cleanup, a crash) are harmless.

Every write to an area or its provider marks the area pending *before* its transaction commits, and again
after (see hexindex.services); a pending area has no live entry, so lookups check it directly in PostGIS. The
indexer makes an area live again with a compare-and-set on its change token, so a build that read the database
before a later change can never hide that change.
"""

from __future__ import annotations

import io
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

import h3.api.basic_int as h3
import redis
from django.conf import settings
from django.db import connection

AREA_SHIFT = 16  # the Lua scripts divide by 2**16 to find the area
RES_SHIFT = 12
VERSION_MASK = (1 << RES_SHIFT) - 1
GEN_KEY = "hx:gen"
BUILDING_KEY = "hx:building"
GEN_COUNTER_KEY = "hx:gen:counter"
REBUILD_REQUESTED_KEY = "hx:rebuild:requested"
LIVE_KEY = "hx:live"
PENDING_KEY = "hx:pending"
PENDING_BOX_KEY = "hx:pbox"
SEQ_KEY = "hx:seq"
# Above this many pending areas a lookup does not scan their boxes: it answers from PostGIS alone.
MAX_PENDING_SCAN = 256

# One round trip for a lookup. KEYS: gen, live, pbox, pending. ARGV: lng, lat, the point's cells (hex).
# Returns false without a live generation; else {interior ids, boundary ids, boundary resolutions, interior
# payloads, boundary payloads, pending ids whose box holds the point, or -1 for "too many pending to scan"}.
_LOOKUP_LUA = (
    f"local MAX_PENDING_SCAN = {MAX_PENDING_SCAN}\n"
    + """
local gen = redis.call('GET', KEYS[1])
if not gen then return false end
local interior_keys, boundary_keys = {}, {}
for i = 3, #ARGV do
  interior_keys[i - 2] = 'hx:' .. gen .. ':i:' .. ARGV[i]
  boundary_keys[i - 2] = 'hx:' .. gen .. ':b:' .. ARGV[i]
end
local function live_only(members)
  local ids, versions, resolutions = {}, {}, {}
  for _, m in ipairs(members) do
    local value = tonumber(m)
    ids[#ids + 1] = math.floor(value / 65536)
    versions[#versions + 1] = value % 4096
    resolutions[#resolutions + 1] = math.floor(value / 4096) % 16
  end
  local kept, kept_res, payloads = {}, {}, {}
  for first = 1, #ids, 1000 do
    local last = math.min(first + 999, #ids)
    local live = redis.call('HMGET', KEYS[2], unpack(ids, first, last))
    for j = first, last do
      local entry = live[j - first + 1]
      if entry and tonumber(string.sub(entry, 1, 4)) == versions[j] then
        kept[#kept + 1] = ids[j]
        kept_res[#kept_res + 1] = resolutions[j]
        payloads[#payloads + 1] = entry
      end
    end
  end
  return kept, kept_res, payloads
end
local interior, _, interior_payloads = live_only(redis.call('SUNION', unpack(interior_keys)))
local boundary, boundary_res, boundary_payloads = live_only(redis.call('SUNION', unpack(boundary_keys)))
local pending = {}
local waiting = redis.call('HLEN', KEYS[3])
if waiting > MAX_PENDING_SCAN then
  pending = {-1}
elseif waiting > 0 then
  local lng, lat = tonumber(ARGV[1]), tonumber(ARGV[2])
  local boxes = redis.call('HGETALL', KEYS[3])
  for i = 1, #boxes, 2 do
    local w, s, e, n = string.match(boxes[i + 1], '(%S+) (%S+) (%S+) (%S+)')
    if lng >= tonumber(w) and lng <= tonumber(e) and lat >= tonumber(s) and lat <= tonumber(n) then
      pending[#pending + 1] = boxes[i]
    end
  end
end
return {interior, boundary, boundary_res, interior_payloads, boundary_payloads, pending}
"""
)


def member(area_id: int, version: int, res: int = 0) -> int:
    return (area_id << AREA_SHIFT) | (res << RES_SHIFT) | (version & VERSION_MASK)


def split_member(value: int) -> tuple[int, int, int]:
    """(area_id, version % 4096, resolution of the area's boundary cells)."""
    return value >> AREA_SHIFT, value & VERSION_MASK, (value >> RES_SHIFT) & 0xF


def cell_key(generation: int, kind: str, cell: int) -> str:
    return f"hx:{generation}:{kind}:{cell:x}"


def payload_blob(area_id: int, price: Decimal, body: bytes) -> bytes:
    """A cached result with a prefix that sorts like (price, id), so results are ordered by sorting bytes."""
    cents = int(price * 100)
    return b"%015d%012d|%s" % (cents, area_id, body)


SORT_KEY_LENGTH = 28  # the prefix above, with its "|"
LIVE_PREFIX_LENGTH = 5  # "<version, 4 digits>|" before the payload in hx:live


@lru_cache(maxsize=4)
def _client_for(url: str, timeout: float) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout, health_check_interval=30)


def client() -> redis.Redis:
    """The index's Redis connection pool (per process, per URL: tests may point it elsewhere)."""
    return _client_for(settings.HEXINDEX_REDIS_URL, settings.REDIS_SOCKET_TIMEOUT)


@lru_cache(maxsize=8)
def _script(redis_client: redis.Redis, source: str):
    return redis_client.register_script(source)


# --- reads ---------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Candidates:
    """What Redis knows about a point: live candidates with their cached payloads, and pending areas."""

    interior: list[int]
    boundary: list[int]
    boundary_resolutions: list[int]
    payloads: dict[int, bytes]
    pending: list[int]
    too_many_pending: bool


def candidates(lat: float, lng: float, cells: list[int]) -> Candidates | None:
    """One Redis round trip. None when Redis holds no live index. Raises redis.RedisError when unreachable."""
    redis_client = client()
    reply = _script(redis_client, _LOOKUP_LUA)(
        keys=[GEN_KEY, LIVE_KEY, PENDING_BOX_KEY, PENDING_KEY],
        args=[repr(lng), repr(lat), *(f"{cell:x}" for cell in cells)],
        client=redis_client,
    )
    if not reply:
        return None
    interior_raw, boundary_raw, boundary_res, interior_payloads, boundary_payloads, pending_raw = reply
    interior = [int(i) for i in interior_raw]
    boundary = [int(i) for i in boundary_raw]
    payloads = {
        area_id: entry[LIVE_PREFIX_LENGTH:]
        for area_id, entry in zip(interior + boundary, interior_payloads + boundary_payloads, strict=True)
    }
    too_many = pending_raw == [-1]
    return Candidates(
        interior=interior,
        boundary=boundary,
        boundary_resolutions=[int(r) for r in boundary_res],
        payloads=payloads,
        pending=[] if too_many else [int(i) for i in pending_raw],
        too_many_pending=too_many,
    )


# --- live and pending state ----------------------------------------------------------------------------------

# KEYS: pending, pbox, live, seq. ARGV: now, then (area id, box) pairs. Returns the new token.
_MARK_PENDING_LUA = """
local token = redis.call('INCR', KEYS[4]) .. ':' .. ARGV[1]
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], token)
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  redis.call('HDEL', KEYS[3], ARGV[i])
end
return token
"""

# KEYS: pending, pbox, live. ARGV: (area id, expected token or "", live entry, unused) quadruples. Makes each
# area live with its payload if its token is still the expected one ("" = not pending); returns those ids.
_MAKE_LIVE_LUA = """
local done = {}
for i = 1, #ARGV, 4 do
  local id, expected = ARGV[i], ARGV[i + 1]
  local current = redis.call('HGET', KEYS[1], id) or ''
  if current == expected then
    redis.call('HSET', KEYS[3], id, ARGV[i + 2])
    redis.call('HDEL', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    done[#done + 1] = id
  end
end
return done
"""

# KEYS: pending, pbox, live. ARGV: area ids. For deleted areas: no pending entry, no live entry.
_FORGET_LUA = """
for i = 1, #ARGV do
  redis.call('HDEL', KEYS[1], ARGV[i])
  redis.call('HDEL', KEYS[2], ARGV[i])
  redis.call('HDEL', KEYS[3], ARGV[i])
end
return #ARGV
"""


def mark_pending(boxes: dict[int, tuple[float, float, float, float]]) -> str:
    """Take the areas out of the live index until rebuilt: lookups check them directly in PostGIS.
    Raises redis.RedisError when Redis cannot be reached (the caller's transaction must not commit then)."""
    if not boxes:
        return ""
    args: list = [int(time.time())]
    for area_id, (west, south, east, north) in boxes.items():
        args += (area_id, f"{west!r} {south!r} {east!r} {north!r}")
    redis_client = client()
    keys = [PENDING_KEY, PENDING_BOX_KEY, LIVE_KEY, SEQ_KEY]
    return _script(redis_client, _MARK_PENDING_LUA)(keys=keys, args=args, client=redis_client).decode()


def pending_tokens(area_ids: Iterable[int]) -> dict[int, str]:
    """area_id -> current change token ("" when not pending). Read before reading the database for a build."""
    area_ids = list(area_ids)
    if not area_ids:
        return {}
    values = client().hmget(PENDING_KEY, area_ids)
    return {area_id: (value.decode() if value else "") for area_id, value in zip(area_ids, values, strict=True)}


def pending_tokens_all() -> dict[int, str]:
    return {int(area_id): token.decode() for area_id, token in client().hgetall(PENDING_KEY).items()}


def make_live(entries: list[tuple[int, str, int, bytes]]) -> set[int]:
    """(area_id, expected token, geometry version, payload blob): make each area live unless it changed again
    since its token was read. Returns the ids made live."""
    redis_client = client()
    script = _script(redis_client, _MAKE_LIVE_LUA)
    done: set[int] = set()
    for start in range(0, len(entries), 2000):
        args = []
        for area_id, token, version, blob in entries[start : start + 2000]:
            args += (area_id, token, b"%04d|%s" % (version & VERSION_MASK, blob), "")
        done.update(
            int(i) for i in script(keys=[PENDING_KEY, PENDING_BOX_KEY, LIVE_KEY], args=args, client=redis_client)
        )
    return done


def forget(area_ids: list[int]) -> None:
    if area_ids:
        redis_client = client()
        keys = [PENDING_KEY, PENDING_BOX_KEY, LIVE_KEY]
        _script(redis_client, _FORGET_LUA)(keys=keys, args=area_ids, client=redis_client)


def pending_since() -> dict[int, float]:
    """area_id -> unix time it was last marked pending."""
    return {
        int(area_id): float(token.decode().rsplit(":", 1)[1])
        for area_id, token in client().hgetall(PENDING_KEY).items()
    }


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
