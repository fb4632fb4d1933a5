"""Who may look up, how much: partner API keys, a rate limit per key, a low one per address without a key, and
usage counters per key and day. Used by the lookup endpoints, including the lean (middleware-free) ones, so it is
plain Django: `admit(request, points=n)` before answering, `finish(response, admission)` after.

Costs one Redis round trip per request (cache Redis): a fixed one-minute window counter per key or address, the
day's usage counters, and the key-change epoch. Verified keys are remembered in-process; any change to any key
(revoked, expired, new limit) bumps the epoch, which every request reads in that same round trip, so a revoked key
is refused from the next request on, not after a cache timeout.

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

log = logging.getLogger(__name__)

EPOCH_KEY = "partners:epoch"
USAGE_KEY = "partners:usage"  # hash: "<day> <key prefix or -> <requests|points|throttled>" -> count
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
        self.redis_paused_until = 0.0
        self.client: redis.Redis | None = None
        self.client_url: str | None = None


_state = _State()


def _redis() -> redis.Redis:
    url = settings.CACHE_REDIS_URL
    if _state.client is None or _state.client_url != url:
        timeout = settings.HEXINDEX_LOOKUP_TIMEOUT
        _state.client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        _state.client_url = url
    return _state.client


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


def admit(request, *, points: int = 1) -> tuple[Admission | None, HttpResponse | None]:
    """(the admission, None) to go on, or (None, a 401/429 response) to answer instead."""
    key = raw_key(request)
    known = None
    if key is not None:
        known = _known(key)
        if known is None:
            return None, _refused(401, INVALID_KEY, "invalid_api_key", {"WWW-Authenticate": "Api-Key"})
        limit, who = known.rate_per_minute, known.prefix
        bucket = f"partners:rate:k:{known.prefix}"
    else:
        limit, who = settings.LOOKUP_ANONYMOUS_RATE_PER_MINUTE, ANONYMOUS
        bucket = f"partners:rate:a:{client_address(request)}"
    if time.monotonic() < _state.redis_paused_until:
        return Admission(known, None, None), None
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    day = datetime.fromtimestamp(now, UTC).date().isoformat()
    try:
        pipe = _redis().pipeline(transaction=False)
        pipe.get(EPOCH_KEY)
        if limit is not None:
            pipe.incrby(f"{bucket}:{window}", points)
            pipe.expire(f"{bucket}:{window}", 2 * WINDOW_SECONDS)
        pipe.hincrby(USAGE_KEY, f"{day} {who} requests", 1)
        pipe.hincrby(USAGE_KEY, f"{day} {who} points", points)
        replies = pipe.execute()
        epoch = replies[0]
        if epoch != _state.epoch:
            # Some key changed since this process last looked: forget every key, check this one again.
            with _state.lock:
                _state.keys.clear()
                _state.epoch = epoch
            if key is not None:
                known = _known(key)
                if known is None:
                    return None, _refused(401, INVALID_KEY, "invalid_api_key", {"WWW-Authenticate": "Api-Key"})
                limit = known.rate_per_minute
        if limit is None:
            return Admission(known, None, None), None
        used = int(replies[1])
        if used > limit:
            retry_after = max(1, int((window + 1) * WINDOW_SECONDS - now + 0.999))
            undo = _redis().pipeline(transaction=False)
            undo.hincrby(USAGE_KEY, f"{day} {who} requests", -1)
            undo.hincrby(USAGE_KEY, f"{day} {who} points", -points)
            undo.hincrby(USAGE_KEY, f"{day} {who} throttled", 1)
            undo.execute()
            detail = (
                f"Rate limit: {limit} points per minute "
                f"({'for this key' if known else 'without an API key, per address'}); this request needs {points}."
            )
            headers = {"Retry-After": str(retry_after), "X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": "0"}
            return None, _refused(429, detail, "rate_limited", headers)
        return Admission(known, limit, limit - used), None
    except redis.RedisError:
        _state.redis_paused_until = time.monotonic() + REDIS_PAUSE_SECONDS
        log.warning("Redis unavailable: lookups admitted without rate limits or usage counts", exc_info=True)
        return Admission(known, None, None), None


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
    """The Partner whose valid key the request carries, or None (no key, or not a usable one)."""
    from partners.models import Partner

    key = raw_key(getattr(request, "_request", request))
    known = _known(key) if key is not None else None
    return Partner.objects.filter(id=known.partner_id).first() if known is not None else None
