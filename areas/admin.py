from django.contrib import admin, messages

from areas.models import ServiceArea
from areas.services import area_delete, area_update
from core.errors import ApplicationError


@admin.register(ServiceArea)
class ServiceAreaAdmin(admin.ModelAdmin):
    """Edits and deletes go through the same services as the API, so the lookup index hears of them. Geometry is
    edited through the API (it is validated there); the portal adds a read-only map of it (portal.admin)."""

    list_display = ["id", "name", "provider", "price", "geometry_version", "updated_at"]
    search_fields = ["name", "provider__name"]
    list_select_related = ["provider"]
    raw_id_fields = ["provider"]
    exclude = ["geometry"]
    readonly_fields = ["geometry_version", "payload_version", "created_at", "updated_at"]

    def has_add_permission(self, request):
        return False  # areas are drawn through the API, which validates geometry

    def save_model(self, request, obj, form, change):
        stored = ServiceArea.objects.get(pk=obj.pk)
        data = {field: form.cleaned_data[field] for field in form.changed_data}
        _guarded(request, area_update, area=stored, data=data)

    def delete_model(self, request, obj):
        _guarded(request, area_delete, area=obj)

    def delete_queryset(self, request, queryset):
        for area in queryset:
            _guarded(request, area_delete, area=area)


def _guarded(request, action, **kwargs) -> None:
    try:
        action(**kwargs)
    except ApplicationError as exc:  # the index unreachable or busy, a quota of the provider's owner
        messages.error(request, str(exc.detail))
