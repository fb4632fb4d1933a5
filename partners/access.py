"""Who may look up, how much: partner API keys, a rate limit per key, a low one per address without a key, and
usage per key and day (partners.usage). Used by the lookup endpoints, including the lean (middleware-free) ones,
so it is plain Django: `check(request, kind=..., points=n)` before the work, `settle(gate)` after it (or `admit`
for both at once), `finish(response, admission)` for the headers.

Limits are fixed one-minute windows counted in the index's Redis, with the key-change epoch. A single lookup sends
them along with its own Redis read (hexindex Piggyback), so they cost no round trip of their own; other work sends
them in one round trip. Verified keys are remembered in-process; any change to any key (revoked, expired, new
limit) bumps the epoch, which every request reads, so a revoked key is refused from the next request on. A caller
over its limit is refused, from then on until its window ends, by this process before any lookup.

When Redis cannot count (down, slow, or failed moments ago), limits do not switch off: each process counts the
same windows itself and admits RATE_LIMIT_FALLBACK_SHARE of each limit, so the processes together stay within it,
and the answers carry the limit that applied. Usage is counted in the process either way (partners.usage).

An address sending unknown keys is refused (429) after PARTNER_UNKNOWN_KEYS_PER_MINUTE of them in a minute, before
any database query: guessing keys costs the database nothing.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

import redis
from django.conf import settings
from django.http import HttpResponse, JsonResponse

from accounts.security import client_address
from hexindex.api import Piggyback, circuit_state, redis_client, redis_send
from partners import usage
from project import metrics

log = logging.getLogger(__name__)

EPOCH_KEY = "partners:epoch"
WINDOW_SECONDS = 60
REDIS_PAUSE_SECONDS = 5.0
# A backstop for a key change announced while Redis was down (the epoch never moved): verified keys are checked
# in the database again after this long.
KEY_RECHECK_SECONDS = 300.0
ANONYMOUS = "-"

INVALID_KEY = "Unknown, revoked or expired API key."
TOO_MANY_UNKNOWN_KEYS = "Too many unknown API keys from this address; try again in a minute."


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


class _Windows:
    """Fixed one-minute windows counted in this process: refusals remembered (`blocked`), the fallback counts when
    Redis cannot count, and unknown keys per address."""

    def __init__(self):
        self.window = -1
        self.fallback: dict[str, int] = {}
        self.unknown_keys: dict[str, int] = {}

    def _roll(self, now: float) -> None:
        window = int(now // WINDOW_SECONDS)
        if window != self.window:
            self.window, self.fallback, self.unknown_keys = window, {}, {}

    def add(self, table: str, bucket: str, amount: int, now: float) -> int:
        self._roll(now)
        counts = getattr(self, table)
        if len(counts) > 100_000:  # far more callers than a minute holds: somebody is cycling addresses
            counts.clear()
        counts[bucket] = counts.get(bucket, 0) + amount
        return counts[bucket]

    def get(self, table: str, bucket: str, now: float) -> int:
        self._roll(now)
        return getattr(self, table).get(bucket, 0)


class _State:
    def __init__(self):
        self.lock = threading.Lock()
        self.keys: dict[str, KnownKey] = {}
        self.epoch: bytes | None = None
        self.blocked: dict[str, int] = {}  # rate-limit bucket -> the window it is used up in
        self.redis_paused_until = 0.0
        self.windows = _Windows()


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
    response = JsonResponse({"detail": detail, "code": code}, status=status, headers=headers)
    # Counted in the metrics; a client hammering past its limit must not write a log line per request too.
    response._has_been_logged = True
    return response


@dataclass(slots=True)
class Gate:
    """A request checked before the work (check), judged after it (settle). `also` carries the counting commands;
    the lookup sends them with its own Redis read (saving a round trip), anything else leaves them to settle.
    `admission` is set when this process decided alone (Redis could not count)."""

    key: str | None = None
    known: KnownKey | None = None
    limit: int | None = None
    kind: str = "lookup"
    bucket: str = ""
    points: int = 1
    now: float = 0.0
    refused: HttpResponse | None = None
    also: Piggyback | None = None
    admission: Admission | None = None

    @property
    def key_id(self) -> str | None:
        return self.known.pk if self.known is not None else None


def _unknown_key(gate: Gate, address: str) -> JsonResponse:
    _state.windows.add("unknown_keys", address, 1, gate.now)
    return _refused(401, INVALID_KEY, "invalid_api_key", {"WWW-Authenticate": "Api-Key"})


def _too_many(gate: Gate, limit: int) -> JsonResponse:
    metrics.rate_limited(with_key=gate.known is not None)
    usage.count(key_id=gate.key_id, kind=usage.THROTTLED, at=gate.now)
    detail = (
        f"Rate limit: {limit} points per minute "
        f"({'for this key' if gate.known else 'without an API key, per address'}); this request needs {gate.points}."
    )
    headers = {"Retry-After": _retry_after(gate.now), "X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": "0"}
    return _refused(429, detail, "rate_limited", headers)


def _retry_after(now: float) -> str:
    window_end = (int(now // WINDOW_SECONDS) + 1) * WINDOW_SECONDS
    return str(max(1, int(window_end - now + 0.999)))


def check(request, *, kind: str, points: int = 1, owner_id: int | None = None) -> Gate:
    """Before the work: the key (401 when it is not a usable one), and a 429 at once for a caller this process has
    already seen over its limit in this window (so a client hammering past its limit costs no lookups).
    `owner_id`: a signed-in owner testing their own areas (include_mine), limited per user, not per address."""
    gate = Gate(key=raw_key(request), kind=kind, points=points, now=time.time())
    address = client_address(request)
    if gate.key is not None:
        if _state.windows.get("unknown_keys", address, gate.now) >= settings.PARTNER_UNKNOWN_KEYS_PER_MINUTE:
            metrics.rate_limited(with_key=False)
            gate.refused = _refused(429, TOO_MANY_UNKNOWN_KEYS, "rate_limited", {"Retry-After": _retry_after(gate.now)})
            return gate
        gate.known = _known(gate.key)
        if gate.known is None:
            gate.refused = _unknown_key(gate, address)
            return gate
        gate.limit = gate.known.rate_per_minute
        gate.bucket = f"partners:rate:k:{gate.known.prefix}"
    elif owner_id is not None:
        gate.limit = settings.LOOKUP_OWNER_RATE_PER_MINUTE
        gate.bucket = f"partners:rate:u:{owner_id}"
    else:
        gate.limit = settings.LOOKUP_ANONYMOUS_RATE_PER_MINUTE
        gate.bucket = f"partners:rate:a:{address}"
    if gate.limit is not None and _state.blocked.get(gate.bucket) == int(gate.now // WINDOW_SECONDS):
        gate.refused = _too_many(gate, gate.limit)
        return gate
    if time.monotonic() < _state.redis_paused_until or circuit_state() == "open":
        _decide_here(gate)  # Redis failed moments ago: no waiting for another timeout
        return gate
    commands = [("GET", EPOCH_KEY)]
    if gate.limit is not None:
        counter = f"{gate.bucket}:{int(gate.now // WINDOW_SECONDS)}"
        commands += [("INCRBY", counter, points), ("EXPIRE", counter, 2 * WINDOW_SECONDS)]
    gate.also = Piggyback(commands)
    return gate


def _decide_here(gate: Gate) -> None:
    """Redis cannot count: this process's share of the limit, counted here (sets gate.admission or gate.refused)."""
    if gate.limit is None:
        gate.admission = Admission(gate.known, None, None)
        return
    limit = max(1, math.floor(gate.limit * settings.RATE_LIMIT_FALLBACK_SHARE))
    used = _state.windows.add("fallback", gate.bucket, gate.points, gate.now)
    if used > limit:
        gate.refused = _too_many(gate, limit)
    else:
        gate.admission = Admission(gate.known, limit, limit - used)


