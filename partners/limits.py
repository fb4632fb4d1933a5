"""Rate limits of the partner endpoints: a limit per key, a low one per address without a key, and one per owner
testing their own areas; in points per one-minute window (a batch counts its points, a trip 2).

Two backends behind one question ("may this caller spend these points now?"):

- Redis (normal): a counter per caller and window, INCRBY + EXPIRE, with the key-change epoch (partners.keys).
  A single lookup sends them along with its own Redis read (hexindex Piggyback), so a limit costs no round trip
  of its own; other work sends them in one round trip after the work.
- This process (when Redis cannot count: down, slow, or failed moments ago): the same windows counted here, each
  process admitting RATE_LIMIT_FALLBACK_SHARE of every limit, so the processes together stay within it. Limits
  never switch off.

A caller over its limit is remembered, and refused by this process before any work until its window ends.
Usage is counted here too (partners.usage): what was answered, and what was refused.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import redis
from django.conf import settings

from core import metrics
from core.errors import TooManyRequests
from core.networks import client_address
from core.redis import breaker, send_groups
from hexindex.api import Piggyback, bucket_tag_for
from partners import keys, usage

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60
REDIS_PAUSE_SECONDS = 5.0


class RateLimited(TooManyRequests):
    """429 with Retry-After and the limit that applied."""

    def __init__(self, *, limit: int, points: int, keyed: bool, now: float):
        who = "for this key" if keyed else "without an API key, per address"
        super().__init__(
            f"Rate limit: {limit} points per minute ({who}); this request needs {points}.",
            retry_after=_retry_after(now),
            headers={"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": "0"},
        )


def _retry_after(now: float) -> int:
    window_end = (int(now // WINDOW_SECONDS) + 1) * WINDOW_SECONDS
    return max(1, int(window_end - now + 0.999))


@dataclass(slots=True)
class Admission:
    """What an admitted request is told: the limit that applied and what is left (None: no limit)."""

    limit: int | None
    remaining: int | None

    def headers(self) -> dict[str, str]:
        if self.limit is None:
            return {}
        return {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(max(0, self.remaining or 0))}


@dataclass(slots=True)
class Gate:
    """One request between `check` (before the work) and `settle` (after it). `also` carries the Redis commands the
    work may send with its own read; `admission` is set when this process decided alone."""

    key: str | None
    known: keys.KnownKey | None
    limit: int | None
    kind: str
    bucket: str
    points: int
    now: float
    also: Piggyback | None = None
    admission: Admission | None = None
    epoch_tag: str = ""

    @property
    def key_id(self) -> str | None:
        return self.known.pk if self.known is not None else None


class _Windows:
    """This process's windows: callers refused (`blocked`, bucket -> window) and the fallback counts."""

    def __init__(self):
        self.window = -1
        self.fallback: dict[str, int] = {}
        self.blocked: dict[str, int] = {}
        self.redis_paused_until = 0.0

    def add(self, bucket: str, points: int, now: float) -> int:
        window = int(now // WINDOW_SECONDS)
        if window != self.window:
            self.window, self.fallback = window, {}
        if len(self.fallback) > 100_000:  # far more callers than a minute holds: somebody is cycling addresses
            self.fallback.clear()
        self.fallback[bucket] = self.fallback.get(bucket, 0) + points
        return self.fallback[bucket]

    def block(self, bucket: str, now: float) -> None:
        if len(self.blocked) > 100_000:
            self.blocked.clear()
        self.blocked[bucket] = int(now // WINDOW_SECONDS)


_windows = _Windows()


def check(request, *, kind: str, points: int = 1, owner_id: int | None = None) -> Gate:
    """Before the work: who the caller is (InvalidKey: 401), and a 429 at once for a caller this process has already
    seen over its limit in this window (so a client hammering past its limit costs no work). `owner_id`: a signed-in
    owner testing their own areas (include_mine), limited per user, not per address."""
    now = time.time()
    key = keys.raw_key(request)
    known = None
    if key is not None:
        known = keys.usable_key(key, address=client_address(request), now=now)
        limit, bucket = known.rate_per_minute, f"partners:rate:k:{known.prefix}"
    elif owner_id is not None:
        limit, bucket = settings.LOOKUP_OWNER_RATE_PER_MINUTE, f"partners:rate:u:{owner_id}"
    else:
        limit, bucket = settings.LOOKUP_ANONYMOUS_RATE_PER_MINUTE, f"partners:rate:a:{client_address(request)}"
    gate = Gate(key, known, limit, kind, bucket, points, now)
    if limit is not None and _windows.blocked.get(bucket) == int(now // WINDOW_SECONDS):
        _refuse(gate, limit)
    if time.monotonic() < _windows.redis_paused_until or breaker.state == "open":
        _decide_here(gate)  # Redis failed moments ago: no waiting for another timeout
        return gate
    counter = f"{bucket}:{int(now // WINDOW_SECONDS)}"
    commands = [("INCRBY", counter, points), ("EXPIRE", counter, 2 * WINDOW_SECONDS)] if limit is not None else []
    # The counter on its own key (any node); the epoch inside the lookup's own bucket (partners.keys).
    gate.also = Piggyback(commands, tag=counter, in_bucket=lambda tag: [keys.epoch_command(tag)])
    gate.epoch_tag = bucket_tag_for(bucket)
    return gate


def settle(gate: Gate) -> Admission:
    """After the work: the admission (and the request counted as used), or InvalidKey / RateLimited (counted as
    refused)."""
    if gate.admission is None:
        _settle_with_redis(gate)
    usage.count(key_id=gate.key_id, kind=gate.kind, points=gate.points, at=gate.now)
    return gate.admission


def _refuse(gate: Gate, limit: int) -> None:
    metrics.rate_limited(with_key=gate.known is not None)
    usage.count(key_id=gate.key_id, kind=usage.THROTTLED, at=gate.now)
    raise RateLimited(limit=limit, points=gate.points, keyed=gate.known is not None, now=gate.now)


def _decide_here(gate: Gate) -> None:
    """Redis cannot count: this process's share of the limit, counted here."""
    if gate.limit is None:
        gate.admission = Admission(None, None)
        return
    limit = max(1, math.floor(gate.limit * settings.RATE_LIMIT_FALLBACK_SHARE))
    used = _windows.add(gate.bucket, gate.points, gate.now)
    if used > limit:
        _refuse(gate, limit)
    gate.admission = Admission(limit, limit - used)


def _settle_with_redis(gate: Gate) -> None:
    try:
        also = gate.also
        if also.bucket_replies is None:  # the work did not read the index's Redis (PostGIS answered, not a lookup)
            if breaker.state == "open":
                raise redis.RedisError("the index's Redis failed moments ago")  # no waiting for another timeout
            groups = [(gate.epoch_tag, [keys.epoch_command(gate.epoch_tag)], True)]
            if also.replies is None and also.commands:
                groups.append((also.tag, also.commands, False))
            replies = send_groups(groups)
            also.bucket_replies = replies[0]
            if len(replies) > 1:
                also.replies = replies[1]
        replies = [*also.bucket_replies, *(also.replies or [])]
        failed = next((reply for reply in replies if isinstance(reply, Exception)), None)
        if failed is not None:
            raise redis.RedisError(str(failed))
    except redis.RedisError:
        _windows.redis_paused_until = time.monotonic() + REDIS_PAUSE_SECONDS
        log.warning("Redis unavailable: rate limits counted in this process for a while", exc_info=True)
        _decide_here(gate)
        return
    if keys.epoch_seen(replies[0]):
        _windows.blocked.clear()  # a limit may have changed
        if gate.key is not None:
            gate.known = keys.usable_key(gate.key, address="", now=gate.now)  # forgotten: checked again
            gate.limit = gate.known.rate_per_minute
    if gate.limit is None:
        gate.admission = Admission(None, None)
        return
    used = int(replies[1])
    if used > gate.limit:
        if used - gate.points >= gate.limit:  # the window is used up, not just too small for this request
            _windows.block(gate.bucket, gate.now)
        _refuse(gate, gate.limit)
    gate.admission = Admission(gate.limit, gate.limit - used)


def forget_all() -> None:
    """A fresh process's memory (tests)."""
    global _windows
    _windows = _Windows()
