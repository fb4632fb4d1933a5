"""Writes: registering webhooks, delivering the change feed to them, and the bookkeeping of their failures.

Delivery reads the feed after the webhook's cursor (areas.changes), POSTs up to WEBHOOKS_BATCH_SIZE changes as one
signed JSON batch, and moves the cursor only after a 2xx. A failure leaves the cursor where it was, so the same
changes (and any newer ones) go out again on the next attempt; after WEBHOOKS_MAX_FAILURES in a row the webhook
is disabled until its partner or staff enable it again.

Every request (batch or ping) is made in the worker, within WEBHOOKS_REQUEST_DEADLINE_SECONDS all told, and at most
WEBHOOKS_PARTNER_CONCURRENCY of one partner's at a time (locks.partner_slot): a delivery that finds them all taken
is tried again in a few seconds (`DeliveryOutcome.busy`), so one partner's slow receivers cannot hold every worker.
"""

import logging
import random
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import orjson
from celery import signature
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from areas import changes
from areas.changes import changes_since, format_cursor, parse_cursor
from areas.models import AreaChange
from partners.models import Partner
from webhooks import selectors, signing, transport
from webhooks.locks import delivery_lock, partner_slot
from webhooks.models import Webhook, WebhookDelivery

log = logging.getLogger(__name__)

USER_AGENT = "ServiceAreaLookup-Webhooks/1.0"
SECRET_MIN_LENGTH = 24
# A queued delivery that has not finished this long after it was queued is taken to be lost: queued again.
REQUEUE_AFTER_SECONDS = 120
# A retry that has not started this long after it was due is taken to be lost (its worker was replaced, its
# message dropped): the dispatcher queues a delivery itself.
RETRY_GRACE_SECONDS = 120
# A delivery that found its partner's slots taken is tried again after this many seconds (at random, so that the
# waiting ones do not all come back at once).
BUSY_RETRY_SECONDS = (1.0, 4.0)

TOO_MANY_WEBHOOKS = "webhooks"
DISABLED_AFTER_FAILURES = "Disabled after {failures} consecutive failed deliveries; last: {error}"
DISABLED_GONE = "Disabled: the URL answered 410 Gone."
PAUSED = "Paused: set active to true to resume (changes since are delivered then)."
PARTNER_BUSY = "the partner's delivery slots are all in use"
PING_LOST = "Not sent: it was lost on its way to a worker; ask for another ping."
PING_NOT_QUEUED = "Not sent: the task queue is unavailable; ask for another ping shortly."


class WebhookLimitReached(Exception):
    def __init__(self, *, limit: int, total: int):
        super().__init__(f"A partner may have at most {limit} webhooks.")
        self.limit, self.total = limit, total


class DeliveryFailed(Exception):
    """A batch was not acknowledged (the task retries with it: Retry in Flower)."""


class WebhookDisabled(Exception):
    """Given up on a webhook (the task fails with it: Failure in Flower; the admin shows the webhook disabled)."""


class PartnerBusy(Exception):
    """Every delivery slot of the webhook's partner is in use (the task retries shortly: Retry in Flower)."""


class PingNotQueued(Exception):
    """The ping could not be handed to the worker (the broker is unreachable); it is logged as failed."""

    def __init__(self, delivery: WebhookDelivery):
        super().__init__(PING_NOT_QUEUED)
        self.delivery = delivery


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    sent: int = 0  # changes acknowledged by the URL
    posts: int = 0
    more: bool = False  # changes are still waiting (the time budget ran out): the dispatcher queues another run
    skipped: str = ""  # why nothing was attempted
    error: str = ""  # the failed attempt's error
    retry_in: int | None = None  # seconds until the task retries
    disabled: str = ""  # why the webhook was disabled
    busy: bool = False  # nothing attempted: the partner's slots are all in use; the task tries again shortly


def secret_generate() -> str:
    return secrets.token_urlsafe(32)


