"""End to end with a real Celery worker and broker, consuming only the `webhooks` queue: a failing receiver makes the
task retry (Retry, as Flower shows it) after the backoff, then the batch is delivered, signed, and the cursor moves;
one partner's deliveries never take more than its slots, however many worker threads are free, and the ones that
waited are delivered too; a ping asked for over the API is answered at once and sent by the worker."""

import threading
import time

import pytest

from areas.changes import format_cursor
from testing.feed import feed_settled
from testing.worker import celery_worker
from webhooks import tasks
from webhooks.models import Webhook, WebhookDelivery
from webhooks.services import webhook_create
from webhooks.tests.helpers import Receiver, feed_cursors, signature_valid

# A worker starts in a few seconds, and each wait below gives up after a minute with its log: room for both.
pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]


@pytest.fixture
def worker(request, tmp_path):
    """A worker on the `webhooks` queue, retrying after 1 s, 2 s, ...; tasks published to it. Solo, unless the test
    is parametrized indirectly with {"threads": n}."""
    env = {"WEBHOOKS_RETRY_BASE_SECONDS": "1", "WEBHOOKS_PARTNER_CONCURRENCY": "2"}
    threads = getattr(request, "param", {}).get("threads")
    with celery_worker(tmp_path / "worker.log", queues="webhooks", threads=threads, env=env) as log:
        yield log


def test_a_real_worker_retries_with_backoff_then_delivers(worker, make_webhook, change_areas):
    with Receiver([503]) as receiver:
        webhook = make_webhook(receiver.url)
        start = webhook.cursor
        areas = change_areas(2)
        expected = feed_cursors(start)
        tasks.dispatch.delay()  # what beat sends every WEBHOOKS_POLL_SECONDS

        done = f"webhook {webhook.id}: 2 changes in 1 requests"
        deadline = time.monotonic() + 60
        while done not in worker.read_text():
            assert time.monotonic() < deadline, worker.read_text()
            time.sleep(0.1)
    log = worker.read_text()
    assert "Retry in 1s: DeliveryFailed('webhook" in log and "HTTP 503: receiver says no" in log
    assert receiver.changes() == [expected, expected]
    assert [c["area"] for c in receiver.requests[1].json["changes"]] == areas
    assert all(signature_valid(webhook.secret, r) for r in receiver.requests)
    failed, delivered = WebhookDelivery.objects.filter(webhook=webhook).order_by("started_at")
    assert (failed.ok, delivered.ok, failed.task_id) == (False, True, delivered.task_id)  # one task, retried
    assert (delivered.started_at - failed.started_at).total_seconds() >= 1  # after the backoff
    webhook = Webhook.objects.get(pk=webhook.pk)
    assert (format_cursor(webhook.cursor), webhook.consecutive_failures, webhook.active) == (expected[-1], 0, True)


@pytest.mark.parametrize("worker", [{"threads": 4}], indirect=True)
def test_a_partner_never_has_more_deliveries_in_flight_than_its_slots(worker, make_webhook, change_areas):
    with Receiver(delay=1.5) as receiver:
        webhooks = [make_webhook(receiver.url) for _ in range(4)]  # one partner's; 4 worker threads free
        change_areas(1)
        feed_settled()
        tasks.dispatch.delay()

        deadline = time.monotonic() + 60
        while WebhookDelivery.objects.filter(ok=True).count() < 4:
            assert time.monotonic() < deadline, worker.read_text()
            time.sleep(0.2)
    assert receiver.most_in_flight == 2  # WEBHOOKS_PARTNER_CONCURRENCY
    assert sorted(r.json["webhook"] for r in receiver.requests) == [w.id for w in webhooks]  # none dropped
    assert "PartnerBusy" in worker.read_text()  # the two that found no slot were retried


def test_a_ping_asked_for_over_the_api_is_sent_by_the_worker(worker, partner, key_client):
    client = key_client(partner)
    hold = threading.Event()
    with Receiver(hold=hold) as receiver:
        webhook = webhook_create(partner=partner, url=receiver.url)
        queued = client.post(f"/api/v1/webhooks/{webhook.id}/test/")
        # Answered while the receiver holds its answer back: the request did not wait for the receiver.
        assert (queued.status_code, queued.json()["status"], receiver.answered) == (202, "queued", 0)
        deadline = time.monotonic() + 30
        while not receiver.requests:  # the worker sent it
            assert time.monotonic() < deadline, worker.read_text()
            time.sleep(0.05)
        time.sleep(0.5)
        hold.set()  # answered at least 0.5 s after the request arrived
        while (shown := client.get(queued["Location"]).json())["status"] in ("queued", "sending"):
            assert time.monotonic() < deadline, worker.read_text()
            time.sleep(0.1)
    assert (shown["status"], shown["status_code"], shown["error"]) == ("succeeded", 200, "")
    assert shown["duration_ms"] >= 500
    assert [r.headers["X-Webhook-Delivery"] for r in receiver.requests] == [queued.json()["delivery_id"]]
    assert f"ping {WebhookDelivery.objects.get().pk}: answered 2xx" in worker.read_text()
