"""Limits on failed logins, per username and per client address, for the API and the admin alike.

DRF's rate throttles limit every request to the login endpoints per address; this limits *failures*, also per
username, so a password cannot be guessed from many addresses either. Counters live in the cache (Redis) and
expire LOGIN_FAILURE_WINDOW seconds after the first failure.
"""

import hashlib

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from rest_framework.throttling import BaseThrottle


def client_address(request) -> str:
    """The client's address: REMOTE_ADDR, or with NUM_PROXIES trusted proxies in front (the load balancer) the
    address they saw. X-Forwarded-For entries added by the client itself are never trusted."""
    if request is None:  # authenticate() called without a request
        return ""
    # The same identity as DRF's throttles, so rate limits and failed-login limits count the same client.
    return BaseThrottle().get_ident(getattr(request, "_request", request)) or ""


def _keys(username: str, address: str) -> list[tuple[str, int]]:
    digest = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return [
        (f"login-failures:user:{digest}", settings.LOGIN_FAILURES_PER_USERNAME),
        (f"login-failures:address:{address}", settings.LOGIN_FAILURES_PER_ADDRESS),
    ]


def login_blocked(username: str, address: str) -> bool:
    counts = cache.get_many([key for key, _ in _keys(username, address)])
    return any(counts.get(key, 0) >= limit for key, limit in _keys(username, address))


def record_login_failure(username: str, address: str) -> None:
    for key, _ in _keys(username, address):
        cache.add(key, 0, timeout=settings.LOGIN_FAILURE_WINDOW)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW)


@receiver(user_login_failed)
def _count_failure(sender, credentials, request=None, **kwargs):
    username = credentials.get("username")
    if username:
        record_login_failure(username, client_address(request))


class LoginLimitBackend(ModelBackend):
    """The model backend, refusing every login for a username or address over its failure limit (the admin's
    login form then says the credentials are wrong; the API answers 429 before it gets here)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username and login_blocked(username, client_address(request)):
            raise PermissionDenied("too many failed logins")
        return super().authenticate(request, username=username, password=password, **kwargs)
