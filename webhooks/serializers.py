from rest_framework import serializers

from areas.changes import format_cursor
from partners.models import Partner
from webhooks.models import Webhook, WebhookDelivery
from webhooks.services import SECRET_MIN_LENGTH


class WebhookSerializer(serializers.ModelSerializer):
    """A webhook as its partner (or staff) sees it: never its secret, except once in the create answer."""

    partner = serializers.PrimaryKeyRelatedField(
        queryset=Partner.objects.all(), required=False, help_text="Staff only, when creating: whose webhook."
    )
    secret = serializers.CharField(
        write_only=True,
        required=False,
        min_length=SECRET_MIN_LENGTH,
        max_length=200,
        trim_whitespace=False,
        help_text=f"Signs every request (HMAC-SHA256). At least {SECRET_MIN_LENGTH} characters; leave it out to get "
        "a generated one, shown once in the answer.",
    )
    cursor = serializers.SerializerMethodField(help_text="The feed cursor of the last change your URL acknowledged.")
    retry_at = serializers.DateTimeField(read_only=True, help_text="When the next attempt after a failure is due.")

    class Meta:
        model = Webhook
        fields = [
            "id",
            "partner",
            "url",
            "description",
            "secret",
            "active",
            "cursor",
            "consecutive_failures",
            "last_attempt_at",
            "last_success_at",
            "last_status_code",
            "last_error",
            "retry_at",
            "disabled_at",
            "disabled_reason",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "consecutive_failures",
            "last_attempt_at",
            "last_success_at",
            "last_status_code",
            "last_error",
            "disabled_at",
            "disabled_reason",
            "created_at",
            "updated_at",
        ]
        extra_kwargs = {
            "url": {"help_text": "https:// only; it must not point to a private or loopback address."},
            "active": {"help_text": "false pauses deliveries; true (again) resumes them and resets the failures."},
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.context.get("partner") is not None:
            self.fields["partner"].read_only = True  # a partner's key decides whose webhook it is

    def get_cursor(self, webhook: Webhook) -> str:
        return format_cursor(webhook.cursor)

    def validate_partner(self, partner):
        if self.instance is not None and partner != self.instance.partner:
            raise serializers.ValidationError("A webhook stays with its partner.")
        return partner


class NewWebhookSerializer(WebhookSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown this once: keep it to check signatures.")


class WebhookDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "delivery_id",
            "kind",
            "status",
            "started_at",
            "duration_ms",
            "ok",
            "status_code",
            "error",
            "change_count",
            "first_cursor",
            "last_cursor",
        ]


class PingQueuedSerializer(WebhookDeliverySerializer):
    url = serializers.SerializerMethodField(help_text="Where to read the ping's outcome (GET).")

    class Meta(WebhookDeliverySerializer.Meta):
        fields = [*WebhookDeliverySerializer.Meta.fields, "url"]

    def get_url(self, delivery: WebhookDelivery) -> str:
        return self.context["url"]
