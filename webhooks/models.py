"""Partners' webhooks: a URL that receives the change feed (areas.changes), signed, in batches, in order.

Each webhook keeps its own cursor in the feed and moves it only after its URL answered 2xx, so delivery is
ordered, at least once, and loses nothing, however long the receiver is down (until it is disabled).
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from webhooks import targets


def validate_url(url: str) -> None:
    try:
        targets.check_url(url, allow_local=settings.WEBHOOKS_ALLOW_LOCAL)
    except targets.UnsafeTarget as exc:
        raise ValidationError(str(exc), code="unsafe_url") from exc


class Webhook(models.Model):
    partner = models.ForeignKey("partners.Partner", on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=targets.MAX_URL_LENGTH, validators=[validate_url])
    description = models.CharField(max_length=200, blank=True)
    # Kept readable: every request is signed with it. Shown to the partner once, when the webhook is created.
    secret = models.CharField(max_length=200)
    active = models.BooleanField(default=True)
    # The feed's cursor (transaction id, change id) of the last change the URL acknowledged.
    cursor_xid = models.BigIntegerField(default=0)
    cursor_id = models.BigIntegerField(default=0)

    consecutive_failures = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # A failed delivery's retry: when it is due, and the Celery task that will make it. Until then (and a grace
    # period), the dispatcher leaves the webhook to that task, so one webhook never has two retry chains.
    retry_at = models.DateTimeField(null=True, blank=True)
    retry_task_id = models.CharField(max_length=64, blank=True)
    # When the dispatcher last queued a delivery that has not finished yet: it queues no second one meanwhile.
    queued_at = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.url} ({self.partner_id})"

    @property
    def cursor(self) -> tuple[int, int]:
        return self.cursor_xid, self.cursor_id


class WebhookDelivery(models.Model):
    """One attempt to POST to a webhook: a batch of changes, or a ping. Only recent ones are kept.

    A batch is logged once sent. A ping is logged when a partner asks for it (queued), then sent by the worker."""

    class Kind(models.TextChoices):
        CHANGES = "changes"
        PING = "ping"

    class Status(models.TextChoices):
        QUEUED = "queued"
        SENDING = "sending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    delivery_id = models.UUIDField(help_text="Sent as X-Webhook-Delivery.")
    kind = models.CharField(max_length=7, choices=Kind.choices, default=Kind.CHANGES)
    status = models.CharField(max_length=9, choices=Status.choices)
    started_at = models.DateTimeField(help_text="When it was sent (a ping not sent yet: when it was asked for).")
    duration_ms = models.PositiveIntegerField(null=True, blank=True, help_text="None until it was sent.")
    ok = models.BooleanField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    change_count = models.PositiveIntegerField(default=0)
    first_cursor = models.CharField(max_length=41, blank=True)
    last_cursor = models.CharField(max_length=41, blank=True)
    task_id = models.CharField(max_length=64, blank=True, help_text="The Celery task (Flower) that sent it.")

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["webhook", "-started_at"]), models.Index(fields=["started_at"])]
        verbose_name_plural = "webhook deliveries"

    def __str__(self):
        return f"{self.kind} {self.delivery_id}"