def settle(gate: Gate) -> tuple[Admission | None, HttpResponse | None]:
    """After the work: (the admission, None) to answer, or (None, a 401/429) to answer instead. Counts the usage."""
    if gate.refused is None and gate.admission is None:
        _settle_with_redis(gate)
    if gate.refused is not None:
        return None, gate.refused
    usage.count(key_id=gate.key_id, kind=gate.kind, points=gate.points, at=gate.now)
    return gate.admission, None


def _settle_with_redis(gate: Gate) -> None:
    try:
        replies = gate.also.replies
        if replies is None:  # the work did not read the index's Redis (PostGIS answered, or not a lookup)
            if circuit_state() == "open":
                raise redis.RedisError("the index's Redis failed moments ago")  # no waiting for another timeout
            replies = _send(gate.also.commands)
        if any(isinstance(reply, Exception) for reply in replies):
            raise redis.RedisError(str(next(reply for reply in replies if isinstance(reply, Exception))))
    except redis.RedisError:
        _state.redis_paused_until = time.monotonic() + REDIS_PAUSE_SECONDS
        log.warning("Redis unavailable: rate limits counted in this process for a while", exc_info=True)
        _decide_here(gate)
        return
    if replies[0] != _state.epoch:
        # Some key changed since this process last looked: forget every key, check this one again.
        with _state.lock:
            _state.keys.clear()
            _state.blocked.clear()
            _state.epoch = replies[0]
        if gate.key is not None:
            gate.known = _known(gate.key)
            if gate.known is None:
                gate.refused = _refused(401, INVALID_KEY, "invalid_api_key", {"WWW-Authenticate": "Api-Key"})
                return
            gate.limit = gate.known.rate_per_minute
    if gate.limit is None:
        gate.admission = Admission(gate.known, None, None)
        return
    used = int(replies[1])
    if used > gate.limit:
        if used - gate.points >= gate.limit:  # the window is used up, not just too small for this request
            _state.blocked[gate.bucket] = int(gate.now // WINDOW_SECONDS)
            if len(_state.blocked) > 100_000:
                _state.blocked.clear()
        gate.refused = _too_many(gate, gate.limit)
        return
    gate.admission = Admission(gate.known, gate.limit, gate.limit - used)


def admit(request, *, kind: str, points: int = 1) -> tuple[Admission | None, HttpResponse | None]:
    """check and settle at once, for work that does not read the index's Redis itself."""
    gate = check(request, kind=kind, points=points)
    if gate.refused is not None:
        return None, gate.refused
    return settle(gate)


def finish(response: HttpResponse, admission: Admission | None) -> HttpResponse:
    """The rate-limit headers on an admitted request's response; usage written now and then (partners.usage)."""
    if admission is not None and admission.limit is not None:
        response["X-RateLimit-Limit"] = str(admission.limit)
        response["X-RateLimit-Remaining"] = str(max(0, admission.remaining))
    usage.flush_if_due()
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
