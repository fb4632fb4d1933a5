"""Celery tasks for webhooks: they take ids and are idempotent (a delivery sends what the feed lists after the
webhook's cursor, whoever runs it, one at a time)."""

from celery import shared_task

from webhooks import services
from webhooks.services import DeliveryFailed, WebhookDisabled

# A run sends batches for WEBHOOKS_TIME_BUDGET_SECONDS, then finishes the POST under way (connect and read
# timeouts, and name resolution, which has no timeout of its own).
DELIVER_SOFT_LIMIT = 90
DELIVER_HARD_LIMIT = 120


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
