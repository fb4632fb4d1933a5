"""The request itself, against real local receivers: one deadline for the whole attempt (a receiver trickling bytes,
a name lookup that hangs), HTTPS with the certificate checked against the URL's host, and the connection made to
the address that was checked (a resolver that changes its answer cannot redirect it)."""

import time

import pytest

from webhooks import services
from webhooks.models import WebhookDelivery
from webhooks.tests.helpers import (
    FakeDNS,
    Receiver,
    TrickleReceiver,
    feed_settled,
    self_signed_certificate,
    signature_valid,
)
from webhooks.transport import DEADLINE_PASSED, TLS_UNTRUSTED

pytestmark = pytest.mark.django_db(transaction=True)  # the feed only lists committed transactions

# Seconds past the deadline an attempt may take. The deadline is the behaviour under test, so these tests bound time;
# the margin is generous for a loaded machine (scheduling, a slow handshake), yet far below what an attempt without
# the deadline takes: a trickling receiver goes on for minutes, and the hanging name lookup for a minute.
MARGIN = 3.0


def deliver_timed(webhook) -> tuple[services.DeliveryOutcome, float]:
    feed_settled()
    started = time.monotonic()
    outcome = services.webhook_deliver(webhook_id=webhook.id)
    return outcome, time.monotonic() - started


@pytest.mark.parametrize(
    ("where", "step"), [("head", "waiting for the answer"), ("body", "reading the answer")], ids=["head", "body"]
)
def test_a_receiver_trickling_its_answer_is_cut_off_at_the_deadline(make_webhook, change_areas, settings, where, step):
    settings.WEBHOOKS_REQUEST_DEADLINE_SECONDS = 2.0
    with TrickleReceiver(where=where) as receiver:
        webhook = make_webhook(receiver.url)
        start = webhook.cursor
        change_areas(1)
        outcome, took = deliver_timed(webhook)
    assert receiver.requests == 1  # it was reached, and kept answering a byte a second
    assert 2.0 <= took < 2.0 + MARGIN
    assert outcome.error == DEADLINE_PASSED.format(seconds=2, step=step)
    assert outcome.error == f"No complete answer within the 2 s limit (gave up while {step})."
    attempt = WebhookDelivery.objects.get(webhook=webhook)
    assert (attempt.status, attempt.ok, attempt.status_code, attempt.error) == ("failed", False, None, outcome.error)
    assert 2000 <= attempt.duration_ms < (2.0 + MARGIN) * 1000
    webhook.refresh_from_db()
    assert (webhook.cursor, webhook.consecutive_failures) == (start, 1)  # kept for the retry


def test_a_name_lookup_that_hangs_counts_against_the_deadline(make_webhook, change_areas, settings, monkeypatch):
    settings.WEBHOOKS_REQUEST_DEADLINE_SECONDS = 1.0
    FakeDNS(monkeypatch, {"slow.partner.example": ["8.8.8.8"]}, delay=60.0)
    webhook = make_webhook("https://slow.partner.example/hook")
    change_areas(1)
    outcome, took = deliver_timed(webhook)
    assert took < 1.0 + MARGIN
    assert outcome.error == DEADLINE_PASSED.format(seconds=1, step="resolving the host name")


@pytest.fixture
def certificate(tmp_path):
    return self_signed_certificate(tmp_path, "hooks.partner.example")


def test_changes_are_delivered_over_https_to_a_trusted_certificate(
    make_webhook, change_areas, settings, monkeypatch, certificate
):
    settings.WEBHOOKS_CA_BUNDLE = certificate.cert  # the test's CA instead of the system's
    FakeDNS(monkeypatch, {"hooks.partner.example": ["127.0.0.1"]})
    with Receiver(tls=certificate) as receiver:
        webhook = make_webhook(f"https://hooks.partner.example:{receiver.port}/hooks/areas?source=test")
        areas = change_areas(2)
        outcome, _ = deliver_timed(webhook)
    assert (outcome.sent, outcome.error) == (2, "")
    (request,) = receiver.requests
    assert [c["area"] for c in request.json["changes"]] == areas
    assert request.headers["Host"] == f"hooks.partner.example:{receiver.port}"
    assert signature_valid(webhook.secret, request)


@pytest.mark.parametrize("trusted", [False, True], ids=["unknown CA", "another host's certificate"])
def test_a_certificate_not_valid_for_the_urls_host_is_refused(
    make_webhook, change_areas, settings, monkeypatch, certificate, trusted
):
    settings.WEBHOOKS_CA_BUNDLE = certificate.cert if trusted else None  # None: the system's trust store
    FakeDNS(monkeypatch, {"hooks.partner.example": ["127.0.0.1"], "other.partner.example": ["127.0.0.1"]})
    host = "other.partner.example" if trusted else "hooks.partner.example"
    with Receiver(tls=certificate) as receiver:
        webhook = make_webhook(f"https://{host}:{receiver.port}/hooks")
        change_areas(1)
        outcome, _ = deliver_timed(webhook)
    assert receiver.requests == []
    reason = "Hostname mismatch" if trusted else "self-signed certificate"
    assert outcome.error.startswith(TLS_UNTRUSTED.split("(")[0]) and reason in outcome.error


def test_the_request_goes_to_the_address_that_was_checked(make_webhook, change_areas, monkeypatch):
    """A rebinding resolver: the first answer (127.0.0.2, allowed here as this machine's) is checked; any later
    lookup would say 127.0.0.1, where another server listens on the same port. Nothing may reach that one."""
    with Receiver(host="127.0.0.2") as checked, Receiver(port=checked.port) as rebound:
        dns = FakeDNS(monkeypatch, {"rebind.partner.example": ["127.0.0.2", "127.0.0.1"]})
        webhook = make_webhook(f"http://rebind.partner.example:{checked.port}/hooks")
        change_areas(1)
        outcome, _ = deliver_timed(webhook)
    assert (outcome.sent, outcome.error) == (1, "")
    assert len(checked.requests) == 1 and rebound.requests == []
    assert dns.lookups == {"rebind.partner.example": 1}
    assert checked.requests[0].headers["Host"] == f"rebind.partner.example:{checked.port}"
