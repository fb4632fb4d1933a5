"""At most WEBHOOKS_PARTNER_CONCURRENCY requests to one partner's webhooks at a time, across all workers (PostgreSQL
advisory locks): deliveries that find the slots taken are retried shortly, not dropped, and other partners' go on."""

import threading
from contextlib import contextmanager

import pytest
from celery.exceptions import Retry
from django.db import connection
from django.utils import timezone

from testing.feed import feed_settled
from webhooks import services, tasks
from webhooks.locks import PARTNER_SLOTS_NAMESPACE
from webhooks.models import Webhook, WebhookDelivery
from webhooks.tests.helpers import Receiver

pytestmark = pytest.mark.django_db(transaction=True)  # threads and other sessions see the committed rows


@contextmanager
def slots_taken(partner_id: int, slots: int):
    """Another worker's session holding all of the partner's slots."""
    other = connection.get_new_connection(connection.get_connection_params())
    other.autocommit = True
    keys = [(PARTNER_SLOTS_NAMESPACE + slot, partner_id) for slot in range(slots)]
    try:
        for key in keys:
            other.cursor().execute("SELECT pg_advisory_lock(%s, %s)", key)
        yield
        # Released before closing: a closed session's locks go only once its server process has noticed.
        for key in keys:
            other.cursor().execute("SELECT pg_advisory_unlock(%s, %s)", key)
    finally:
        other.close()


def deliver_at_once(webhook_ids: list[int]) -> dict[int, services.DeliveryOutcome]:
    """Deliver these webhooks at the same moment, one thread (and database session) each, like separate workers."""
    start = threading.Barrier(len(webhook_ids))
    outcomes: dict[int, services.DeliveryOutcome] = {}

    def run(webhook_id: int) -> None:
        try:
            start.wait()
            outcomes[webhook_id] = services.webhook_deliver(webhook_id=webhook_id)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(webhook_id,)) for webhook_id in webhook_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return outcomes


def test_at_most_the_partners_slots_deliver_at_once_and_other_partners_are_not_held_up(
    make_webhook, make_partner, change_areas, settings
):
    settings.WEBHOOKS_PARTNER_CONCURRENCY = 2
    with Receiver(delay=1.0) as slow, Receiver() as other_receiver:
        mine = [make_webhook(slow.url) for _ in range(4)]
        theirs = make_webhook(other_receiver.url, owner=make_partner())
        change_areas(1)
        feed_settled()
        Webhook.objects.update(queued_at=timezone.now())  # as the dispatcher leaves them
        outcomes = deliver_at_once([w.id for w in [*mine, theirs]])
        most_at_once = slow.most_in_flight
        busy = [w.id for w in mine if outcomes[w.id].busy]
        still_queued = set(Webhook.objects.filter(queued_at__isnull=False).values_list("id", flat=True))
        logged = set(WebhookDelivery.objects.values_list("webhook_id", flat=True))
        failures = set(Webhook.objects.values_list("consecutive_failures", flat=True))
        again = deliver_at_once(busy)  # their retry, once the slots are free

    assert most_at_once == 2
    delivered = [w.id for w in mine if outcomes[w.id].sent == 1]
    assert len(delivered) == 2 and len(busy) == 2
    assert all(outcomes[i].skipped == services.PARTNER_BUSY and outcomes[i].posts == 0 for i in busy)
    assert outcomes[theirs.id].sent == 1 and len(other_receiver.requests) == 1
    # The busy ones are still queued (the dispatcher queues no second task) and nothing is logged or counted.
    assert still_queued == set(busy) and logged == {*delivered, theirs.id} and failures == {0}
    assert [again[i].sent for i in busy] == [1, 1] and len(slow.requests) == 4


def test_a_delivery_task_that_finds_no_slot_is_retried_shortly(make_webhook, change_areas, settings):
    settings.WEBHOOKS_PARTNER_CONCURRENCY = 2
    with Receiver() as receiver:
        webhook = make_webhook(receiver.url)
        change_areas(1)
        feed_settled()
        with slots_taken(webhook.partner_id, 2), pytest.raises(Retry) as retried:
            tasks.deliver.delay(webhook.id)  # eager, propagating: the retry is raised here
        assert receiver.requests == []
        low, high = services.BUSY_RETRY_SECONDS
        assert low <= retried.value.when <= high  # seconds
        assert isinstance(retried.value.exc, services.PartnerBusy)
        result = tasks.deliver.delay(webhook.id)  # the retry, with a slot free
    assert result.result == f"webhook {webhook.id}: 1 changes in 1 requests"
    assert len(receiver.requests) == 1


def test_a_ping_that_finds_no_slot_stays_queued_and_is_retried(make_webhook, settings):
    settings.WEBHOOKS_PARTNER_CONCURRENCY = 1
    with Receiver() as receiver:
        webhook = make_webhook(receiver.url)
        ping = WebhookDelivery.objects.create(
            webhook=webhook, delivery_id="5f0c6c1e-8f7e-4b0a-9a51-2f4f3e1c9d11", kind="ping", status="queued",
            started_at=timezone.now(), ok=False,
        )  # fmt: skip
        with slots_taken(webhook.partner_id, 1), pytest.raises(Retry):
            tasks.ping.delay(ping.pk)
        ping.refresh_from_db()
        assert (ping.status, receiver.requests) == ("queued", [])
        tasks.ping.delay(ping.pk)
    ping.refresh_from_db()
    assert (ping.status, ping.status_code, len(receiver.requests)) == ("succeeded", 200, 1)