def busy_wait() -> float:
    """Seconds before a delivery that found its partner's slots taken tries again."""
    return random.uniform(*BUSY_RETRY_SECONDS)


def retry_wait(failures: int) -> int:
    """Seconds before the next attempt after this many failures in a row: doubling from the base, capped."""
    base, cap = settings.WEBHOOKS_RETRY_BASE_SECONDS, settings.WEBHOOKS_RETRY_MAX_SECONDS
    return min(cap, base * 2 ** min(failures - 1, 30))


def webhook_create(*, partner: Partner, url: str, secret: str | None = None, description: str = "") -> Webhook:
    """A new webhook, sent the changes the feed lists from now on."""
    with transaction.atomic():
        # Two concurrent creates of one partner cannot both pass the limit.
        Partner.objects.select_for_update().filter(pk=partner.pk).first()
        count = Webhook.objects.filter(partner=partner).count()
        if count >= settings.WEBHOOKS_PER_PARTNER:
            raise WebhookLimitReached(limit=settings.WEBHOOKS_PER_PARTNER, total=count + 1)
        xid, change_id = selectors.feed_end()
        return Webhook.objects.create(
            partner=partner,
            url=url,
            description=description,
            secret=secret or secret_generate(),
            cursor_xid=xid,
            cursor_id=change_id,
        )


def webhook_update(*, webhook: Webhook, data: dict) -> Webhook:
    """Changes url, description, secret or active. Enabling a disabled webhook starts its failure count afresh;
    it is then sent everything since its cursor. Only the fields named are written: a delivery running meanwhile
    keeps its cursor and bookkeeping."""
    fields = [name for name in ("url", "description", "secret") if name in data]
    for name in fields:
        setattr(webhook, name, data[name])
    if "active" in data and data["active"] != webhook.active:
        webhook.active = data["active"]
        webhook.disabled_at = None if webhook.active else timezone.now()
        webhook.disabled_reason = "" if webhook.active else PAUSED
        fields += ["active", "disabled_at", "disabled_reason"]
        if webhook.active:
            webhook.consecutive_failures, webhook.retry_at, webhook.retry_task_id = 0, None, ""
            fields += ["consecutive_failures", "retry_at", "retry_task_id"]
    if fields:
        webhook.save(update_fields=[*fields, "updated_at"])
    return webhook


def webhook_delete(*, webhook: Webhook) -> None:
    """Gone with its delivery log; a delivery under way finishes its request and records nothing."""
    webhook.delete()


def webhook_retry_now(*, webhook: Webhook) -> None:
    """Forget a pending retry's wait, so that a delivery queued now is made at once (the admin's "send now")."""
    Webhook.objects.filter(pk=webhook.pk).update(retry_at=None, retry_task_id="", queued_at=None)


_CLAIM_DUE_SQL = f"""
UPDATE {Webhook._meta.db_table} AS w SET queued_at = now()
WHERE w.active
  AND (w.retry_at IS NULL OR w.retry_at < now() - make_interval(secs => %(grace)s))
  AND (w.queued_at IS NULL OR w.queued_at < now() - make_interval(secs => %(requeue)s))
  AND EXISTS (
    SELECT 1 FROM {AreaChange._meta.db_table} AS c
    WHERE (c.xid, c.id) > (w.cursor_xid, w.cursor_id) AND {changes.visible_sql("c")}
  )
RETURNING w.id
"""


def webhooks_claim_due() -> list[int]:
    """Active webhooks with changes waiting in the feed (the feed's own visibility rule), no retry pending and no
    delivery queued: marked queued and returned, in one statement, so two dispatchers never queue one twice."""
    with connection.cursor() as db:
        db.execute(_CLAIM_DUE_SQL, {"grace": RETRY_GRACE_SECONDS, "requeue": REQUEUE_AFTER_SECONDS})
        return sorted(row[0] for row in db.fetchall())


