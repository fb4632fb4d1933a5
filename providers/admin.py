from django.contrib import admin, messages

from core.errors import ApplicationError
from providers.models import Provider
from providers.services import provider_delete, provider_review, provider_set_approval, provider_update


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    """Changes and deletes go through the same services as the API, so the lookup index hears of them; approval
    only through the actions (it changes what every lookup shows)."""

    list_display = [
        "id",
        "name",
        "email",
        "phone_number",
        "language",
        "currency",
        "owner",
        "approved",
        "pending_review",
    ]
    search_fields = ["name", "email"]
    list_filter = ["approved", ("review_requested_at", admin.EmptyFieldListFilter), "language", "currency"]
    raw_id_fields = ["owner"]
    readonly_fields = ["approved", "approved_at", "pending_review", "review_requested_at"]
    actions = ["approve", "revoke", "accept_changes", "reject_changes"]

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)  # a new provider has no areas yet
            return
        stored = Provider.objects.get(pk=obj.pk)
        data = {f: form.cleaned_data[f] for f in form.changed_data}
        _guarded(request, provider_update, provider=stored, data=data, by=request.user)

    def delete_model(self, request, obj):
        _guarded(request, provider_delete, provider=obj)

    def delete_queryset(self, request, queryset):
        for provider in queryset:
            _guarded(request, provider_delete, provider=provider)

    @admin.action(description="Approve selected providers (their areas join public lookups)")
    def approve(self, request, queryset):
        for provider in queryset:
            _guarded(request, provider_set_approval, provider=provider, approved=True)

    @admin.action(description="Revoke approval of selected providers (their areas leave public lookups)")
    def revoke(self, request, queryset):
        for provider in queryset:
            _guarded(request, provider_set_approval, provider=provider, approved=False)

    @admin.action(description="Accept the changes waiting for review (name, currency)")
    def accept_changes(self, request, queryset):
        for provider in queryset.exclude(review_requested_at=None):
            _guarded(request, provider_review, provider=provider, accept=True)

    @admin.action(description="Reject the changes waiting for review")
    def reject_changes(self, request, queryset):
        for provider in queryset.exclude(review_requested_at=None):
            _guarded(request, provider_review, provider=provider, accept=False)


def _guarded(request, action, **kwargs) -> None:
    try:
        action(**kwargs)
    except ApplicationError as exc:  # the index unreachable or busy
        messages.error(request, str(exc.detail))
