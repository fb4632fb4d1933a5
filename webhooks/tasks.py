"""Celery tasks for webhooks, on the `webhooks` queue (worker/celery.py): they take ids and are idempotent (a
delivery sends what the feed lists after the webhook's cursor, whoever runs it, one at a time). A task that finds
its partner's delivery slots all in use is retried a few seconds later, never dropped."""

from celery import shared_task

from webhooks import services
from webhooks.services import DeliveryFailed, PartnerBusy, WebhookDisabled

# A run sends batches for WEBHOOKS_TIME_BUDGET_SECONDS, then finishes the POST under way (at most
# WEBHOOKS_REQUEST_DEADLINE_SECONDS, name resolution included).
DELIVER_SOFT_LIMIT = 90
DELIVER_HARD_LIMIT = 120
PING_SOFT_LIMIT = 40
PING_HARD_LIMIT = 60


@shared_task(
    bind=True,
    name="webhooks.deliver",
    max_retries=None,  # the webhook counts its failures and disables itself (WEBHOOKS_MAX_FAILURES)
    acks_late=True,
    soft_time_limit=DELIVER_SOFT_LIMIT,
    time_limit=DELIVER_HARD_LIMIT,
)
def deliver(self, webhook_id: int) -> str:
    """POST the changes waiting for a webhook. A failed batch is retried with exponential backoff (Retry in
    Flower); the last failure disables the webhook and fails the task (Failure in Flower)."""
    outcome = services.webhook_deliver(webhook_id=webhook_id, task_id=self.request.id or "")
    if outcome.busy:
        raise self.retry(exc=PartnerBusy(f"webhook {webhook_id}: {outcome.skipped}"), countdown=services.busy_wait())
    if outcome.disabled:
        raise WebhookDisabled(f"webhook {webhook_id}: {outcome.disabled}")
    if outcome.retry_in is not None:
        failed = DeliveryFailed(f"webhook {webhook_id}: {outcome.error} (retry in {outcome.retry_in} s)")
        raise self.retry(exc=failed, countdown=outcome.retry_in)
    if outcome.skipped:
        return f"webhook {webhook_id}: nothing sent, {outcome.skipped}"
    if outcome.error:
        return f"webhook {webhook_id}: failed ({outcome.error}); another task retries it"
    more = "; more waiting" if outcome.more else ""
    return f"webhook {webhook_id}: {outcome.sent} changes in {outcome.posts} requests{more}"


@shared_task(
    bind=True,
    name="webhooks.ping",
    max_retries=None,  # retried only while the partner's slots are busy; a failed ping is logged, not retried
    soft_time_limit=PING_SOFT_LIMIT,
    time_limit=PING_HARD_LIMIT,
)
def ping(self, delivery_pk: int) -> str:
    """Send a ping a partner asked for (POST /api/v1/webhooks/<id>/test/) and log the answer on its delivery."""
    outcome = services.ping_send(delivery_pk=delivery_pk, task_id=self.request.id or "")
    if outcome.busy:
        raise self.retry(exc=PartnerBusy(f"ping {delivery_pk}: {outcome.skipped}"), countdown=services.busy_wait())
    if outcome.skipped:
        return f"ping {delivery_pk}: not sent, {outcome.skipped}"
    return f"ping {delivery_pk}: " + (f"failed ({outcome.error})" if outcome.error else "answered 2xx")


@shared_task(name="webhooks.dispatch", ignore_result=True, soft_time_limit=20, time_limit=30)
def dispatch() -> dict:
    """Queue a delivery for every active webhook with changes waiting (beat, every WEBHOOKS_POLL_SECONDS)."""
    queued = services.webhooks_claim_due()
    for webhook_id in queued:
        deliver.delay(webhook_id)
    return {"queued": queued}


@shared_task(name="webhooks.prune_deliveries", ignore_result=True, soft_time_limit=120, time_limit=180)
def prune_deliveries() -> int:
    """Forget old delivery attempts (hourly)."""
    return services.deliveries_prune()