def webhook_deliver(*, webhook_id: int, task_id: str = "") -> DeliveryOutcome:
    """Send the webhook what the feed lists after its cursor, batch after batch, within the time budget."""
    with delivery_lock(webhook_id) as held:
        if not held:
            return DeliveryOutcome(skipped="another delivery of this webhook is running")
        outcome = None
        try:
            outcome = _deliver_locked(webhook_id, task_id)
            return outcome
        finally:
            if outcome is None or not outcome.busy:  # a busy one is still queued: it comes back shortly
                Webhook.objects.filter(pk=webhook_id).update(queued_at=None)


def _deliver_locked(webhook_id: int, task_id: str) -> DeliveryOutcome:
    webhook = Webhook.objects.filter(pk=webhook_id).first()
    if webhook is None:
        return DeliveryOutcome(skipped="deleted")
    if not webhook.active:
        return DeliveryOutcome(skipped="disabled")
    if webhook.retry_at is not None and webhook.retry_at > timezone.now() and webhook.retry_task_id != task_id:
        # Another task retries at that time: this one must not shorten the partner's backoff.
        return DeliveryOutcome(skipped=f"a retry is due at {webhook.retry_at.isoformat()}")
    with partner_slot(webhook.partner_id, slots=settings.WEBHOOKS_PARTNER_CONCURRENCY) as slot:
        if not slot:
            return DeliveryOutcome(busy=True, skipped=PARTNER_BUSY)
        return _send_batches(webhook, task_id)


def _send_batches(webhook: Webhook, task_id: str) -> DeliveryOutcome:
    deadline = time.monotonic() + settings.WEBHOOKS_TIME_BUDGET_SECONDS
    sent = posts = 0
    while True:
        page = changes_since(webhook.cursor, limit=settings.WEBHOOKS_BATCH_SIZE)
        if not page["changes"]:
            return DeliveryOutcome(sent=sent, posts=posts)
        delivery = _post(webhook, kind=WebhookDelivery.Kind.CHANGES, changes=page["changes"], task_id=task_id)
        posts += 1
        if delivery is None:
            return DeliveryOutcome(sent=sent, posts=posts, skipped="deleted")
        if not delivery.ok:
            return _failed(webhook, delivery, task_id, sent=sent, posts=posts)
        _succeeded(webhook, delivery, parse_cursor(page["cursor"]))
        sent += len(page["changes"])
        if not page["more"] or time.monotonic() >= deadline:
            return DeliveryOutcome(sent=sent, posts=posts, more=page["more"])


def webhook_ping_request(*, webhook: Webhook) -> WebhookDelivery:
    """A signed `ping` (no changes, the webhook's cursor) queued for the worker, logged as `queued`; the worker
    logs what the URL answered on the same delivery. A ping still waiting is answered instead of queueing another
    (unless it looks lost), so asking again and again queues nothing more. The cursor and failure count stay."""
    now = timezone.now()
    pending = [WebhookDelivery.Status.QUEUED, WebhookDelivery.Status.SENDING]
    with transaction.atomic():
        Webhook.objects.select_for_update().filter(pk=webhook.pk).first()  # one request per webhook at a time
        pings = WebhookDelivery.objects.filter(webhook=webhook, kind=WebhookDelivery.Kind.PING, status__in=pending)
        waiting = pings.filter(started_at__gt=now - timedelta(seconds=REQUEUE_AFTER_SECONDS)).first()
        if waiting is not None:
            return waiting
        pings.update(status=WebhookDelivery.Status.FAILED, error=PING_LOST)
        delivery = WebhookDelivery.objects.create(
            webhook=webhook,
            delivery_id=uuid.uuid4(),
            kind=WebhookDelivery.Kind.PING,
            status=WebhookDelivery.Status.QUEUED,
            started_at=now,
            ok=False,
        )
        transaction.on_commit(lambda: _queue_ping(delivery))
    return delivery


