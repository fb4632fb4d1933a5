"""Limits on sign-in attempts, the same for the API's token endpoint, the portal and the Django admin: all three call
django.contrib.auth.authenticate(), and LoginLimitBackend admits or delays each attempt before the password is
checked.

Nothing is ever locked: an attempt waits. Three counters, kept in Redis (the cache's database):

- per (username, client address): after LOGIN_FAILURES_BEFORE_BACKOFF attempts without a success, each further one
  waits twice as long as the one before (1 s, 2 s, 4 s, ... at most LOGIN_BACKOFF_MAX_SECONDS). Someone guessing a
  password from one address slows down only themselves: the same username from another address is not delayed.
- per client address, across usernames (password spraying): the same back-off after LOGIN_FAILURES_PER_ADDRESS.
- per username, across addresses (a guess spread over many addresses): after the generous
  LOGIN_FAILURES_PER_USERNAME, attempts wait too, at most LOGIN_USERNAME_MAX_WAIT seconds: slowed, not locked. An
  address that signed in as that username in the last LOGIN_KNOWN_ADDRESS_DAYS days is not slowed by it, so staff
  at their usual address sign in during such an attack.

An attempt is charged when admitted (check and charge are one Lua script: parallel attempts cannot all slip through
before any is counted) and taken back when it succeeds. Counters are forgotten LOGIN_FAILURE_WINDOW seconds after
their latest attempt.

Fail closed: when Redis cannot be read or written, no attempt is admitted (LoginLimitsUnavailable: a JSON 503 on
the API, an error message on the sign-in forms). The cache itself ignores Redis errors (IGNORE_EXCEPTIONS), which
would answer "nothing counted" and let guessing go unlimited, so these counters use its connection directly. Each
Redis call touches keys of one hash tag only (Redis Cluster slots).
"""

import hashlib
import ipaddress
import logging
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import redis
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django_redis import get_redis_connection
from django_redis.exceptions import ConnectionInterrupted
from rest_framework.throttling import ScopedRateThrottle

from core.errors import DependencyUnavailable, TooManyRequests
from core.networks import client_address

log = logging.getLogger(__name__)

_LUA = Path(__file__).resolve().parent / "lua"
REDIS_ERRORS = (redis.RedisError, ConnectionInterrupted)

# What clients are told. Which limit delayed an attempt is not said: it would tell a guesser how to spread out.
LOGIN_DELAYED = "Too many failed sign-in attempts."
LOGIN_DELAYED_FORM = "Too many failed sign-in attempts: please wait {wait} before trying again."
LOGIN_LIMITS_UNAVAILABLE = (
    "Sign-in and registration are unavailable right now: the limits on attempts cannot be checked (Redis). Nothing "
    "was changed. Please retry shortly."
)


class LoginDelayed(TooManyRequests):
    """This attempt must wait `wait` seconds (the API answers 429 with Retry-After, the forms say so)."""

    code = "login_delayed"

    def __init__(self, wait: int):
        super().__init__(LOGIN_DELAYED, retry_after=wait)
        self.wait = wait


class LoginLimitsUnavailable(DependencyUnavailable):
    """The sign-in and registration limits cannot be read or written (Redis): nothing is admitted."""

    code = "login_limits_unavailable"

    def __init__(self, reason: str = ""):
        super().__init__(LOGIN_LIMITS_UNAVAILABLE, service="redis")
        self.reason = reason


def _address_id(address: str) -> str:
    """IPv6 clients by their /64: one subscriber gets a whole /64, and could otherwise change address per guess."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)


@dataclass(frozen=True)
class _Counters:
    """Redis keys of one attempt, in the two groups a script may touch together (each shares a hash tag)."""

    by_username: list[str]  # [(username, address), username across addresses]
    by_address: list[str]  # [address across usernames]


def _counters(username: str, address: str) -> _Counters:
    user = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    where = _address_id(address)
    return _Counters(
        by_username=[cache.make_key(f"login:{{u:{user}}}:from:{where}"), cache.make_key(f"login:{{u:{user}}}:all")],
        by_address=[cache.make_key(f"login:{{a:{where}}}:all")],
    )


def _redis() -> redis.Redis:
    return get_redis_connection("default")


@lru_cache(maxsize=8)
def _script(client: redis.Redis, name: str):
    return client.register_script((_LUA / f"{name}.lua").read_text())


def _run(name: str, keys: list[str], args: list) -> int:
    client = _redis()
    try:
        return _script(client, name)(keys=keys, args=args, client=client)
    except REDIS_ERRORS as exc:
        log.warning("sign-in limits unavailable: %s: %s", exc.__class__.__name__, exc)
        raise LoginLimitsUnavailable("the sign-in limits cannot be read or written") from exc


def login_attempt_admit(*, username: str, address: str) -> None:
    """Admit (and count) one attempt, or raise LoginDelayed with the seconds to wait, or LoginLimitsUnavailable."""
    counters = _counters(username, address)
    keep = settings.LOGIN_FAILURE_WINDOW
    longest = settings.LOGIN_BACKOFF_MAX_SECONDS
    # The address first: an attempt it refuses is charged nowhere. One the username then refuses was charged to
    # the address, which only slows that address down further.
    wait = _run("admit", counters.by_address, [time.time(), keep, settings.LOGIN_FAILURES_PER_ADDRESS, longest, 0])
    if not wait:
        wait = _run(
            "admit",
            counters.by_username,
            [
                time.time(),
                keep,
                *(settings.LOGIN_FAILURES_BEFORE_BACKOFF, longest, 0),  # this address and username
                *(settings.LOGIN_FAILURES_PER_USERNAME, settings.LOGIN_USERNAME_MAX_WAIT, 1),  # waived when known
            ],
        )
    if wait:
        raise LoginDelayed(int(wait))


def login_attempt_succeeded(*, username: str, address: str) -> None:
    """The attempt was the right password: it is taken back, and the address becomes known to the username. A
    failure here is only logged: the attempt was admitted and counted, and refusing the right password would help
    no one."""
    counters = _counters(username, address)
    known_for = settings.LOGIN_KNOWN_ADDRESS_DAYS * 86_400
    try:
        _run("succeeded", counters.by_username, [known_for])
        _run("succeeded", counters.by_address, [0])
    except LoginLimitsUnavailable:
        pass


class LoginLimitBackend(ModelBackend):
    """The model backend, behind the attempt limits above. LoginDelayed and LoginLimitsUnavailable are not
    PermissionDenied: they leave authenticate() as they are, for the caller to report (a delayed attempt is not
    reported to Django as a failed login, nor counted again)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if not username:
            return super().authenticate(request, username=username, password=password, **kwargs)
        address = client_address(request)
        login_attempt_admit(username=username, address=address)
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            login_attempt_succeeded(username=username, address=address)
        return user


class AuthRateThrottle(ScopedRateThrottle):
    """DRF's per-address rate on registration and sign-in (scope `auth`), failing closed: its history is read
    through django-redis's client, which raises on a Redis error where the cache would answer "none yet"."""

    @property
    def cache(self):
        return cache.client

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except REDIS_ERRORS as exc:
            log.warning("registration and sign-in rates unavailable: %s: %s", exc.__class__.__name__, exc)
            raise LoginLimitsUnavailable("the registration and sign-in rates cannot be read or written") from exc
