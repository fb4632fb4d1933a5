"""Usage per key and day: counted in Redis on the request path (partners.access), added to KeyUsage here.

A flush renames the live counters to a batch of its own (atomic: requests go on counting in a new hash), adds the
batch in one transaction that also records the batch's name, then deletes it. A flush that dies half-way is
finished by the next one, and a batch already recorded is never added twice.

The beat flushes every minute. A reader of usage (GET /api/v1/usage/) asks for a flush too, for recent figures, but
gets one at most every USAGE_FLUSH_MIN_SECONDS per process: each flush renames, scans and writes, and a partner
polling its usage must not make that happen per request.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections import defaultdict
from datetime import date, timedelta

import redis
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from partners import access
from partners.models import PartnerKey, UsageFlush

log = logging.getLogger(__name__)

BATCH_PREFIX = f"{access.USAGE_KEY}:batch:"

FIELDS = access.COUNTERS
UPSERT_SQL = f"""
INSERT INTO partners_keyusage (key_id, day, {", ".join(FIELDS)})
SELECT * FROM unnest(%s::varchar[], %s::date[], {", ".join("%s::bigint[]" for _ in FIELDS)})
ON CONFLICT (key_id, day) DO UPDATE SET
    {", ".join(f"{name} = partners_keyusage.{name} + excluded.{name}" for name in FIELDS)}
"""


def flush_usage() -> int:
    """Add the counters gathered in Redis to KeyUsage; the number of (key, day) rows touched."""
    client = access._redis()
    batch = f"{BATCH_PREFIX}{uuid.uuid4().hex}"
    with contextlib.suppress(redis.ResponseError):  # no such key: nothing counted since the last flush
        client.rename(access.USAGE_KEY, batch)
    touched = 0
    for name in client.scan_iter(match=f"{BATCH_PREFIX}*", count=100):
        touched += _add_batch(client, name.decode())
    return touched


class _FlushClock:
    """When this process last flushed for a reader (time.monotonic), and one reader's flush at a time."""

    def __init__(self):
        self.last = float("-inf")
        self.lock = threading.Lock()


_clock = _FlushClock()


def flush_usage_if_due() -> None:
    """A flush, unless this process made one for a reader in the last USAGE_FLUSH_MIN_SECONDS or another thread is
    making one now. Redis unreachable: the figures already added stand (the beat catches up later)."""
    if time.monotonic() - _clock.last < settings.USAGE_FLUSH_MIN_SECONDS or not _clock.lock.acquire(blocking=False):
        return
    try:
        _clock.last = time.monotonic()  # before flushing: a failing flush is not retried by every reader
        flush_usage()
    except redis.RedisError as exc:
        log.warning("usage not flushed for a reader: %s: %s", exc.__class__.__name__, exc)
    finally:
        _clock.lock.release()


def _add_batch(client: redis.Redis, name: str) -> int:
    totals: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(FIELDS, 0))
    for field, value in client.hgetall(name).items():
        day, who, what = field.decode().split(" ")  # "<day> <key prefix or -> <counter>"
        if what in FIELDS:
            totals[(day, who)][what] += int(value)
    prefixes = {who for _, who in totals if who != access.ANONYMOUS}
    key_ids = dict(PartnerKey.objects.filter(prefix__in=prefixes).values_list("prefix", "id"))
    rows = [
        (None if who == access.ANONYMOUS else key_ids[who], date.fromisoformat(day), counts)
        for (day, who), counts in totals.items()
        if who == access.ANONYMOUS or who in key_ids  # a deleted key's usage goes with it
    ]
    with transaction.atomic():
        _, new = UsageFlush.objects.get_or_create(batch=name.removeprefix(BATCH_PREFIX))
        if new and rows:
            with connection.cursor() as cursor:
                cursor.execute(
                    UPSERT_SQL,
                    [
                        [key for key, _, _ in rows],
                        [day for _, day, _ in rows],
                        *([counts[what] for _, _, counts in rows] for what in FIELDS),
                    ],
                )
    client.delete(name)
    UsageFlush.objects.filter(flushed_at__lt=timezone.now() - timedelta(days=7)).delete()
    return len(rows)
