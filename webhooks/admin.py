from django.contrib import admin, messages
from django.db import models
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from areas.changes import format_cursor
from webhooks import tasks
from webhooks.models import Webhook, WebhookDelivery
from webhooks.selectors import deliveries_recent
from webhooks.services import webhook_retry_now, webhook_update

RECENT_SHOWN = 10
BOOKKEEPING = [
    "consecutive_failures",
    "last_attempt_at",
    "last_success_at",
    "last_status_code",
    "last_error",
    "retry_at",
    "disabled_at",
    "created_at",
    "updated_at",
]


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    """Partners register webhooks through the API (their secret is shown to them once); here staff see how each
    one is doing, pause, re-enable, and send waiting changes at once."""

    list_display = [
        "id",
        "partner",
        "url",
        "active",
        "consecutive_failures",
        "last_status_code",
        "short_error",
        "last_success_at",
        "retry_at",
    ]
    list_filter = ["active"]
    list_select_related = ["partner"]
    search_fields = ["url", "partner__name"]
    fields = ["partner", "url", "description", "active", "disabled_reason", "cursor", *BOOKKEEPING, "recent_deliveries"]
    readonly_fields = ["partner", "disabled_reason", "cursor", *BOOKKEEPING, "recent_deliveries"]
    actions = ["enable", "send_now"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def has_add_permission(self, request):
        return False  # through the API, which hands the partner the secret

    @admin.display(description="Last error")
    def short_error(self, webhook):
        return webhook.last_error[:80]

    @admin.display(description="Cursor")
    def cursor(self, webhook):
        return format_cursor(webhook.cursor)

    @admin.display(description="Recent deliveries")
    def recent_deliveries(self, webhook):
        rows = deliveries_recent(webhook=webhook)[:RECENT_SHOWN]
        table = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (d.started_at.isoformat(timespec="seconds"), d.kind, d.change_count, d.status_code or d.status,
                 "-" if d.duration_ms is None else f"{d.duration_ms} ms", d.error[:120])
                for d in rows
            ),
        )  # fmt: skip
        link = reverse("admin:webhooks_webhookdelivery_changelist") + f"?webhook__id__exact={webhook.pk}"
        return format_html(
            "<table><tr><th>Started</th><th>Kind</th><th>Changes</th><th>Status</th><th>Took</th><th>Error</th></tr>"
            '{}</table><a href="{}">All deliveries</a>',
            table,
            link,
        )

    def save_model(self, request, obj, form, change):
        # Through the service: enabling resets the failures, and a delivery running meanwhile keeps its cursor.
        data = {name: form.cleaned_data[name] for name in form.changed_data}
        webhook_update(webhook=Webhook.objects.get(pk=obj.pk), data=data)

    @admin.action(description="Enable (reset failures; waiting changes are sent)")
    def enable(self, request, queryset):
        for webhook in queryset:
            webhook_update(webhook=webhook, data={"active": True})
        messages.success(request, f"{queryset.count()} webhooks enabled.")

    @admin.action(description="Send waiting changes now (skips a retry's wait)")
    def send_now(self, request, queryset):
        active = [webhook for webhook in queryset if webhook.active]
        for webhook in active:
            webhook_retry_now(webhook=webhook)
            tasks.deliver.delay(webhook.pk)
        messages.info(request, f"Deliveries queued for {len(active)} active webhooks (disabled ones: enable first).")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["started_at", "webhook", "kind", "status", "status_code", "change_count", "duration_ms", "error"]
    list_filter = ["status", "kind"]
    list_select_related = ["webhook"]
    search_fields = ["delivery_id", "webhook__url", "task_id"]
    date_hierarchy = "started_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
