"""Signatures: HMAC-SHA256 over "<timestamp>.<body>", checked in constant time, stale timestamps refused."""

import hashlib
import hmac

from webhooks.signing import sign, verify

SECRET = "s" * 32
BODY = b'{"type": "changes", "changes": []}'


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1700000000, BODY) == f"sha256={expected}"


def test_verify_accepts_a_fresh_signed_body_only():
    signature = sign(SECRET, 1700000000, BODY)
    assert verify(SECRET, timestamp="1700000000", body=BODY, signature=signature, now=1700000100)
    assert not verify(SECRET, timestamp="1700000000", body=BODY + b" ", signature=signature, now=1700000100)
    assert not verify("t" * 32, timestamp="1700000000", body=BODY, signature=signature, now=1700000100)
    # The timestamp is signed: replaying the request with a fresh one fails, an old one is too old.
    assert not verify(SECRET, timestamp="1700000100", body=BODY, signature=signature, now=1700000100)
    assert not verify(SECRET, timestamp="1700000000", body=BODY, signature=signature, now=1700000301)
    assert not verify(SECRET, timestamp="17e8", body=BODY, signature=signature, now=1700000100)
