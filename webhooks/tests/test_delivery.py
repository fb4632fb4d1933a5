"""Delivery to a real local receiver: signed, ordered batches; the cursor moves only after a 2xx; failures are
retried with backoff through Celery (eager here), then the webhook is disabled; one delivery per webhook at a time;
the dispatcher queues only webhooks with changes waiting."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from areas.changes import format_cursor
from areas.services import area_update
from providers.services import provider_set_approval, provider_update
from testing.feed import feed_settled
from testing.geo import square
from webhooks import services, tasks
from webhooks.locks import LOCK_NAMESPACE
from webhooks.models import Webhook, WebhookDelivery
from webhooks.services import WebhookDisabled, retry_wait
from webhooks.targets import RESOLVES_NOT_ALLOWED
from webhooks.tests.helpers import FakeDNS, Receiver, feed_cursors, signature_valid
from webhooks.transport import DEADLINE_PASSED
from worker.celery import app as celery_app

pytestmark = pytest.mark.django_db(transaction=True)  # the feed only lists committed transactions


def deliver(webhook: Webhook, task_id: str = "") -> services.DeliveryOutcome:
    feed_settled()
    return services.webhook_deliver(webhook_id=webhook.id, task_id=task_id)


def test_changes_are_delivered_in_order_in_signed_batches_and_the_cursor_follows(
    receiver, make_webhook, change_areas, settings
):
    settings.WEBHOOKS_BATCH_SIZE = 2
    webhook = make_webhook(receiver.url)
    start = webhook.cursor
    areas = change_areas(3)
    expected = feed_cursors(start)
    assert len(expected) == 3

    outcome = deliver(webhook)

    assert (outcome.sent, outcome.posts, outcome.error) == (3, 2, "")
    assert receiver.changes() == [expected[:2], expected[2:]]
    first, second = receiver.requests
    assert [c["area"] for r in receiver.requests for c in r.json["changes"]] == areas
    assert [c["kind"] for r in receiver.requests for c in r.json["changes"]] == ["created"] * 3
    assert first.json["cursor"] == expected[1] and second.json["cursor"] == expected[2]
    assert first.json["type"] == "changes" and first.json["webhook"] == webhook.id
    assert first.path == "/hooks/areas?source=test"
    assert all(signature_valid(webhook.secret, r) for r in receiver.requests)
    assert not signature_valid("another secret of enough length", first)
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["X-Webhook-Id"] == str(webhook.id)
    assert first.headers["X-Webhook-Event"] == "changes"
    assert first.headers["User-Agent"].startswith("ServiceAreaLookup-Webhooks/")
    assert first.headers["X-Webhook-Delivery"] != second.headers["X-Webhook-Delivery"]

    webhook.refresh_from_db()
    assert format_cursor(webhook.cursor) == expected[2]
    assert (webhook.consecutive_failures, webhook.last_status_code, webhook.last_error) == (0, 200, "")
    assert webhook.last_success_at is not None
    log = list(WebhookDelivery.objects.filter(webhook=webhook).order_by("started_at", "id"))
    assert [(d.ok, d.change_count, d.first_cursor, d.last_cursor) for d in log] == [
        (True, 2, expected[0], expected[1]),
        (True, 1, expected[2], expected[2]),
    ]
    assert [str(d.delivery_id) for d in log] == [r.headers["X-Webhook-Delivery"] for r in receiver.requests]

    assert deliver(webhook).posts == 0  # nothing new: nothing sent
    assert len(receiver.requests) == 2


def test_a_new_webhook_is_sent_only_changes_from_its_creation_on(receiver, make_webhook, change_areas):
    change_areas(2)
    feed_settled()
    webhook = make_webhook(receiver.url)
    later = change_areas(1)
    deliver(webhook)
    assert [[c["area"] for c in r.json["changes"]] for r in receiver.requests] == [later]


def test_a_failed_batch_keeps_the_cursor_and_goes_out_again_with_newer_changes(make_webhook, change_areas):
    with Receiver([500]) as receiver:
        webhook = make_webhook(receiver.url)
        start = webhook.cursor
        change_areas(2)
        failed = deliver(webhook, task_id="task-1")
        assert (failed.sent, failed.error, failed.retry_in) == (0, "HTTP 500: receiver says no", 10)
        webhook.refresh_from_db()
        assert webhook.cursor == start
        assert (webhook.consecutive_failures, webhook.last_status_code) == (1, 500)
        assert webhook.last_error == "HTTP 500: receiver says no"
        assert webhook.retry_task_id == "task-1"
        assert timedelta(seconds=8) < webhook.retry_at - timezone.now() <= timedelta(seconds=10)

        change_areas(1)
        expected = feed_cursors(start)
        succeeded = deliver(webhook, task_id="task-1")  # the retry
        assert (succeeded.sent, succeeded.error) == (3, "")
        assert receiver.changes() == [expected[:2], expected]  # the same changes first, nothing skipped
        webhook.refresh_from_db()
        assert format_cursor(webhook.cursor) == expected[-1]
        assert (webhook.consecutive_failures, webhook.retry_at, webhook.retry_task_id) == (0, None, "")

        newest = change_areas(1)
        deliver(webhook)
        assert [c["area"] for c in receiver.requests[-1].json["changes"]] == newest  # nothing sent twice


@pytest.fixture
def eager_retries():
    """Eager tasks that retry run their retries at once, in-process (an eager task that propagates errors would
    raise its first Retry instead)."""
    propagates = celery_app.conf.task_eager_propagates
    celery_app.conf.task_eager_propagates = False
    yield
    celery_app.conf.task_eager_propagates = propagates


def test_the_task_retries_a_failing_receiver_until_it_accepts(make_webhook, change_areas, eager_retries):
    with Receiver([500, 503]) as receiver:
        webhook = make_webhook(receiver.url)
        change_areas(2)
        feed_settled()
        result = tasks.deliver.delay(webhook.id)  # eager: Celery runs the retries at once, in-process
    assert (result.state, result.result) == ("SUCCESS", f"webhook {webhook.id}: 2 changes in 1 requests")
    assert len(receiver.requests) == 3
    assert receiver.changes()[0] == receiver.changes()[1] == receiver.changes()[2]
    assert len({r.headers["X-Webhook-Delivery"] for r in receiver.requests}) == 3
    log = WebhookDelivery.objects.filter(webhook=webhook).order_by("started_at", "id")
    assert [(d.ok, d.status_code) for d in log] == [(False, 500), (False, 503), (True, 200)]
    assert len({d.task_id for d in log}) == 1  # one task, retried (Flower shows it once, with its retries)
    webhook.refresh_from_db()
    assert format_cursor(webhook.cursor) == receiver.changes()[2][-1]
    assert (webhook.consecutive_failures, webhook.active) == (0, True)


def test_after_the_last_allowed_failure_the_webhook_is_disabled_and_the_task_fails(
    make_webhook, change_areas, settings, eager_retries
):
    settings.WEBHOOKS_MAX_FAILURES = 3
    with Receiver(then=502) as receiver:
        webhook = make_webhook(receiver.url)
        start = webhook.cursor
        change_areas(1)
        feed_settled()
        result = tasks.deliver.delay(webhook.id)
    assert result.state == "FAILURE" and isinstance(result.result, WebhookDisabled)
    assert str(result.result) == (
        f"webhook {webhook.id}: Disabled after 3 consecutive failed deliveries; last: HTTP 502: receiver says no"
    )
    assert len(receiver.requests) == 3
    webhook.refresh_from_db()
    assert (webhook.active, webhook.consecutive_failures, webhook.cursor) == (False, 3, start)
    assert webhook.disabled_at is not None and webhook.retry_at is None
    assert tasks.dispatch() == {"queued": []}  # a disabled webhook is left alone


def test_410_gone_disables_the_webhook_at_once(make_webhook, change_areas):
    with Receiver([410]) as receiver:
        webhook = make_webhook(receiver.url)
        change_areas(1)
        outcome = deliver(webhook)
    assert outcome.disabled == services.DISABLED_GONE and outcome.retry_in is None
    webhook.refresh_from_db()
    assert (webhook.active, webhook.disabled_reason) == (False, services.DISABLED_GONE)


def test_backoff_doubles_from_the_base_and_is_capped(settings):
    settings.WEBHOOKS_RETRY_BASE_SECONDS, settings.WEBHOOKS_RETRY_MAX_SECONDS = 10, 3600
    assert [retry_wait(n) for n in (1, 2, 3, 4, 9, 10, 33, 1000)] == [10, 20, 40, 80, 2560, 3600, 3600, 3600]
    # The default limit spans about a day of attempts.
    assert 23 * 3600 < sum(retry_wait(n) for n in range(1, 33)) < 25 * 3600


def test_redirects_are_failures_and_not_followed(make_webhook, change_areas):
    with Receiver([302], headers={"Location": "http://127.0.0.1:1/elsewhere"}) as receiver:
        webhook = make_webhook(receiver.url)
        change_areas(1)
        outcome = deliver(webhook)
    assert outcome.error.startswith("HTTP 302 (redirects are not followed: http://127.0.0.1:1/elsewhere)")
    assert len(receiver.requests) == 1


def test_a_slow_receiver_times_out_and_the_batch_is_kept(make_webhook, change_areas, settings):
    settings.WEBHOOKS_REQUEST_DEADLINE_SECONDS = 0.3
    with Receiver(delay=1.0) as receiver:
        webhook = make_webhook(receiver.url)
        start = webhook.cursor
        change_areas(1)
        outcome = deliver(webhook)
    assert outcome.error == DEADLINE_PASSED.format(seconds=0.3, step="waiting for the answer")
    assert outcome.retry_in == 10
    webhook.refresh_from_db()
    assert webhook.cursor == start and webhook.last_status_code is None


def test_a_refused_connection_is_a_failure(make_webhook, change_areas):
    with Receiver() as receiver:
        url = receiver.url
    webhook = make_webhook(url)  # nobody listens there any more
    change_areas(1)
    outcome = deliver(webhook)
    assert "Connection refused" in outcome.error and outcome.retry_in == 10


def test_loopback_is_refused_when_sending_unless_local_receivers_are_allowed(
    receiver, make_webhook, change_areas, settings
):
    webhook = make_webhook(receiver.url)
    change_areas(1)
    settings.WEBHOOKS_ALLOW_LOCAL = False
    outcome = deliver(webhook)
    assert outcome.error == RESOLVES_NOT_ALLOWED.format(host="127.0.0.1")  # the host as the partner wrote it
    assert receiver.requests == []


def test_an_internal_address_a_name_resolves_to_is_logged_but_never_shown_to_the_partner(
    make_webhook, change_areas, monkeypatch, caplog, partner, key_client
):
    FakeDNS(monkeypatch, {"hooks.partner.example": ["10.1.2.3"]})
    webhook = make_webhook("https://hooks.partner.example/areas")
    change_areas(1)
    outcome = deliver(webhook)
    assert outcome.error == RESOLVES_NOT_ALLOWED.format(host="hooks.partner.example")
    shown = key_client(partner).get(f"/api/v1/webhooks/{webhook.id}/").json()
    deliveries = key_client(partner).get(f"/api/v1/webhooks/{webhook.id}/deliveries/").json()
    assert shown["last_error"] == deliveries[0]["error"] == outcome.error
    assert "10.1.2.3" not in str(shown) + str(deliveries)
    assert "hooks.partner.example resolves to 10.1.2.3" in caplog.text  # the server's log has it


def test_only_one_delivery_of_a_webhook_runs_at_a_time(receiver, make_webhook, change_areas):
    webhook = make_webhook(receiver.url)
    change_areas(1)
    other = connection.get_new_connection(connection.get_connection_params())  # another worker's session
    try:
        other.autocommit = True
        other.cursor().execute("SELECT pg_advisory_lock(%s, %s)", [LOCK_NAMESPACE, webhook.id])  # delivering
        busy = deliver(webhook)
        # Released before closing: a closed session's locks go only once its server process has noticed.
        other.cursor().execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_NAMESPACE, webhook.id])
    finally:
        other.close()
    assert busy.skipped == "another delivery of this webhook is running" and receiver.requests == []
    assert deliver(webhook).sent == 1


def test_a_pending_retry_is_not_cut_short_by_another_delivery(receiver, make_webhook, change_areas):
    webhook = make_webhook(receiver.url)
    change_areas(1)
    Webhook.objects.filter(pk=webhook.pk).update(retry_at=timezone.now() + timedelta(minutes=5), retry_task_id="t1")
    assert deliver(webhook, task_id="t2").skipped.startswith("a retry is due at")
    assert tasks.dispatch() == {"queued": []}
    assert receiver.requests == []
    assert deliver(webhook, task_id="t1").sent == 1  # the retry itself goes ahead


def test_dispatch_queues_active_webhooks_with_changes_waiting(make_webhook, change_areas):
    with Receiver() as waiting, Receiver() as current, Receiver() as paused:
        behind = make_webhook(waiting.url)
        stopped = make_webhook(paused.url)
        services.webhook_update(webhook=stopped, data={"active": False})
        change_areas(2)
        feed_settled()
        up_to_date = make_webhook(current.url)

        assert tasks.dispatch() == {"queued": [behind.id]}  # eager: delivered right away
        assert [len(r.requests) for r in (waiting, current, paused)] == [1, 0, 0]
        assert len(waiting.requests[0].json["changes"]) == 2
        assert tasks.dispatch() == {"queued": []}

        change_areas(1)
        feed_settled()
        assert tasks.dispatch() == {"queued": [behind.id, up_to_date.id]}
        assert [len(r.requests) for r in (waiting, current, paused)] == [2, 1, 0]
        assert Webhook.objects.filter(queued_at__isnull=False).count() == 0


def test_a_queued_delivery_is_not_queued_again_until_it_looks_lost(receiver, make_webhook, change_areas):
    webhook = make_webhook(receiver.url)
    change_areas(1)
    feed_settled()
    assert services.webhooks_claim_due() == [webhook.id]
    assert services.webhooks_claim_due() == []  # queued, not run yet
    Webhook.objects.filter(pk=webhook.pk).update(queued_at=timezone.now() - timedelta(minutes=10))
    assert services.webhooks_claim_due() == [webhook.id]  # that one was lost


def test_the_time_budget_leaves_the_rest_to_the_next_run(receiver, make_webhook, change_areas, settings):
    settings.WEBHOOKS_BATCH_SIZE, settings.WEBHOOKS_TIME_BUDGET_SECONDS = 1, 0
    webhook = make_webhook(receiver.url)
    change_areas(2)
    outcome = deliver(webhook)
    assert (outcome.sent, outcome.more) == (1, True)
    assert services.webhooks_claim_due() == [webhook.id]


def test_old_and_surplus_deliveries_are_pruned(make_webhook, settings):
    settings.WEBHOOKS_DELIVERIES_KEPT, settings.WEBHOOKS_DELIVERIES_MAX_AGE_DAYS = 3, 7
    first, second = make_webhook("https://a.example/hook"), make_webhook("https://b.example/hook")
    now = timezone.now()

    def attempt(webhook, age):
        return WebhookDelivery.objects.create(
            webhook=webhook, delivery_id=uuid.uuid4(), started_at=now - age, duration_ms=1, ok=True
        ).id

    recent = [attempt(first, timedelta(minutes=m)) for m in range(5)]
    old = attempt(second, timedelta(days=8))
    kept = attempt(second, timedelta(days=6))
    assert tasks.prune_deliveries() == 3
    assert set(WebhookDelivery.objects.values_list("id", flat=True)) == {*recent[:3], kept}
    assert old not in WebhookDelivery.objects.values_list("id", flat=True)


def test_changes_of_an_unapproved_provider_never_reach_a_webhook(receiver, make_webhook, make_provider, make_area):
    webhook = make_webhook(receiver.url)
    start = webhook.cursor
    hidden = make_provider(approved=False)
    area = make_area(square(10.0, 50.0, 0.1), provider=hidden)
    area_update(area=area, data={"price": "3.00"})
    provider_update(provider=hidden, data={"name": "Renamed while unapproved"})
    feed_settled()
    assert tasks.dispatch() == {"queued": []}  # nothing public changed
    assert deliver(webhook).posts == 0 and receiver.requests == []

    provider_set_approval(provider=hidden, approved=True)  # now public: its areas arrive, as created
    feed_settled()
    assert tasks.dispatch() == {"queued": [webhook.id]}
    assert [(c["area"], c["kind"]) for c in receiver.requests[0].json["changes"]] == [(area.id, "created")]
    provider_set_approval(provider=hidden, approved=False)  # and leave when approval is revoked
    feed_settled()
    tasks.dispatch()
    assert [(c["area"], c["kind"]) for c in receiver.requests[1].json["changes"]] == [(area.id, "deleted")]
    assert feed_cursors(start) == [c for r in receiver.changes() for c in r]
