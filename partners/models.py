"""Partners: the companies whose systems call the lookup, their API keys, and what each key used per day."""

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from rest_framework_api_key.models import AbstractAPIKey


class Partner(models.Model):
    name = models.CharField(max_length=200)
    contact_email = models.EmailField(blank=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self):
        return self.name


def default_rate_per_minute() -> int:
    return settings.PARTNER_KEY_DEFAULT_RATE_PER_MINUTE


class PartnerKey(AbstractAPIKey):
    """A partner's API key (djangorestframework-api-key: only a SHA-512 digest is stored; the key is shown once).
    Sent as `X-API-Key: <prefix>.<secret>`. Each key has its own rate limit."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="keys")
    rate_per_minute = models.PositiveIntegerField(
        default=default_rate_per_minute,
        validators=[MinValueValidator(1)],
        help_text="Points looked up per minute (a batch of 100 points counts 100, a trip 2).",
    )

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "partner API key"
        verbose_name_plural = "partner API keys"


class KeyUsage(models.Model):
    """What a key (or, with no key, all anonymous callers together) used on one UTC day. Counted by each web
    process and added here every few seconds (partners.usage)."""

    key = models.ForeignKey(PartnerKey, null=True, blank=True, on_delete=models.CASCADE, related_name="usage")
    day = models.DateField()
    lookups = models.PositiveBigIntegerField(default=0, help_text="Single lookups answered.")
    batches = models.PositiveBigIntegerField(default=0, help_text="Batch lookups answered.")
    batch_points = models.PositiveBigIntegerField(default=0, help_text="Points looked up in those batches.")
    trips = models.PositiveBigIntegerField(default=0, help_text="Trip lookups answered.")
    feed_reads = models.PositiveBigIntegerField(default=0, help_text="Change feed pages answered.")
    throttled = models.PositiveBigIntegerField(default=0, help_text="Requests refused with 429.")

    class Meta:
        ordering = ["-day", "key_id"]
        constraints = [
            # One row for anonymous callers per day too (NULL key).
            models.UniqueConstraint(fields=["key", "day"], nulls_distinct=False, name="one_usage_per_key_day")
        ]
        verbose_name_plural = "key usage"

    def __str__(self):
        return f"{self.key or 'anonymous'} on {self.day}"
