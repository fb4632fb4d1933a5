"""Usage per key and UTC day, as partners are billed: counted in each web process and added to KeyUsage in
PostgreSQL by that process every USAGE_FLUSH_SECONDS (a background thread, started with the first count, so an
idle process writes too; a request that finds a flush due does it itself) and when it exits.

Counting does not depend on Redis, so what was counted survives a Redis restart, failover or slowness (the rate
limits, which may be lost, live there). What a process counted and had not written yet is lost only when the
process dies without exiting (killed, out of memory): at most USAGE_FLUSH_SECONDS of that one process's requests.
A flush adds its counts in one statement and forgets them only once that committed, so nothing is added twice; a
flush that fails (the database is down) keeps them for the next one.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import defaultdict
from datetime import UTC, date, datetime

from django.conf import settings
from django.db import DatabaseError, connection, transaction

log = logging.getLogger(__name__)

# What a request was, as counted per key and day: kind -> its counter (a batch also counts its points).
KINDS = {"lookup": "lookups", "batch": "batches", "trip": "trips", "feed": "feed_reads"}
BATCH_POINTS, THROTTLED = "batch_points", "throttled"
COUNTERS = (*KINDS.values(), BATCH_POINTS, THROTTLED)

UPSERT_SQL = f"""
INSERT INTO partners_keyusage (key_id, day, {", ".join(COUNTERS)})
SELECT * FROM unnest(%s::varchar[], %s::date[], {", ".join("%s::bigint[]" for _ in COUNTERS)})
ON CONFLICT (key_id, day) DO UPDATE SET
    {", ".join(f"{name} = partners_keyusage.{name} + excluded.{name}" for name in COUNTERS)}
"""
# A key deleted since its requests were counted takes its usage with it.
_LIVE_KEYS_SQL = "SELECT id FROM partners_partnerkey WHERE id = ANY(%s)"


class _Counts:
    """(key id or None for anonymous callers, day) -> counter -> count, not yet in PostgreSQL."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pending: dict[tuple[str | None, date], dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
        self.flushed_at = time.monotonic()


_counts = _Counts()


def count(*, key_id: str | None, kind: str, points: int = 1, at: float | None = None) -> None:
    """One request answered (`kind`, a KINDS key) or refused with 429 (`kind` THROTTLED)."""
    day = datetime.fromtimestamp(at if at is not None else time.time(), UTC).date()
    _start_flusher()
    with _counts.lock:
        counters = _counts.pending[(key_id, day)]
        if kind == THROTTLED:
            counters[THROTTLED] += 1
        else:
            counters[KINDS[kind]] += 1
            if kind == "batch":
                counters[BATCH_POINTS] += points


def flush_if_due() -> None:
    """Called on the request path, after the response is ready: one INSERT every USAGE_FLUSH_SECONDS at most."""
    if time.monotonic() - _counts.flushed_at >= settings.USAGE_FLUSH_SECONDS:
        flush()


def flush() -> int:
    """Add what this process counted to KeyUsage; the number of (key, day) rows touched. Never raises."""
    with _counts.lock:
        taken, _counts.pending = _counts.pending, defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
        _counts.flushed_at = time.monotonic()
    if not taken:
        return 0
    try:
        return _write(taken)
    except DatabaseError:
        log.warning("could not write key usage; kept for the next flush", exc_info=True)
        with _counts.lock:
            for group, counters in taken.items():
                for name, value in counters.items():
                    _counts.pending[group][name] += value
        return 0


def _write(taken: dict[tuple[str | None, date], dict[str, int]]) -> int:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_LIVE_KEYS_SQL, [sorted({key for key, _ in taken if key is not None})])
        live = {row[0] for row in cursor.fetchall()}
        rows = [(key, day, counters) for (key, day), counters in taken.items() if key is None or key in live]
        if rows:
            cursor.execute(
                UPSERT_SQL,
                [
                    [key for key, _, _ in rows],
                    [day for _, day, _ in rows],
                    *([counters[name] for _, _, counters in rows] for name in COUNTERS),
                ],
            )
    return len(rows)


def unwritten() -> dict[tuple[str | None, date], dict[str, int]]:
    """What this process counted and has not written yet (for tests and diagnostics)."""
    with _counts.lock:
        return {group: dict(counters) for group, counters in _counts.pending.items()}


def forget_unwritten() -> None:
    """Drop what this process counted (a test starting afresh)."""
    with _counts.lock:
        _counts.pending.clear()


_flusher: list[threading.Thread] = []


def _start_flusher() -> None:
    """The background writer of this process (one; started again in a process forked from one that had it)."""
    if not settings.USAGE_FLUSH_IN_BACKGROUND or (_flusher and _flusher[0].is_alive()):
        return
    with _counts.lock:
        if _flusher and _flusher[0].is_alive():
            return
        thread = threading.Thread(target=_flush_forever, name="usage-flusher", daemon=True)
        _flusher[:] = [thread]
        thread.start()


def _flush_forever() -> None:
    from django.db import connection

    while True:
        time.sleep(max(settings.USAGE_FLUSH_SECONDS, 0.5))  # a zero setting (flush on every request) must not spin
        if not settings.USAGE_FLUSH_IN_BACKGROUND:
            return
        try:
            flush_if_due()
        finally:
            connection.close()  # this thread's own connection: none held between flushes


@atexit.register
def _flush_at_exit() -> None:
    # A web process that exits (a deploy, gunicorn recycling it, Ctrl-C) writes what it counted.
    try:
        flush()
    except Exception:  # the settings or the database may be gone at interpreter exit
        log.warning("could not write key usage at exit", exc_info=True)
