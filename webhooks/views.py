from django.conf import settings
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from knox.auth import TokenAuthentication
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.reverse import reverse

from areas.quotas import QuotaExceeded
from webhooks.auth import IsPartnerOrStaff, PartnerKeyAuthentication, partner_of
from webhooks.selectors import deliveries_recent, delivery_get, webhooks_visible
from webhooks.serializers import (
    NewWebhookSerializer,
    PingQueuedSerializer,
    WebhookDeliverySerializer,
    WebhookSerializer,
)
from webhooks.services import (
    PingNotQueued,
    WebhookLimitReached,
    webhook_create,
    webhook_delete,
    webhook_ping_request,
    webhook_update,
)

PARTNER_REQUIRED = "Staff: name the partner whose webhook this is."
UUID_PATTERN = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
NO_SUCH_DELIVERY = "No delivery of this webhook has that id (only recent ones are kept)."


class QueueUnavailable(APIException):
    """503 naming the broker (Redis) when a ping could not be queued; Retry-After from `wait`."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "queue_unavailable"
    wait = 5


WEBHOOK_EXAMPLE = {
    "id": 3,
    "partner": 4,
    "url": "https://hooks.partner.example/service-areas",
    "description": "Refresh our cached lookups",
    "active": True,
    "cursor": "7342-2211",
    "consecutive_failures": 0,
    "last_attempt_at": "2026-11-29T09:00:02Z",
    "last_success_at": "2026-11-29T09:00:02Z",
    "last_status_code": 200,
    "last_error": "",
    "retry_at": None,
    "disabled_at": None,
    "disabled_reason": "",
    "created_at": "2026-11-28T16:30:00Z",
    "updated_at": "2026-11-29T09:00:02Z",
}
DISABLED_EXAMPLE = {
    **WEBHOOK_EXAMPLE,
    "active": False,
    "consecutive_failures": 33,
    "last_status_code": 503,
    "last_error": "HTTP 503: upstream unavailable",
    "disabled_at": "2026-11-30T09:12:40Z",
    "disabled_reason": "Disabled after 33 consecutive failed deliveries; last: HTTP 503: upstream unavailable",
}
DELIVERY_EXAMPLE = {
    "delivery_id": "5f0c6c1e-8f7e-4b0a-9a51-2f4f3e1c9d11",
    "kind": "changes",
    "status": "succeeded",
    "started_at": "2026-11-29T09:00:02Z",
    "duration_ms": 84,
    "ok": True,
    "status_code": 200,
    "error": "",
    "change_count": 2,
    "first_cursor": "7341-2210",
    "last_cursor": "7342-2211",
}
PING_EXAMPLE = {**DELIVERY_EXAMPLE, "kind": "ping", "change_count": 0, "first_cursor": "", "last_cursor": ""}
SIGNING = (
    'Each request is a POST of `{"type": "changes" | "ping", "webhook": <id>, "changes": [...], '
    '"cursor": "..."}` (the changes as `/api/v1/changes/` lists them, oldest first) with the headers '
    "`X-Webhook-Id`, `X-Webhook-Event`, `X-Webhook-Delivery` (unique per attempt), `X-Webhook-Timestamp` (unix "
    "seconds) and `X-Webhook-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + '.' + body)>`. Answer 2xx "
    "within 10 s; anything else (redirects included) is retried with the same changes, 10 s later, then doubling "
    "up to an hour, for about a day; then the webhook is disabled. A 410 disables it at once."
)


@extend_schema_view(
    list=extend_schema(
        summary="List webhooks",
        description="Your webhooks (with a partner API key), or every partner's (staff). The secret is never shown.",
        examples=[OpenApiExample("A webhook", value=[WEBHOOK_EXAMPLE], response_only=True)],
    ),
    create=extend_schema(
        summary="Register a webhook",
        description="Changes to public lookups from now on are POSTed to `url`, in order, in batches of up to 100. "
        + SIGNING
        + " The answer carries `secret` this once.",
        responses={201: NewWebhookSerializer},
        examples=[
            OpenApiExample(
                "New webhook",
                value={"url": "https://hooks.partner.example/service-areas", "description": "Refresh our cache"},
                request_only=True,
            ),
            OpenApiExample(
                "Created",
                value={**WEBHOOK_EXAMPLE, "secret": "mD3bq0Zf1c9eTnV2yKx8hR4uWp6sLa7jG5oQ_iE-Y0A"},
                response_only=True,
                status_codes=["201"],
            ),
        ],
    ),
    retrieve=extend_schema(
        summary="Get a webhook",
        description="With its delivery state: the cursor acknowledged last, failures in a row, the last error, when "
        "the next retry is due, and why it was disabled.",
        examples=[
            OpenApiExample("Healthy", value=WEBHOOK_EXAMPLE, response_only=True),
            OpenApiExample("Disabled after a day of failures", value=DISABLED_EXAMPLE, response_only=True),
        ],
    ),
    partial_update=extend_schema(
        summary="Change a webhook, pause or re-enable it",
        description="`active: false` pauses deliveries; `active: true` re-enables a paused or disabled webhook, "
        "resets its failures and sends everything since its cursor. A new `secret` signs from the next request on.",
        examples=[OpenApiExample("Re-enable", value={"active": True}, request_only=True)],
    ),
    destroy=extend_schema(summary="Delete a webhook", description="Deliveries stop at once."),
)
class WebhookViewSet(viewsets.ModelViewSet):
    serializer_class = WebhookSerializer
    authentication_classes = [PartnerKeyAuthentication, TokenAuthentication]
    permission_classes = [IsPartnerOrStaff]
    filterset_fields = ["active", "partner"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        partner = partner_of(self.request)
        return webhooks_visible(partner_id=partner.id if partner is not None else None)

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "partner": partner_of(self.request)}

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        partner = partner_of(request) or data.get("partner")
        if partner is None:
            raise ValidationError({"partner": [PARTNER_REQUIRED]})
        try:
            webhook = webhook_create(
                partner=partner, url=data["url"], secret=data.get("secret"), description=data.get("description", "")
            )
        except WebhookLimitReached as exc:
            raise QuotaExceeded(quota="webhooks", limit=exc.limit, total=exc.total, what="webhooks") from exc
        return Response(NewWebhookSerializer(webhook).data, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer):
        serializer.instance = webhook_update(webhook=serializer.instance, data=serializer.validated_data)

    def perform_destroy(self, instance):
        webhook_delete(webhook=instance)

    @extend_schema(
        summary="Send a signed test request (ping)",
        description="Queues a `ping` (no changes, the webhook's current cursor), signed like every delivery, and "
        "answers 202 at once with the delivery (`status: queued`) and the `url` (also `Location`) where its outcome "
        "shows within seconds: `succeeded` or `failed`, what the URL answered, the error, how long it took. While a "
        "ping is waiting, asking again answers that one. The cursor and the failure count stay as they are.",
        request=None,
        responses={202: PingQueuedSerializer},
        examples=[
            OpenApiExample(
                "Queued",
                value={
                    **PING_EXAMPLE,
                    "status": "queued",
                    "ok": False,
                    "status_code": None,
                    "duration_ms": None,
                    "url": "https://api.example.com/api/v1/webhooks/3/deliveries/5f0c6c1e-8f7e-4b0a-9a51-2f4f3e1c9d11/",
                },
                response_only=True,
                status_codes=["202"],
            ),
        ],
    )
    @action(detail=True, methods=["post"], url_path="test")
    def ping(self, request, pk=None):
        webhook = self.get_object()
        try:
            delivery = webhook_ping_request(webhook=webhook)
        except PingNotQueued as exc:
            raise QueueUnavailable(
                {
                    "detail": str(exc),
                    "code": "queue_unavailable",
                    "service": "redis",
                    "delivery_id": str(exc.delivery.delivery_id),
                }
            ) from exc
        url = reverse(
            "webhook-delivery", kwargs={"pk": webhook.pk, "delivery_id": delivery.delivery_id}, request=request
        )
        body = PingQueuedSerializer(delivery, context={"url": url}).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": url})

    @extend_schema(
        summary="One delivery attempt",
        description="A ping's outcome once the worker has sent it (`status`: queued, sending, succeeded, failed), or "
        "any recent delivery by its `delivery_id` (the `X-Webhook-Delivery` header your URL received).",
        responses={200: WebhookDeliverySerializer},
        examples=[
            OpenApiExample("Answered", value=PING_EXAMPLE, response_only=True),
            OpenApiExample(
                "Refused",
                value={
                    **PING_EXAMPLE,
                    "status": "failed",
                    "ok": False,
                    "status_code": None,
                    "error": "Connection refused.",
                },
                response_only=True,
            ),
        ],
    )
    @action(detail=True, methods=["get"], url_path=rf"deliveries/(?P<delivery_id>{UUID_PATTERN})", url_name="delivery")
    def delivery(self, request, pk=None, delivery_id=None):
        delivery = delivery_get(webhook=self.get_object(), delivery_id=delivery_id)
        if delivery is None:
            raise NotFound(NO_SUCH_DELIVERY)
        return Response(WebhookDeliverySerializer(delivery).data)

    @extend_schema(
        summary="Recent delivery attempts",
        description="Newest first: each POST of a batch (or ping), its answer or error, and the cursors it carried. "
        "Kept for 7 days, at most the last 100 (not paginated).",
        responses={200: WebhookDeliverySerializer(many=True)},
        examples=[OpenApiExample("One batch", value=[DELIVERY_EXAMPLE], response_only=True)],
    )
    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk=None):
        deliveries = deliveries_recent(webhook=self.get_object())[: settings.WEBHOOKS_DELIVERIES_KEPT]
        return Response(WebhookDeliverySerializer(deliveries, many=True).data)
