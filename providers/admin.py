from django.contrib import admin

from providers.models import Provider


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "email", "phone_number", "language", "currency", "owner"]
    search_fields = ["name", "email"]
    list_filter = ["language", "currency"]
    raw_id_fields = ["owner"]
