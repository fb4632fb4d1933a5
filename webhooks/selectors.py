"""Reads: which webhooks a caller sees, where the change feed ends, a webhook's recent deliveries."""

from django.db.models import QuerySet

from areas import changes
from webhooks.models import Webhook, WebhookDelivery


def feed_end() -> tuple[int, int]:
    """The cursor of the newest change the feed lists now ((0, 0) when it lists none)."""
    return changes.feed_end()


def webhooks_visible(*, partner_id: int | None) -> QuerySet[Webhook]:
    """A partner's webhooks; every webhook for staff (partner_id None)."""
    webhooks = Webhook.objects.select_related("partner")
    return webhooks if partner_id is None else webhooks.filter(partner_id=partner_id)


def deliveries_recent(*, webhook: Webhook) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(webhook=webhook).order_by("-started_at", "-id")


def delivery_get(*, webhook: Webhook, delivery_id: str) -> WebhookDelivery | None:
    return WebhookDelivery.objects.filter(webhook=webhook, delivery_id=delivery_id).first()
