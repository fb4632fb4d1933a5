"""Who may look up, how much: partner API keys, a rate limit per key, a low one per address without a key, and
usage counters per key and day. Used by the lookup endpoints, including the lean (middleware-free) ones, so it is
plain Django: `check(request, kind=..., points=n)` before the work, `settle(gate)` after it (or `admit` for both
at once), `finish(response, admission)` for the headers.

Per request: a fixed one-minute window counter per key or address, the day's usage counters and the key-change
epoch, in the index's Redis. A single lookup sends them along with its own Redis read (hexindex Piggyback), so
they cost no round trip of their own; other work sends them in one round trip. Verified keys are remembered
in-process; any change to any key (revoked, expired, new limit) bumps the epoch, which every request reads, so a
revoked key is refused from the next request on, not after a cache timeout. Only what was asked is discarded when
the counter says "over the limit"; from then on, until the window ends, this process refuses that caller before
any lookup.

When Redis does not answer, requests are admitted without limit or counting (a rate limiter must not take the
lookup down with it) and Redis is left alone for a few seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from django.conf import settings
from django.http import HttpResponse, JsonResponse

from accounts.security import client_address
from hexindex.api import Piggyback, circuit_state, redis_client, redis_send
from project import metrics

log = logging.getLogger(__name__)

EPOCH_KEY = "partners:epoch"
USAGE_KEY = "partners:usage"  # hash: "<day> <key prefix or -> <counter>" -> count
# What a request was, as counted per key and day: kind -> its counter (a batch also counts its points).
KINDS = {"lookup": "lookups", "batch": "batches", "trip": "trips", "feed": "feed_reads"}
BATCH_POINTS, THROTTLED = "batch_points", "throttled"
COUNTERS = (*KINDS.values(), BATCH_POINTS, THROTTLED)
WINDOW_SECONDS = 60
REDIS_PAUSE_SECONDS = 5.0
# A backstop for a key change announced while Redis was down (the epoch never moved): verified keys are checked
# in the database again after this long.
KEY_RECHECK_SECONDS = 300.0
ANONYMOUS = "-"

INVALID_KEY = "Unknown, revoked or expired API key."


@dataclass(frozen=True, slots=True)
class KnownKey:
    pk: str
    prefix: str
    partner_id: int
    rate_per_minute: int
    expires_at: float | None  # unix time
    verified_at: float  # monotonic


@dataclass(slots=True)
class Admission:
    key: KnownKey | None
    limit: int | None
    remaining: int | None


class _State:
    def __init__(self):
        self.lock = threading.Lock()
        self.keys: dict[str, KnownKey] = {}
        self.epoch: bytes | None = None
        self.blocked: dict[str, int] = {}  # rate-limit bucket -> the window it is used up in
        self.redis_paused_until = 0.0


_state = _State()


def _send(commands: list[tuple]) -> list:
    """The commands in one round trip on the lookups' own Redis connection (the counters live in the index's
    Redis so that a lookup's read can carry them)."""
    return redis_send(commands)


def _redis() -> redis.Redis:
    return redis_client()


def raw_key(request) -> str | None:
    """The key sent as `X-API-Key: <key>` (or `Authorization: Api-Key <key>`, the library's own scheme)."""
    key = request.META.get("HTTP_X_API_KEY")
    if key is None:
        authorization = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "api-key":
            key = value
    return key.strip() if key is not None else None


def _verify(key: str) -> KnownKey | None:
    """The key's record when it is usable (not revoked or expired), from the database."""
    from partners.models import PartnerKey

    if len(key) > 100 or "." not in key:
        return None
    try:
        record = PartnerKey.objects.get_from_key(key)
    except PartnerKey.DoesNotExist:
        return None
    if record.has_expired:
        return None
    expires = record.expiry_date.timestamp() if record.expiry_date is not None else None
    return KnownKey(record.pk, record.prefix, record.partner_id, record.rate_per_minute, expires, time.monotonic())


