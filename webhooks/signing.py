"""Webhook signatures (no Django): `X-Webhook-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.

The timestamp is part of what is signed, so a captured request cannot be replayed later with a fresh timestamp; a
receiver refuses timestamps older than a few minutes (`verify`'s tolerance). README shows the same check for
partners.
"""

import hashlib
import hmac
import time

SCHEME = "sha256"
TOLERANCE_SECONDS = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Webhook-Signature value for a body sent at `timestamp` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{SCHEME}={digest}"


def verify(
    secret: str, *, timestamp: str, body: bytes, signature: str, tolerance: int = TOLERANCE_SECONDS, now=None
) -> bool:
    """What a receiver does: the timestamp is recent and the signature matches (compared in constant time)."""
    if not timestamp.isascii() or not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)
