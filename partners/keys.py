"""Partner API keys on the request path: which key a request carries, and whether it is usable.

Keys are stored as digests (djangorestframework-api-key), so checking one costs a database query and a hash:
verified keys are remembered in this process. Any change to any key (revoked, expired, new limit) bumps an epoch
in Redis, which every request reads in the round trip its rate limit makes anyway (partners.limits); a process that
sees a new epoch forgets every key it knew, so a revocation applies from the next request on in every process.
The epoch is kept once per index bucket (hexindex.api.bucket_tags), so a lookup reads it inside its own bucket's
transaction and no single key is read by every request (on a Redis Cluster, a hot key's node would take them all). If
Redis stays away, remembered keys are checked again after KEY_RECHECK_SECONDS.

An address sending unknown keys is refused after PARTNER_UNKNOWN_KEYS_PER_MINUTE of them in a minute (per
process), before any database query: guessing keys costs the database nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import redis
from django.conf import settings

from core.errors import NotAuthenticated, TooManyRequests
from core.redis import index_client
from hexindex.api import bucket_tags

log = logging.getLogger(__name__)

KEY_RECHECK_SECONDS = 300.0
WINDOW_SECONDS = 60

INVALID_KEY = "Unknown, revoked or expired API key."
TOO_MANY_UNKNOWN_KEYS = "Too many unknown API keys from this address; try again in a minute."


class InvalidKey(NotAuthenticated):
    """401: the key sent is not a usable one (never treated as no key)."""

    code = "invalid_api_key"

    def __init__(self):
        super().__init__(INVALID_KEY, headers={"WWW-Authenticate": "Api-Key"})


@dataclass(frozen=True, slots=True)
class KnownKey:
    pk: str
    prefix: str
    partner_id: int
    rate_per_minute: int
    expires_at: float | None  # unix time
    verified_at: float  # monotonic


class _Keys:
    def __init__(self):
        self.lock = threading.Lock()
        self.known: dict[str, KnownKey] = {}
        self.epoch: bytes | None = None
        self.unknown_window = -1
        self.unknown_by_address: dict[str, int] = {}


_keys = _Keys()


def raw_key(request) -> str | None:
    """The key sent as `X-API-Key: <key>` (or `Authorization: Api-Key <key>`, the library's own scheme)."""
    key = request.META.get("HTTP_X_API_KEY")
    if key is None:
        authorization = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "api-key":
            key = value
    return key.strip() if key is not None else None


def usable_key(key: str, *, address: str, now: float) -> KnownKey:
    """The key's record, from this process's memory or the database; InvalidKey (401), or TooManyRequests (429) for
    an address that sent too many unknown keys this minute."""
    window = int(now // WINDOW_SECONDS)
    if window != _keys.unknown_window:
        _keys.unknown_window, _keys.unknown_by_address = window, {}
    if _keys.unknown_by_address.get(address, 0) >= settings.PARTNER_UNKNOWN_KEYS_PER_MINUTE:
        retry_after = max(1, int((window + 1) * WINDOW_SECONDS - now + 0.999))
        raise TooManyRequests(TOO_MANY_UNKNOWN_KEYS, retry_after=retry_after)
    known = _known(key)
    if known is None:
        if len(_keys.unknown_by_address) > 100_000:  # far more addresses than a minute holds: somebody cycles them
            _keys.unknown_by_address.clear()
        _keys.unknown_by_address[address] = _keys.unknown_by_address.get(address, 0) + 1
        raise InvalidKey()
    return known


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
    known = _keys.known.get(key)
    if known is None or time.monotonic() - known.verified_at > KEY_RECHECK_SECONDS:
        known = _verify(key)
        if known is not None:
            with _keys.lock:
                if len(_keys.known) > 10_000:  # far more keys than partners: somebody is cycling them
                    _keys.known.clear()
                _keys.known[key] = known
    if known is not None and known.expires_at is not None and known.expires_at <= time.time():
        return None
    return known


def epoch_key(tag: str) -> str:
    """The key-change epoch's copy in the bucket with hash tag `tag`."""
    return f"partners:{tag}:epoch"


def epoch_command(tag: str) -> tuple:
    return ("GET", epoch_key(tag))


def epoch_seen(epoch: bytes | None) -> bool:
    """The epoch read from Redis (epoch_command): True when it moved since this process last looked, and so every
    remembered key was forgotten (the caller checks its key again)."""
    if epoch == _keys.epoch:
        return False
    with _keys.lock:
        _keys.known.clear()
        _keys.epoch = epoch
    return True


def keys_changed() -> None:
    """Every process forgets the keys it verified (called after any key is saved or deleted)."""
    try:
        pipe = index_client().pipeline(transaction=False)
        for tag in bucket_tags():
            pipe.incr(epoch_key(tag))
        pipe.execute()
    except redis.RedisError:
        log.warning("could not announce a key change in Redis; processes keep their keys", exc_info=True)
    with _keys.lock:
        _keys.known.clear()


def forget_all() -> None:
    """A fresh process's memory (tests)."""
    global _keys
    _keys = _Keys()


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
