from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from hexindex import api as index
from project.concurrency import check_if_match
from providers.models import Provider
from providers.serializers import EMAIL_TAKEN


def _save(provider: Provider, fields: list[str] | None = None) -> Provider:
    # The serializer checks email uniqueness; the database constraint settles a race between two requests.
    try:
        with transaction.atomic():
            provider.save(update_fields=fields)
    except IntegrityError as exc:
        if "provider_owner_email_unique_ci" in str(exc):
            raise ValidationError({"email": [EMAIL_TAKEN]}) from exc
        raise
    return provider


def provider_create(*, owner, data: dict) -> Provider:
    return _save(Provider(owner=owner, **data))


@transaction.atomic
def provider_update(*, provider: Provider, data: dict, if_match: str | None = None) -> Provider:
    provider = Provider.objects.select_for_update().get(pk=provider.pk)  # the current row, kept until commit
    check_if_match(if_match, provider.etag, what="provider")
    shown_before = (provider.name, provider.currency)
    for field, value in data.items():
        setattr(provider, field, value)
    _save(provider, fields=[*data, "updated_at"])
    if (provider.name, provider.currency) != shown_before:
        # Lookup results show the provider's name and currency: refresh its areas' cached results.
        index.areas_changed(list(provider.service_areas.values_list("id", flat=True)))
    return provider


@transaction.atomic
def provider_delete(*, provider: Provider, if_match: str | None = None) -> None:
    if if_match is not None:
        check_if_match(if_match, Provider.objects.select_for_update().get(pk=provider.pk).etag, what="provider")
    # Service areas go with their provider (on_delete=CASCADE), and out of the index.
    index.areas_deleting(list(provider.service_areas.values_list("id", flat=True)))
    provider.delete()


@transaction.atomic
def provider_set_approval(*, provider: Provider, approved: bool) -> Provider:
    """Approve a provider (its areas join public lookups) or revoke its approval (they leave them at once: the
    index treats them as changed, so lookups check them in PostGIS, where they are no longer public, until the
    worker takes them out of the live index)."""
    provider = Provider.objects.select_for_update().get(pk=provider.pk)
    if provider.approved == approved:
        return provider
    provider.approved = approved
    provider.approved_at = timezone.now() if approved else None
    provider.save(update_fields=["approved", "approved_at", "updated_at"])
    index.areas_changed(list(provider.service_areas.values_list("id", flat=True)))
    return provider