def _queue_ping(delivery: WebhookDelivery) -> None:
    try:
        # By name (as worker.celery routes it): webhooks.tasks imports this module.
        signature("webhooks.ping", args=(delivery.pk,)).delay()
    except Exception as exc:  # the broker is down (kombu and redis raise several kinds)
        log.warning("could not queue ping %s", delivery.delivery_id, exc_info=True)
        delivery.status, delivery.error = WebhookDelivery.Status.FAILED, PING_NOT_QUEUED
        delivery.save(update_fields=["status", "error"])
        raise PingNotQueued(delivery) from exc


def ping_send(*, delivery_pk: int, task_id: str = "") -> DeliveryOutcome:
    """Send a queued ping (the worker's half of `webhook_ping_request`) and log the answer on its delivery."""
    delivery = WebhookDelivery.objects.select_related("webhook").filter(pk=delivery_pk).first()
    if delivery is None:
        return DeliveryOutcome(skipped="deleted")
    if delivery.status != WebhookDelivery.Status.QUEUED:
        return DeliveryOutcome(skipped=f"already {delivery.status}")
    webhook = delivery.webhook
    with partner_slot(webhook.partner_id, slots=settings.WEBHOOKS_PARTNER_CONCURRENCY) as slot:
        if not slot:
            return DeliveryOutcome(busy=True, skipped=PARTNER_BUSY)
        claimed = WebhookDelivery.objects.filter(pk=delivery_pk, status=WebhookDelivery.Status.QUEUED).update(
            status=WebhookDelivery.Status.SENDING, started_at=timezone.now(), task_id=task_id
        )
        if not claimed:  # another task took it meanwhile
            return DeliveryOutcome(skipped="taken by another task")
        result = _send(webhook, kind=WebhookDelivery.Kind.PING, changes=[], delivery_id=delivery.delivery_id)
    WebhookDelivery.objects.filter(pk=delivery_pk).update(
        status=WebhookDelivery.Status.SUCCEEDED if result.ok else WebhookDelivery.Status.FAILED,
        ok=result.ok,
        status_code=result.status_code,
        error=result.error,
        duration_ms=result.duration_ms,
    )
    return DeliveryOutcome(posts=1, error=result.error)


def _post(webhook: Webhook, *, kind: str, changes: list[dict], task_id: str) -> WebhookDelivery | None:
    """POST one signed batch and log the attempt (None: the webhook was deleted meanwhile)."""
    delivery_id = uuid.uuid4()
    started_at = timezone.now()
    result = _send(webhook, kind=kind, changes=changes, delivery_id=delivery_id)
    try:
        return WebhookDelivery.objects.create(
            webhook=webhook,
            delivery_id=delivery_id,
            kind=kind,
            status=WebhookDelivery.Status.SUCCEEDED if result.ok else WebhookDelivery.Status.FAILED,
            started_at=started_at,
            duration_ms=result.duration_ms,
            ok=result.ok,
            status_code=result.status_code,
            error=result.error,
            change_count=len(changes),
            first_cursor=changes[0]["cursor"] if changes else "",
            last_cursor=changes[-1]["cursor"] if changes else "",
            task_id=task_id or "",
        )
    except IntegrityError:  # the webhook was deleted while its URL was called
        return None


def _send(webhook: Webhook, *, kind: str, changes: list[dict], delivery_id: uuid.UUID) -> transport.PostResult:
    """POST one signed batch (or ping) to the webhook's URL."""
    cursor = changes[-1]["cursor"] if changes else format_cursor(webhook.cursor)
    body = orjson.dumps({"type": kind, "webhook": webhook.id, "changes": changes, "cursor": cursor})
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Webhook-Id": str(webhook.id),
        "X-Webhook-Event": kind,
        "X-Webhook-Delivery": str(delivery_id),
        "X-Webhook-Timestamp": str(timestamp),
        "X-Webhook-Signature": signing.sign(webhook.secret, timestamp, body),
    }
    return transport.post(
        webhook.url,
        body,
        headers,
        allow_local=settings.WEBHOOKS_ALLOW_LOCAL,
        deadline=settings.WEBHOOKS_REQUEST_DEADLINE_SECONDS,
        connect_timeout=settings.WEBHOOKS_CONNECT_TIMEOUT,
        ca_file=settings.WEBHOOKS_CA_BUNDLE,
    )


