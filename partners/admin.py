from django.contrib import admin
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from partners.models import KeyUsage, Partner, PartnerKey

# The library's own model is unused (partners.PartnerKey replaces it, and it has no table).
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)


class PartnerKeyInline(admin.TabularInline):
    model = PartnerKey
    fields = ["prefix", "name", "rate_per_minute", "expiry_date", "revoked", "created"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # keys are created on their own page, which shows the key once


@admin.register(Partner)
class PartnerAdmin(admin.ModelAdmin):
    list_display = ["name", "contact_email", "created_at"]
    search_fields = ["name", "contact_email"]
    inlines = [PartnerKeyInline]


@admin.register(PartnerKey)
class PartnerKeyAdmin(APIKeyModelAdmin):
    """Create a key here: the page shows it once. Revoke by ticking `revoked` (cannot be undone)."""

    list_display = [*APIKeyModelAdmin.list_display, "partner", "rate_per_minute"]
    list_filter = ["partner", "revoked", "created"]
    search_fields = ["name", "prefix", "partner__name"]
    autocomplete_fields = ["partner"]


@admin.register(KeyUsage)
class KeyUsageAdmin(admin.ModelAdmin):
    """Per key and UTC day; each web process adds what it counted every few seconds (partners.usage)."""

    list_display = ["day", "key", "partner", "lookups", "batches", "batch_points", "trips", "feed_reads", "throttled"]
    list_filter = ["day", "key__partner"]
    search_fields = ["key__prefix", "key__name", "key__partner__name"]
    date_hierarchy = "day"
    list_select_related = ["key__partner"]

    @admin.display(ordering="key__partner__name")
    def partner(self, usage):
        return usage.key.partner if usage.key else "anonymous"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
