"""The change feed: what changed in public lookups since a cursor (areas.models.AreaChange, written by triggers).

A cursor is `<transaction id>-<change id>`. Changes are listed in that order and only once every transaction that
started before them has ended (PostgreSQL's snapshot xmin), so a change that commits late is never behind a
cursor already handed out: reading the feed again from the last cursor never misses anything.
"""

import re

from django.db import connection
from rest_framework.exceptions import ValidationError

START = (0, 0)
_CURSOR = re.compile(r"([0-9]{1,19})-([0-9]{1,19})")
BAD_CURSOR = "A cursor from a previous answer (e.g. 7341-2210), or nothing to start from the beginning."


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
    if raw is None or raw in ("", "0"):
        return START
    match = _CURSOR.fullmatch(raw)
    if match is None:
        raise ValidationError({"since": [BAD_CURSOR]})
    return int(match[1]), int(match[2])


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
