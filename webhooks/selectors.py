"""Reads: which webhooks a caller sees, where the change feed ends, a webhook's recent deliveries."""

from django.db import connection
from django.db.models import QuerySet

from areas.models import AreaChange
from webhooks.models import Webhook, WebhookDelivery

# The last change the feed can list now: the same visibility rule as areas.changes (every transaction before it
# has ended), so a webhook starting here is sent exactly the changes the feed lists after this moment.
_FEED_END_SQL = f"""
SELECT xid, id FROM {AreaChange._meta.db_table}
WHERE xid < txid_snapshot_xmin(txid_current_snapshot())
ORDER BY xid DESC, id DESC
LIMIT 1
"""


def feed_end() -> tuple[int, int]:
    """The cursor of the newest change the feed lists now ((0, 0) when it lists none)."""
    with connection.cursor() as db:
        db.execute(_FEED_END_SQL)
        row = db.fetchone()
    return (row[0], row[1]) if row else (0, 0)


def webhooks_visible(*, partner_id: int | None) -> QuerySet[Webhook]:
    """A partner's webhooks; every webhook for staff (partner_id None)."""
    webhooks = Webhook.objects.select_related("partner")
    return webhooks if partner_id is None else webhooks.filter(partner_id=partner_id)


def deliveries_recent(*, webhook: Webhook) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(webhook=webhook).order_by("-started_at", "-id")