def _succeeded(webhook: Webhook, delivery: WebhookDelivery, cursor: tuple[int, int]) -> None:
    webhook.cursor_xid, webhook.cursor_id = cursor
    Webhook.objects.filter(pk=webhook.pk).update(
        cursor_xid=cursor[0],
        cursor_id=cursor[1],
        consecutive_failures=0,
        last_attempt_at=delivery.started_at,
        last_success_at=delivery.started_at,
        last_status_code=delivery.status_code,
        last_error="",
        retry_at=None,
        retry_task_id="",
    )


def _failed(webhook: Webhook, delivery: WebhookDelivery, task_id: str, *, sent: int, posts: int) -> DeliveryOutcome:
    """Count the failure; disable the webhook, or schedule the retry (unless another task has one scheduled)."""
    with transaction.atomic():
        row = Webhook.objects.select_for_update().filter(pk=webhook.pk).first()
        if row is None:
            return DeliveryOutcome(sent=sent, posts=posts, skipped="deleted", error=delivery.error)
        now = timezone.now()
        row.consecutive_failures += 1
        row.last_attempt_at, row.last_status_code = delivery.started_at, delivery.status_code
        row.last_error = delivery.error
        fields = ["consecutive_failures", "last_attempt_at", "last_status_code", "last_error"]
        outcome = DeliveryOutcome(sent=sent, posts=posts, error=delivery.error)
        if delivery.status_code == 410 or row.consecutive_failures >= settings.WEBHOOKS_MAX_FAILURES:
            reason = (
                DISABLED_GONE
                if delivery.status_code == 410
                else DISABLED_AFTER_FAILURES.format(failures=row.consecutive_failures, error=delivery.error)
            )
            row.active, row.disabled_at, row.disabled_reason = False, now, reason[:300]
            row.retry_at, row.retry_task_id = None, ""
            fields += ["active", "disabled_at", "disabled_reason", "retry_at", "retry_task_id"]
            outcome = DeliveryOutcome(sent=sent, posts=posts, error=delivery.error, disabled=row.disabled_reason)
            log.warning("webhook %s: %s", row.pk, row.disabled_reason)
        elif row.retry_at is None or row.retry_at <= now or row.retry_task_id in ("", task_id):
            wait = retry_wait(row.consecutive_failures)
            row.retry_at, row.retry_task_id = now + timedelta(seconds=wait), task_id
            fields += ["retry_at", "retry_task_id"]
            outcome = DeliveryOutcome(sent=sent, posts=posts, error=delivery.error, retry_in=wait)
        row.save(update_fields=[*fields, "updated_at"])
    return outcome


_PRUNE_SQL = f"""
DELETE FROM {WebhookDelivery._meta.db_table} WHERE id IN (
  SELECT id FROM (
    SELECT id, row_number() OVER (PARTITION BY webhook_id ORDER BY started_at DESC, id DESC) AS n
    FROM {WebhookDelivery._meta.db_table}
  ) AS ranked
  WHERE n > %s
)
"""


def deliveries_prune() -> int:
    """Keep each webhook's WEBHOOKS_DELIVERIES_KEPT newest attempts, and none older than
    WEBHOOKS_DELIVERIES_MAX_AGE_DAYS."""
    cutoff = timezone.now() - timedelta(days=settings.WEBHOOKS_DELIVERIES_MAX_AGE_DAYS)
    deleted, _ = WebhookDelivery.objects.filter(started_at__lt=cutoff).delete()
    with connection.cursor() as db:
        db.execute(_PRUNE_SQL, [settings.WEBHOOKS_DELIVERIES_KEPT])
        return deleted + db.rowcount
