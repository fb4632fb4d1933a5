from django.db import IntegrityError, transaction
from rest_framework.exceptions import ValidationError

from hexindex.services import forget_areas
from providers.models import Provider
from providers.serializers import EMAIL_TAKEN


def _save(provider: Provider) -> Provider:
    # The serializer checks email uniqueness; the database constraint settles a race between two requests.
    try:
        with transaction.atomic():
            provider.save()
    except IntegrityError as exc:
        if "provider_email_unique_ci" in str(exc):
            raise ValidationError({"email": [EMAIL_TAKEN]}) from exc
        raise
    return provider


def provider_create(*, owner, data: dict) -> Provider:
    return _save(Provider(owner=owner, **data))


@transaction.atomic
def provider_update(*, provider: Provider, data: dict) -> Provider:
    for field, value in data.items():
        setattr(provider, field, value)
    return _save(provider)


@transaction.atomic
def provider_delete(*, provider: Provider) -> None:
    # Service areas go with their provider (on_delete=CASCADE), and out of the index.
    cleanup = forget_areas(list(provider.service_areas.values_list("id", flat=True)))
    provider.delete()
    transaction.on_commit(cleanup)
