"""The receiver README tells a newcomer to run (webhooks/receiver.py): it checks signatures, answers 401 to a wrong
one (so the sender retries) and does not apply a repeated change twice."""

import io
import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from webhooks.receiver import WebhookReceiver
from webhooks.signing import sign

SECRET = "s3cret-for-tests"


@pytest.fixture
def receiver():
    server = WebhookReceiver(("127.0.0.1", 0), secret=SECRET, out=io.StringIO())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def post(server: WebhookReceiver, payload: dict, *, secret: str = SECRET, timestamp: int | None = None) -> int:
    body = json.dumps(payload).encode()
    timestamp = int(time.time()) if timestamp is None else timestamp
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.server_port}/",
        data=body,
        headers={
            "X-Webhook-Event": payload["type"],
            "X-Webhook-Delivery": "0123456789abcdef",
            "X-Webhook-Timestamp": str(timestamp),
            "X-Webhook-Signature": sign(secret, timestamp, body),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as refused:
        return refused.code


CHANGE = {"cursor": "7343-2215", "area": 12, "provider": 3, "kind": "updated", "fields": ["price"]}


def test_a_correctly_signed_change_is_printed_and_answered_200(receiver):
    assert post(receiver, {"type": "changes", "changes": [CHANGE], "cursor": "7343-2215"}) == 200
    assert receiver.lines[0].split("  ", 1)[1] == (
        "changes delivery 01234567: signature ok, 1 change(s) up to cursor 7343-2215\n"
        "    updated area 12 of provider 3: price -> 200"
    )


def test_a_wrong_signature_or_an_old_timestamp_is_refused_with_401(receiver):
    assert post(receiver, {"type": "ping"}, secret="not-the-secret") == 401
    assert post(receiver, {"type": "ping"}, timestamp=int(time.time()) - 3600) == 401
    assert all("signature WRONG" in line for line in receiver.lines)


def test_a_repeated_request_is_not_applied_twice(receiver):
    payload = {"type": "changes", "changes": [CHANGE], "cursor": "7343-2215"}
    assert post(receiver, payload) == 200
    assert post(receiver, payload) == 200  # a retry after a timeout the sender noticed and we did not
    assert receiver.lines[1].split("  ", 1)[1] == (
        "changes delivery 01234567: signature ok, 1 change(s) (1 seen before) up to cursor 7343-2215 -> 200"
    )
    assert receiver.applied_cursor == (7343, 2215)


def test_a_receiver_told_to_fail_answers_that_and_applies_nothing(receiver):
    receiver.status = 503
    assert post(receiver, {"type": "changes", "changes": [CHANGE], "cursor": "7343-2215"}) == 503
    assert receiver.applied_cursor == (-1, -1)
