"""The change feed: what changed in public lookups since a cursor (areas.models.AreaChange, written by triggers).

A cursor is `<transaction id>-<change id>`. Changes are listed in that order and only once every transaction that
started before them has ended (PostgreSQL's snapshot xmin), so a change that commits late is never behind a
cursor already handed out: reading the feed again from the last cursor never misses anything.

A cursor names a change this database listed: one it never issued (made up, copied from the documentation, from
another deployment, or from before a restore) is refused, since reading from it would silently skip changes.
`since=now` starts from the newest change listed, without paging through the history.
"""

import re

from django.db import connection

from core.errors import InvalidInput

START = (0, 0)
NOW = "now"
CHANGES_LIMIT = 1000
CHANGES_DEFAULT_LIMIT = 500
BAD_LIMIT = f"A number from 1 to {CHANGES_LIMIT}."
_CURSOR = re.compile(r"([0-9]{1,19})-([0-9]{1,19})")
BAD_CURSOR = (
    "A cursor from a previous answer (e.g. 7341-2210), `now` to start from now, or nothing to start from the beginning."
)
UNKNOWN_CURSOR = (
    "This feed never issued that cursor (made up, from another deployment, or from before a restore): reading from "
    "it could skip changes. Start again without `since` (everything) or with `since=now`."
)
_ISSUED_SQL = "SELECT EXISTS (SELECT 1 FROM areas_areachange WHERE id = %s AND xid = %s)"


def visible_sql(alias: str = "") -> str:
    """The feed's one visibility rule, as SQL on areas_areachange (`alias`: the table's alias in the query): a
    change is listed once every transaction that started before it has ended."""
    prefix = f"{alias}." if alias else ""
    return f"{prefix}xid < txid_snapshot_xmin(txid_current_snapshot())"


FEED_SQL = f"""
SELECT xid, id, area_id, provider_id, kind, fields, changed_at
FROM areas_areachange
WHERE (xid, id) > (%s, %s) AND {visible_sql()}
ORDER BY xid, id
LIMIT %s
"""
FEED_END_SQL = f"SELECT xid, id FROM areas_areachange WHERE {visible_sql()} ORDER BY xid DESC, id DESC LIMIT 1"


def parse_cursor(raw: str | None) -> tuple[int, int]:
    """The cursor to read after: START, the feed's end for `now`, or one this feed issued (else a 400)."""
    if raw is None or raw in ("", "0"):
        return START
    if raw == NOW:
        return feed_end()
    match = _CURSOR.fullmatch(raw)
    if match is None:
        raise InvalidInput({"since": [BAD_CURSOR]})
    cursor = int(match[1]), int(match[2])
    if cursor == START:
        return START  # what an empty feed hands out
    if cursor[0] > 2**63 - 1 or cursor[1] > 2**63 - 1 or not _issued(cursor):
        raise InvalidInput({"since": [UNKNOWN_CURSOR]})
    return cursor


def parse_limit(raw: str | None) -> int:
    """A page size: 1 to CHANGES_LIMIT, CHANGES_DEFAULT_LIMIT when not given; InvalidInput otherwise."""
    if raw is None:
        return CHANGES_DEFAULT_LIMIT
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= CHANGES_LIMIT:
        raise InvalidInput({"limit": [BAD_LIMIT]})
    return int(raw)


def _issued(cursor: tuple[int, int]) -> bool:
    with connection.cursor() as db:
        db.execute(_ISSUED_SQL, [cursor[1], cursor[0]])
        return db.fetchone()[0]


def format_cursor(cursor: tuple[int, int]) -> str:
    return f"{cursor[0]}-{cursor[1]}"


def changes_since(cursor: tuple[int, int], *, limit: int) -> dict:
    """Up to `limit` changes after the cursor, the cursor to ask from next, and whether more are waiting."""
    with connection.cursor() as db:
        db.execute(FEED_SQL, [*cursor, limit + 1])
        rows = db.fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    changes = [
        {
            "cursor": format_cursor((xid, change_id)),
            "area": area_id,
            "provider": provider_id,
            "kind": kind,
            "fields": fields,
            "changed_at": changed_at.isoformat().replace("+00:00", "Z"),
        }
        for xid, change_id, area_id, provider_id, kind, fields, changed_at in rows
    ]
    last = (rows[-1][0], rows[-1][1]) if rows else cursor
    return {"changes": changes, "cursor": format_cursor(last), "more": more}


def feed_end() -> tuple[int, int]:
    """The cursor of the newest change the feed lists now (START when it lists none): reading from it gives exactly
    the changes listed after this moment."""
    with connection.cursor() as db:
        db.execute(FEED_END_SQL)
        row = db.fetchone()
    return (row[0], row[1]) if row else START