def _known(key: str) -> KnownKey | None:
    known = _state.keys.get(key)
    if known is None or time.monotonic() - known.verified_at > KEY_RECHECK_SECONDS:
        known = _verify(key)
        if known is not None:
            with _state.lock:
                if len(_state.keys) > 10_000:  # far more keys than partners: somebody is cycling them
                    _state.keys.clear()
                _state.keys[key] = known
    if known is not None and known.expires_at is not None and known.expires_at <= time.time():
        return None
    return known


def _refused(status: int, detail: str, code: str, headers: dict | None = None) -> JsonResponse:
    return JsonResponse({"detail": detail, "code": code}, status=status, headers=headers)


@dataclass(slots=True)
class Gate:
    """A request checked before the work (check), judged after it (settle). `also` carries the counting commands;
    the lookup sends them with its own Redis read (saving a round trip), anything else leaves them to settle."""

    key: str | None = None
    known: KnownKey | None = None
    limit: int | None = None
    who: str = ANONYMOUS
    kind: str = "lookup"
    bucket: str = ""
    points: int = 1
    now: float = 0.0
    refused: HttpResponse | None = None
    also: Piggyback | None = None


def _unknown_key() -> JsonResponse:
    return _refused(401, INVALID_KEY, "invalid_api_key", {"WWW-Authenticate": "Api-Key"})


def _too_many(gate: Gate, limit: int) -> JsonResponse:
    metrics.rate_limited(with_key=gate.known is not None)
    window_end = (int(gate.now // WINDOW_SECONDS) + 1) * WINDOW_SECONDS
    detail = (
        f"Rate limit: {limit} points per minute "
        f"({'for this key' if gate.known else 'without an API key, per address'}); this request needs {gate.points}."
    )
    headers = {
        "Retry-After": str(max(1, int(window_end - gate.now + 0.999))),
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": "0",
    }
    response = _refused(429, detail, "rate_limited", headers)
    # Counted in the metrics; a client hammering past its limit must not write a log line per request too.
    response._has_been_logged = True
    return response


def _usage(gate: Gate, day: str, sign: int) -> list[tuple]:
    """The usage counters of the request, counted (sign 1) or taken back (-1)."""
    commands = [("HINCRBY", USAGE_KEY, f"{day} {gate.who} {KINDS[gate.kind]}", sign)]
    if gate.kind == "batch":
        commands.append(("HINCRBY", USAGE_KEY, f"{day} {gate.who} {BATCH_POINTS}", sign * gate.points))
    return commands


def check(request, *, kind: str, points: int = 1) -> Gate:
    """Before the work: the key (401 when it is not a usable one), and a 429 at once for a caller this process has
    already seen over its limit in this window (so a client hammering past its limit costs no lookups)."""
    gate = Gate(key=raw_key(request), kind=kind, points=points, now=time.time())
    if gate.key is not None:
        gate.known = _known(gate.key)
        if gate.known is None:
            gate.refused = _unknown_key()
            return gate
        gate.limit, gate.who = gate.known.rate_per_minute, gate.known.prefix
        gate.bucket = f"partners:rate:k:{gate.known.prefix}"
    else:
        gate.limit = settings.LOOKUP_ANONYMOUS_RATE_PER_MINUTE
        gate.bucket = f"partners:rate:a:{client_address(request)}"
    if time.monotonic() < _state.redis_paused_until:
        return gate  # no counting, no limits for a few seconds
    window = int(gate.now // WINDOW_SECONDS)
    day = datetime.fromtimestamp(gate.now, UTC).date().isoformat()
    if gate.limit is not None and _state.blocked.get(gate.bucket) == window:
        _count_quietly([("HINCRBY", USAGE_KEY, f"{day} {gate.who} {THROTTLED}", 1)])
        gate.refused = _too_many(gate, gate.limit)
        return gate
    commands = [("GET", EPOCH_KEY)]
    if gate.limit is not None:
        counter = f"{gate.bucket}:{window}"
        commands += [("INCRBY", counter, points), ("EXPIRE", counter, 2 * WINDOW_SECONDS)]
    commands += _usage(gate, day, 1)
    gate.also = Piggyback(commands)
    return gate


def settle(gate: Gate) -> tuple[Admission | None, HttpResponse | None]:
    """After the work: (the admission, None) to answer, or (None, a 401/429) to answer instead."""
    if gate.refused is not None:
        return None, gate.refused
    if gate.also is None:
        return Admission(gate.known, None, None), None
    try:
        replies = gate.also.replies
        if replies is None:  # the work did not read the index's Redis (PostGIS answered, or not a lookup)
            if circuit_state() == "open":
                raise redis.RedisError("the index's Redis failed moments ago")  # no waiting for another timeout
            replies = _send(gate.also.commands)
        if isinstance(replies[0], Exception) or (len(replies) > 1 and isinstance(replies[1], Exception)):
            raise redis.RedisError(str(replies[0]))
    except redis.RedisError:
        _state.redis_paused_until = time.monotonic() + REDIS_PAUSE_SECONDS
        log.warning("Redis unavailable: lookups admitted without rate limits or usage counts", exc_info=True)
        return Admission(gate.known, None, None), None
    known, limit = gate.known, gate.limit
    if replies[0] != _state.epoch:
        # Some key changed since this process last looked: forget every key, check this one again.
        with _state.lock:
            _state.keys.clear()
            _state.blocked.clear()
            _state.epoch = replies[0]
        if gate.key is not None:
            known = _known(gate.key)
            if known is None:
                return None, _unknown_key()
            limit = known.rate_per_minute
    if limit is None:
        return Admission(known, None, None), None
    used = int(replies[1])
    if used > limit:
        day = datetime.fromtimestamp(gate.now, UTC).date().isoformat()
        _count_quietly([*_usage(gate, day, -1), ("HINCRBY", USAGE_KEY, f"{day} {gate.who} {THROTTLED}", 1)])
        if used - gate.points >= limit:  # the window is used up, not just too small for this request
            _state.blocked[gate.bucket] = int(gate.now // WINDOW_SECONDS)
            if len(_state.blocked) > 100_000:
                _state.blocked.clear()
        return None, _too_many(gate, limit)
    return Admission(known, limit, limit - used), None


def admit(request, *, kind: str, points: int = 1) -> tuple[Admission | None, HttpResponse | None]:
    """check and settle at once, for work that does not read the index's Redis itself."""
    gate = check(request, kind=kind, points=points)
    if gate.refused is not None:
        return None, gate.refused
    return settle(gate)


def _count_quietly(commands: list[tuple]) -> None:
    try:
        _send(commands)
    except redis.RedisError:
        log.warning("could not count a refused request", exc_info=True)


def finish(response: HttpResponse, admission: Admission | None) -> HttpResponse:
    """The rate-limit headers on an admitted request's response."""
    if admission is not None and admission.limit is not None:
        response["X-RateLimit-Limit"] = str(admission.limit)
        response["X-RateLimit-Remaining"] = str(max(0, admission.remaining))
    return response


def keys_changed() -> None:
    """Every process forgets the keys it verified (called after any key is saved or deleted)."""
    try:
        _redis().incr(EPOCH_KEY)
    except redis.RedisError:
        log.warning("could not announce a key change in Redis; processes keep their keys", exc_info=True)
    with _state.lock:
        _state.keys.clear()


def partner_for_request(request):
    """The Partner whose valid key the request carries, or None (no key, or not a usable one). Checked in the
    database every time (one query, with the partner): management requests are few, and must see a revocation at
    once in every process."""
    from partners.models import PartnerKey

    key = raw_key(getattr(request, "_request", request))
    if key is None or len(key) > 100 or "." not in key:
        return None
    record = PartnerKey.objects.get_usable_keys().select_related("partner").filter(prefix=key.partition(".")[0]).first()
    if record is None or record.has_expired or not record.is_valid(key):
        return None
    return record.partner
